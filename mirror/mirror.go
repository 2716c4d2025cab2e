package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/telemetry"
)

// scope names the mirror's tracer and meter.
const scope = "github.com/halfbackmq/halfback/mirror"

// Mirror copies committed messages of RocketMQ topics to Kafka. Make one
// with New, Start it, Close it.
type Mirror struct {
	opts     Options
	log      *slog.Logger
	tracer   trace.Tracer
	kafkaFor map[string]string // RocketMQ topic -> Kafka topic
	consumer *client.PushConsumer
	newProd  func() (sarama.SyncProducer, error)

	stopping chan struct{} // closed by Close: handlers give up their batch
	// startMu serializes Start and Close. Start holds it, not mu, while
	// the consumer starts: its first rebalance may already run handler
	// calls, which take mu, and when Start's context ends the consumer's
	// Start waits for them.
	startMu sync.Mutex
	// consumerClosing is the consumer's Closing: its Close (or the
	// Client's, before the mirror's) waits for the handlers, which give
	// up their batch then too. Set before the consumer starts.
	consumerClosing <-chan struct{}
	mu              sync.Mutex
	started         bool
	closed          bool
	prod            *producerRef  // nil until needed, and after a fatal error
	making          chan struct{} // not nil while a call makes the producer; closed when done

	// Counters, read by Stats and the metrics callback.
	mirrored, rejected, failures atomic.Int64
	retrying                     atomic.Int64 // handler calls waiting to retry a batch
	lastErr                      atomic.Pointer[errorAt]
	lastOK                       atomic.Int64 // unix ms of the last acknowledged batch
	metrics                      metric.Registration
}

type errorAt struct {
	err string
	at  time.Time
}

// Stats is a snapshot of what a mirror did since it started.
type Stats struct {
	// Mirrored counts records Kafka acknowledged; Rejected messages Kafka
	// can never take (skipped, logged); Failures failed attempts at a batch.
	Mirrored, Rejected, Failures int64
	// Retrying is how many queues are waiting to retry a batch Kafka did
	// not take: more than 0 means the mirror is paused there.
	Retrying int64
	// LastError is the last failure, and LastErrorAt when it happened;
	// empty if none.
	LastError   string
	LastErrorAt time.Time
	// LastMirroredAt is when Kafka last acknowledged a batch.
	LastMirroredAt time.Time
}

// New checks opts and makes a mirror; nothing connects until Start.
func New(opts Options) (*Mirror, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Client == nil {
		return nil, optErr("Client", "required")
	}
	opts = opts.withDefaults()
	cfg, err := saramaConfig(opts.Kafka)
	if err != nil {
		return nil, &OptionError{Field: "Kafka", Detail: err.Error()}
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := &Mirror{
		opts:     opts,
		log:      opts.Logger.With("component", "mirror", "group", opts.Group),
		tracer:   tp.Tracer(scope),
		kafkaFor: make(map[string]string, len(opts.Topics)),
		stopping: make(chan struct{}),
	}
	brokers := opts.Kafka.Brokers
	m.newProd = func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer(brokers, cfg) }
	for _, t := range opts.Topics {
		m.kafkaFor[t.RocketMQ] = t.Kafka
	}
	return m, nil
}

// Start checks that the name servers route every mapped RocketMQ topic
// (ErrUnknownTopic), subscribes to them and starts consuming; it returns
// once the consumer runs. Kafka need not be reachable: batches wait, with
// back-off, until it is.
func (m *Mirror) Start(ctx context.Context) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	m.mu.Lock()
	closed, started := m.closed, m.started
	m.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case started:
		return ErrStarted
	}
	for _, t := range m.opts.Topics {
		if _, err := m.opts.Client.SubscribeQueues(ctx, t.RocketMQ); err != nil {
			if errors.Is(err, client.ErrTopicNotFound) {
				return fmt.Errorf("%w: %s (mapped to Kafka topic %s) has no route on the name servers; create it first (halfback topic create %s)",
					ErrUnknownTopic, t.RocketMQ, t.Kafka, t.RocketMQ)
			}
			return fmt.Errorf("mirror: route of %s: %w", t.RocketMQ, err)
		}
	}
	from := client.ConsumeFromLast
	if m.opts.StartFrom == StartFirst {
		from = client.ConsumeFromFirst
	}
	pc, err := m.opts.Client.NewPushConsumer(client.ConsumerOptions{
		Group:            m.opts.Group,
		Orderly:          true,
		SyncCommit:       true,
		FromWhere:        from,
		ConsumeBatchSize: m.opts.BatchSize,
		PullBatchSize:    min(m.opts.BatchSize, client.DefaultPullBatchSize),
		// A queue holds the batch being produced and the next one, not
		// the client's default 1024 messages (of any size): while Kafka
		// is down the mirror waits holding little.
		PullThresholdForQueue: 2 * m.opts.BatchSize,
		// A batch is never given up to the dead-letter queue: the handler
		// retries it itself until Kafka takes it or the mirror stops.
		MaxReconsumeTimes: math.MaxInt32,
		ConsumeTimeout:    100 * 365 * 24 * time.Hour,
		// Orderly: at most one call per queue. A slot for every queue, so
		// that queues waiting for a Kafka topic that refuses them never
		// hold up the queues of the others.
		Concurrency: maxMirroredQueues,
	})
	if err != nil {
		return fmt.Errorf("mirror: consumer: %w", err)
	}
	for _, t := range m.opts.Topics {
		if err := pc.Subscribe(t.RocketMQ, "*", m.handle); err != nil {
			pc.Close()
			return fmt.Errorf("mirror: subscribe %s: %w", t.RocketMQ, err)
		}
	}
	if err := m.registerMetrics(); err != nil {
		pc.Close()
		return err
	}
	m.consumerClosing = pc.Closing()
	if err := pc.Start(ctx); err != nil {
		pc.Close()
		m.unregisterMetrics()
		return fmt.Errorf("mirror: start consumer group %s: %w", m.opts.Group, err)
	}
	m.mu.Lock()
	m.consumer, m.started = pc, true
	m.mu.Unlock()
	m.log.Info("mirror started", "topics", m.opts.Topics, "kafka", m.opts.Kafka.Brokers,
		"acks", m.opts.Kafka.RequiredAcks, "batch", m.opts.BatchSize)
	return nil
}

// maxMirroredQueues bounds the handler calls running at once (one per
// queue being mirrored).
const maxMirroredQueues = 1 << 14

// Close stops consuming: a batch Kafka has not answered within
// Kafka.ProduceTimeout is given up unacknowledged (it is mirrored after
// the next start), the offsets are committed and the producer closed.
func (m *Mirror) Close() error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	close(m.stopping)
	pc := m.consumer
	m.mu.Unlock()
	var errs []error
	if pc != nil {
		// ErrClosed: the Client closed it first (and committed its
		// offsets); nothing is left to do for it.
		if err := pc.Close(); !errors.Is(err, client.ErrClosed) {
			errs = append(errs, err)
		}
	}
	m.mu.Lock()
	r := m.prod
	m.prod = nil
	closeIt := r != nil && r.users == 0
	if r != nil {
		r.retired = true // a call still using it (the consumer was closed already) closes it
	}
	m.mu.Unlock()
	if closeIt {
		errs = append(errs, r.p.Close())
	}
	m.unregisterMetrics()
	return errors.Join(errs...)
}

// Stats returns what the mirror did so far.
func (m *Mirror) Stats() Stats {
	s := Stats{Mirrored: m.mirrored.Load(), Rejected: m.rejected.Load(), Failures: m.failures.Load(),
		Retrying: m.retrying.Load()}
	if e := m.lastErr.Load(); e != nil {
		s.LastError, s.LastErrorAt = e.err, e.at
	}
	if ms := m.lastOK.Load(); ms > 0 {
		s.LastMirroredAt = time.UnixMilli(ms)
	}
	return s
}

// handle mirrors one batch of one queue. It returns ConsumeSuccess only
// when Kafka acknowledged every record of it (or rejected one for good),
// and gives the batch up (ConsumeRetryLater, without an error) only when
// the mirror stops.
func (m *Mirror) handle(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
	if len(msgs) == 0 {
		return client.ConsumeSuccess, nil
	}
	kafkaTopic := m.kafkaFor[msgs[0].Topic]
	pending := make([]*sarama.ProducerMessage, 0, len(msgs))
	spans := make(map[*sarama.ProducerMessage]trace.Span, len(msgs))
	for _, msg := range msgs {
		pm := m.prepare(ctx, kafkaTopic, msg, spans)
		if pm != nil {
			pending = append(pending, pm)
		}
	}
	backoff := m.opts.MinBackoff
	waiting := false
	defer func() {
		if waiting {
			m.retrying.Add(-1)
		}
		for _, sp := range spans { // those of a batch given up
			sp.SetStatus(codes.Error, "mirror stopped before Kafka took the record")
			sp.End()
		}
	}()
	for len(pending) > 0 {
		var err error
		if pending, err = m.send(pending, spans); len(pending) == 0 {
			break
		}
		if errors.Is(err, errStopped) || errors.Is(err, ErrClosed) {
			return client.ConsumeRetryLater, nil
		}
		m.failures.Add(1)
		m.lastErr.Store(&errorAt{err: err.Error(), at: time.Now()})
		if !waiting {
			waiting = true
			m.retrying.Add(1)
		}
		m.log.Warn("Kafka did not take a batch; retrying", "topic", msgs[0].Topic, "queue", msgs[0].QueueID,
			"kafkaTopic", kafkaTopic, "records", len(pending), "backoff", backoff, "err", err)
		select {
		case <-m.stopping:
			return client.ConsumeRetryLater, nil
		case <-m.consumerClosing: // the Client closed before the mirror
			return client.ConsumeRetryLater, nil
		case <-ctx.Done():
			return client.ConsumeRetryLater, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.opts.MaxBackoff)
	}
	m.lastOK.Store(time.Now().UnixMilli())
	return client.ConsumeSuccess, nil
}

// prepare starts msg's publish span and builds its record, or rejects
// msg if it is larger than Kafka takes (nil).
func (m *Mirror) prepare(ctx context.Context, kafkaTopic string, msg *client.MessageExt,
	spans map[*sarama.ProducerMessage]trace.Span) *sarama.ProducerMessage {
	parent := telemetry.Extract(ctx, msg.Properties)
	_, span := m.tracer.Start(parent, "publish "+kafkaTopic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(trace.LinkFromContext(ctx)),
		trace.WithAttributes(
			telemetry.KeySystem.String("kafka"),
			telemetry.KeyOperationType.String(telemetry.OpSend),
			telemetry.KeyOperationName.String("publish"),
			telemetry.KeyDestination.String(kafkaTopic),
			telemetry.KeyMessageID.String(msg.MsgID),
			telemetry.KeyBodySize.Int(len(msg.Body)),
			attribute.String("messaging.kafka.message.key", string(Key(msg))),
			attribute.String("halfback.mirror.source_topic", msg.Topic),
			attribute.Int64("halfback.mirror.source_queue_offset", msg.QueueOffset),
		))
	pm := record(trace.ContextWithSpan(parent, span), kafkaTopic, msg)
	pm.Metadata = msg
	spans[pm] = span
	// sarama refuses it too, but with an error like any misconfiguration.
	if size := pm.ByteSize(2); size > m.opts.Kafka.MaxMessageBytes {
		m.reject(pm, spans, fmt.Errorf("record of %d bytes is larger than Kafka.MaxMessageBytes %d", size, m.opts.Kafka.MaxMessageBytes))
		return nil
	}
	return pm
}

// send produces pending on the current producer and returns the records
// still to send, in order, with the error.
//
// Too large: Kafka refuses a whole record batch when one of its records
// is too large (or the batch is larger than the topic's max.message.bytes
// or segment.bytes), so every record of it comes back refused; and the
// batch may hold other queues' records, which sarama puts with ours when
// they go to the same partition at the same time. Every record refused so,
// even the only one of pending, is sent again alone, at once, in its
// order, on a producer of its own (soloProducer) so that no other
// record shares its request: the one Kafka can never take is rejected
// (logged, skipped), the others arrive.
//
// Order: sarama may give up on a record (its own retries spent) and still
// deliver later records of the partition, and a record sent again alone
// arrives after the later ones. A key's records after one that did not
// arrive in its turn are therefore sent again after it, so that the last
// copy of each is in order; they are duplicates, with the same
// rocketmq.msgId.
func (m *Mirror) send(pending []*sarama.ProducerMessage, spans map[*sarama.ProducerMessage]trace.Span) ([]*sarama.ProducerMessage, error) {
	ref, err := m.producer()
	if err != nil {
		return pending, fmt.Errorf("connect to Kafka %v: %w", m.opts.Kafka.Brokers, err)
	}
	failed := map[*sarama.ProducerMessage]error{}
	if err := m.produce(ref, func() error { return ref.p.SendMessages(pending) }); err != nil {
		if errors.Is(err, errStopped) {
			return pending, err
		}
		var perrs sarama.ProducerErrors
		if !errors.As(err, &perrs) {
			m.release(ref, true)
			return pending, err
		}
		for _, pe := range perrs {
			failed[pe.Msg] = pe.Err
		}
	}
	late := map[*sarama.ProducerMessage]bool{} // arrived, sent alone after the batch
	solo := &soloProducer{newProd: m.newProd}
	defer solo.close()
	for _, pm := range pending {
		perr, bad := failed[pm]
		restamp := bad && errors.Is(perr, sarama.ErrInvalidTimestamp)
		if restamp {
			// The store time is outside the topic's timestamp window (a
			// long outage): send it stamped now, the store time in a
			// header, rather than skip it. (Once: a record refused again
			// keeps its header and is stamped anew.)
			if !hasHeader(pm, HeaderStoreTimestamp) {
				pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(HeaderStoreTimestamp),
					Value: []byte(strconv.FormatInt(pm.Timestamp.UnixMilli(), 10))})
			}
			pm.Timestamp = time.Now()
			// The header may push it over MaxMessageBytes, which sarama
			// refuses locally (a ConfigurationError, retried forever).
			if size := pm.ByteSize(2); size > m.opts.Kafka.MaxMessageBytes {
				failed[pm] = fmt.Errorf("%w: record of %d bytes with its %s header is larger than Kafka.MaxMessageBytes %d",
					sarama.ErrMessageSizeTooLarge, size, HeaderStoreTimestamp, m.opts.Kafka.MaxMessageBytes)
				continue
			}
		}
		if bad && rejected(perr) {
			err := m.produce(ref, func() error { return solo.send(pm) })
			switch {
			case errors.Is(err, errStopped):
				return pending, err
			case err == nil:
				delete(failed, pm)
				late[pm] = true
			case restamp && errors.Is(err, sarama.ErrInvalidTimestamp):
				// Refused again although stamped now and alone in its
				// request: Kafka's clock is far from ours. Not a record Kafka can
				// never take: it is retried, not skipped (%v: no longer
				// ErrInvalidTimestamp to rejected).
				failed[pm] = fmt.Errorf("mirror: record refused again stamped now; retrying: %v", err)
			default:
				failed[pm] = err
			}
		}
	}
	var left []*sarama.ProducerMessage
	var first error
	// broken: keys with a record to send again, after which every later
	// record of the key goes again too. lateSeen: keys with a record sent
	// alone after the batch, which arrived after the key's later records
	// that the batch stored (those go again), not after its later records
	// also sent alone (they were sent after it, in order).
	broken, lateSeen := map[string]bool{}, map[string]bool{}
	for _, pm := range pending {
		key := keyOf(pm)
		perr, bad := failed[pm]
		switch {
		case bad && rejected(perr):
			m.reject(pm, spans, perr)
		case bad:
			left = append(left, pm)
			broken[key] = key != ""
			if first == nil {
				first = perr
			}
		case broken[key], lateSeen[key] && !late[pm]: // arrived ahead of an earlier record of its key
			m.succeeded(pm, spans)
			left = append(left, resend(pm))
			broken[key] = true
		case late[pm]:
			m.succeeded(pm, spans)
			lateSeen[key] = key != ""
		default:
			m.succeeded(pm, spans)
		}
	}
	m.release(ref, fatal(first))
	if len(left) > 0 {
		if first == nil {
			first = errors.New("records arrived out of their key's order")
		}
		return left, fmt.Errorf("%d of %d records to send again: %w", len(left), len(pending), first)
	}
	return nil, nil
}

// errStopped is send's error when the mirror stopped while Kafka had a
// request of it and did not answer within Kafka.ProduceTimeout.
var errStopped = errors.New("mirror: stopped while Kafka had the batch")

// produce runs f, a send on ref, and returns its error. If the mirror
// stops first it still waits for f's answer, at most Kafka.ProduceTimeout
// (a healthy Kafka answers in milliseconds): were it to give the batch up
// at once, the queue would go to the next owner while the request could
// still be stored, after the next owner's records of the same keys. Past
// that (a hung Kafka) it returns errStopped and leaves f to end on its
// own; ref is then released when f ends, not by the caller. Those records
// may still arrive, after the next owner's copies: duplicates within the
// documented bound, the one case where a key's last copies can be out of
// order. Called once the mirror stops, it sends nothing and returns
// errStopped (each send would make Close wait another ProduceTimeout).
func (m *Mirror) produce(ref *producerRef, f func() error) error {
	select {
	case <-m.stopping: // sends nothing new: Close waits for one answer only
		m.release(ref, false)
		return errStopped
	default:
	}
	res := make(chan error, 1)
	go func() { res <- f() }()
	select {
	case err := <-res:
		return err
	case <-m.stopping:
	}
	m.log.Debug("mirror: stopping; waiting for Kafka's answer to a batch", "max", m.opts.Kafka.ProduceTimeout)
	t := time.NewTimer(m.opts.Kafka.ProduceTimeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
	}
	go func() {
		<-res
		m.release(ref, false)
	}()
	return errStopped
}

// keyOf returns a record's key as a string ("" for none).
func keyOf(pm *sarama.ProducerMessage) string {
	if k, ok := pm.Key.(sarama.ByteEncoder); ok {
		return string(k)
	}
	return ""
}

// resend copies a record Kafka took, to send it again (sarama keeps
// per-send state in a record).
// hasHeader reports whether pm carries a header named key.
func hasHeader(pm *sarama.ProducerMessage, key string) bool {
	for _, h := range pm.Headers {
		if string(h.Key) == key {
			return true
		}
	}
	return false
}

func resend(pm *sarama.ProducerMessage) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: pm.Topic, Key: pm.Key, Value: pm.Value, Headers: pm.Headers,
		Timestamp: pm.Timestamp, Metadata: pm.Metadata}
}

func (m *Mirror) succeeded(pm *sarama.ProducerMessage, spans map[*sarama.ProducerMessage]trace.Span) {
	m.mirrored.Add(1)
	if sp := spans[pm]; sp != nil {
		sp.SetAttributes(attribute.String("messaging.destination.partition.id", strconv.Itoa(int(pm.Partition))), // a string in the conventions
			attribute.Int64("messaging.kafka.offset", pm.Offset))
		sp.End()
		delete(spans, pm)
	}
}

// reject skips pm, a record Kafka can never take.
func (m *Mirror) reject(pm *sarama.ProducerMessage, spans map[*sarama.ProducerMessage]trace.Span, err error) {
	m.rejected.Add(1)
	msg, _ := pm.Metadata.(*client.MessageExt)
	if msg != nil {
		m.log.Error("Kafka can never take this message; skipped (it stays in RocketMQ)", "topic", msg.Topic,
			"queue", msg.QueueID, "queueOffset", msg.QueueOffset, "msgId", msg.MsgID, "kafkaTopic", pm.Topic, "err", err)
	}
	if span := spans[pm]; span != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "rejected by Kafka")
		span.End()
		delete(spans, pm)
	}
}

// producerRef is the producer and the handler calls using it. One
// producer serves every queue for as long as it works (sarama reconnects
// by itself, and its idempotence drops a copy it already stored only
// within sarama's own retries of a request); after a fatal error it is retired: no new
// call gets it, and the last call using it closes it (sarama panics on a
// send to a closed producer, so it is never closed under a caller).
type producerRef struct {
	p       sarama.SyncProducer
	users   int
	retired bool
}

// producer returns the current producer, making one if there is none;
// the caller must release it. One call at a time makes it, outside m.mu
// (connecting may take DialTimeout per broker); the others wait for it,
// or give up when the mirror stops.
func (m *Mirror) producer() (*producerRef, error) {
	for {
		m.mu.Lock()
		switch {
		case m.closed:
			m.mu.Unlock()
			return nil, ErrClosed
		case m.prod != nil:
			m.prod.users++
			r := m.prod
			m.mu.Unlock()
			return r, nil
		case m.making != nil: // another call is making one
			wait := m.making
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-m.stopping:
				return nil, ErrClosed
			}
		}
		made := make(chan struct{})
		m.making = made
		m.mu.Unlock()

		// Made in the background: a hung Kafka can hold the metadata
		// requests for sarama's whole retry loop, and Close does not wait
		// for it; a producer made after Close is closed when it comes.
		type result struct {
			p   sarama.SyncProducer
			err error
		}
		res := make(chan result, 1)
		go func() {
			p, err := m.newProd()
			res <- result{p, err}
		}()
		var p sarama.SyncProducer
		var err error
		select {
		case r := <-res:
			p, err = r.p, r.err
		case <-m.stopping:
			go func() {
				if r := <-res; r.p != nil {
					_ = r.p.Close()
				}
			}()
			m.mu.Lock()
			m.making = nil
			close(made)
			m.mu.Unlock()
			return nil, ErrClosed
		}
		m.mu.Lock()
		m.making = nil
		close(made)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		if m.closed { // Close ran meanwhile and will not see it
			m.mu.Unlock()
			p.Close()
			return nil, ErrClosed
		}
		m.prod = &producerRef{p: p, users: 1}
		r := m.prod
		m.mu.Unlock()
		return r, nil
	}
}

// release ends a use of r. With failed, r is retired (the next call
// makes a new producer). A retired producer no one uses is closed.
func (m *Mirror) release(r *producerRef, failed bool) {
	m.mu.Lock()
	r.users--
	if failed && m.prod == r {
		m.prod, r.retired = nil, true
	}
	closeIt := r.retired && r.users == 0
	m.mu.Unlock()
	if closeIt {
		if err := r.p.Close(); err != nil {
			m.log.Debug("closing a retired Kafka producer", "err", err)
		}
	}
}

// soloProducer sends records one at a time on a producer no other call
// uses, so that each of its requests holds one record: Kafka refusing it
// as too large then means the record alone is. Made at the first send;
// close closes it once its send, which produce may have left running
// past Close, has ended.
type soloProducer struct {
	newProd func() (sarama.SyncProducer, error)
	mu      sync.Mutex // held by a send
	p       sarama.SyncProducer
}

// send produces a copy of pm alone and, once Kafka took it, sets pm's
// partition and offset.
func (s *soloProducer) send(pm *sarama.ProducerMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		p, err := s.newProd()
		if err != nil {
			return err
		}
		s.p = p
	}
	cp := resend(pm)
	if _, _, err := s.p.SendMessage(cp); err != nil {
		return err
	}
	pm.Partition, pm.Offset = cp.Partition, cp.Offset
	return nil
}

func (s *soloProducer) close() {
	closeIt := func() {
		if s.p != nil {
			_ = s.p.Close()
			s.p = nil
		}
	}
	if s.mu.TryLock() {
		closeIt()
		s.mu.Unlock()
		return
	}
	go func() { // a send produce gave up waiting for
		s.mu.Lock()
		defer s.mu.Unlock()
		closeIt()
	}()
}
