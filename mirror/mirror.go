package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	mu       sync.Mutex
	started  bool
	closed   bool
	prod     *producerRef // nil until needed, and after a failure

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

// Start subscribes to the mirrored topics and starts consuming; it
// returns once the consumer runs. Kafka need not be reachable: batches
// wait, with back-off, until it is.
func (m *Mirror) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return ErrClosed
	case m.started:
		return ErrStarted
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
		// A batch is never given up to the dead-letter queue: the handler
		// retries it itself until Kafka takes it or the mirror stops.
		MaxReconsumeTimes: math.MaxInt32,
		ConsumeTimeout:    100 * 365 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("mirror: consumer: %w", err)
	}
	for _, t := range m.opts.Topics {
		if err := pc.Subscribe(t.RocketMQ, "*", m.handle); err != nil {
			return fmt.Errorf("mirror: subscribe %s: %w", t.RocketMQ, err)
		}
	}
	if err := m.registerMetrics(); err != nil {
		return err
	}
	if err := pc.Start(ctx); err != nil {
		m.unregisterMetrics()
		return fmt.Errorf("mirror: start consumer group %s: %w", m.opts.Group, err)
	}
	m.consumer, m.started = pc, true
	m.log.Info("mirror started", "topics", m.opts.Topics, "kafka", m.opts.Kafka.Brokers,
		"acks", m.opts.Kafka.RequiredAcks, "batch", m.opts.BatchSize)
	return nil
}

// Close stops consuming: a batch waiting for Kafka is given up
// unacknowledged (it is mirrored after the next start), the offsets are
// committed and the producer closed.
func (m *Mirror) Close() error {
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
		errs = append(errs, pc.Close())
	}
	m.mu.Lock()
	r := m.prod
	m.prod = nil
	m.mu.Unlock()
	if r != nil { // every handler call has returned: no one uses it
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
		pending, err = m.send(pending, spans)
		if len(pending) == 0 {
			break
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
	if size := pm.ByteSize(2); size > m.opts.Kafka.MaxMessageBytes {
		m.reject(pm, span, fmt.Errorf("record of %d bytes is larger than Kafka.MaxMessageBytes %d", size, m.opts.Kafka.MaxMessageBytes))
		return nil
	}
	spans[pm] = span
	return pm
}

// send produces pending on the current producer and returns those Kafka
// did not take, with the error. Records Kafka can never take are
// rejected; on any other failure the producer is discarded, so the next
// attempt starts afresh (a new idempotent producer id, fresh metadata).
func (m *Mirror) send(pending []*sarama.ProducerMessage, spans map[*sarama.ProducerMessage]trace.Span) ([]*sarama.ProducerMessage, error) {
	ref, err := m.producer()
	if err != nil {
		return pending, fmt.Errorf("connect to Kafka %v: %w", m.opts.Kafka.Brokers, err)
	}
	err = ref.p.SendMessages(pending)
	if err == nil {
		m.release(ref, false)
		for _, pm := range pending {
			m.succeeded(pm, spans)
		}
		return nil, nil
	}
	var perrs sarama.ProducerErrors
	if !errors.As(err, &perrs) {
		m.release(ref, true)
		return pending, err
	}
	failed := make(map[*sarama.ProducerMessage]error, len(perrs))
	for _, pe := range perrs {
		failed[pe.Msg] = pe.Err
	}
	var left, alone []*sarama.ProducerMessage
	var first error
	for _, pm := range pending {
		perr, bad := failed[pm]
		switch {
		case !bad:
			m.succeeded(pm, spans)
		case rejected(perr) && len(pending) > 1:
			// Kafka refuses a whole record batch when one of its records
			// is too large: which one is known only when each is sent alone.
			alone = append(alone, pm)
		case rejected(perr):
			m.reject(pm, spans[pm], perr)
			delete(spans, pm)
		default:
			left = append(left, pm)
			if first == nil {
				first = perr
			}
		}
	}
	for i, pm := range alone {
		if len(left) > 0 { // the producer failed: try the rest on the next attempt
			left = append(left, alone[i:]...)
			break
		}
		_, _, perr := ref.p.SendMessage(pm)
		switch {
		case perr == nil:
			m.succeeded(pm, spans)
		case rejected(perr):
			m.reject(pm, spans[pm], perr)
			delete(spans, pm)
		default:
			left = append(left, pm)
			first = perr
		}
	}
	m.release(ref, len(left) > 0)
	if len(left) > 0 {
		return left, fmt.Errorf("%d of %d records failed: %w", len(left), len(pending), first)
	}
	return nil, nil
}

func (m *Mirror) succeeded(pm *sarama.ProducerMessage, spans map[*sarama.ProducerMessage]trace.Span) {
	m.mirrored.Add(1)
	if sp := spans[pm]; sp != nil {
		sp.SetAttributes(attribute.Int64("messaging.destination.partition.id", int64(pm.Partition)),
			attribute.Int64("messaging.kafka.offset", pm.Offset))
		sp.End()
		delete(spans, pm)
	}
}

func (m *Mirror) reject(pm *sarama.ProducerMessage, span trace.Span, err error) {
	m.rejected.Add(1)
	msg, _ := pm.Metadata.(*client.MessageExt)
	if msg != nil {
		m.log.Error("Kafka can never take this message; skipped (it stays in RocketMQ)", "topic", msg.Topic,
			"queue", msg.QueueID, "queueOffset", msg.QueueOffset, "msgId", msg.MsgID, "kafkaTopic", pm.Topic, "err", err)
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, "rejected by Kafka")
	span.End()
}

// producerRef is a producer and the handler calls using it. A failed
// producer is retired: no new call gets it, and the last call using it
// closes it (sarama panics on a send to a closed producer, so it is never
// closed under a caller).
type producerRef struct {
	p       sarama.SyncProducer
	users   int
	retired bool
}

// producer returns the current producer, making one if there is none;
// the caller must release it.
func (m *Mirror) producer() (*producerRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if m.prod == nil {
		p, err := m.newProd()
		if err != nil {
			return nil, err
		}
		m.prod = &producerRef{p: p}
	}
	m.prod.users++
	return m.prod, nil
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
