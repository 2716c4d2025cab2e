package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// E2EOptions configure [RunE2E]: the producers as for [RunProduce], plus
// the consumers.
type E2EOptions struct {
	ProduceOptions
	// Consumers is the number of consumers, each with its own connection.
	// The topic's queues are dealt out among them (queue q to consumer
	// q mod Consumers), and each consumer keeps one long-polling pull in
	// flight per queue it owns, as a push consumer does. Default
	// min(Queues, 4), at most Queues.
	Consumers int
	// Drain bounds how long after the producers stop the consumers may take
	// to receive the rest; what they have not received by then is Missing.
	// Default max(Duration, 10 s).
	Drain time.Duration
}

// DefaultConsumers is [E2EOptions.Consumers]'s default.
const DefaultConsumers = 4

// Pull request fields the consumers send, as the clients' defaults: 32
// messages a pull, held up to 15 s by the broker when there is nothing new
// (DefaultMQPushConsumer's pullBatchSize and brokerSuspendMaxTimeMillis).
const (
	pullBatch        = 32
	pullSuspendMilli = 15000
	pullSysFlag      = 1<<1 | 1<<2 // PullSysFlag suspend | subscription
)

func (o E2EOptions) validate() (E2EOptions, error) {
	var err error
	if o.ProduceOptions, err = o.ProduceOptions.validate(); err != nil {
		return o, err
	}
	if o.Consumers == 0 {
		o.Consumers = min(o.Queues, DefaultConsumers)
	}
	if o.Drain == 0 {
		o.Drain = max(o.Duration, 10*time.Second)
	}
	switch {
	case o.Size < StampSize:
		return o, fmt.Errorf("%w: Size %d, want at least %d bytes to carry the send time and id", ErrInvalidOptions, o.Size, StampSize)
	case o.Consumers < 1 || o.Consumers > o.Queues:
		return o, fmt.Errorf("%w: Consumers %d, want 1 to Queues (%d): a consumer owns at least one queue", ErrInvalidOptions, o.Consumers, o.Queues)
	case o.Drain < 0:
		return o, fmt.Errorf("%w: Drain %v is negative", ErrInvalidOptions, o.Drain)
	}
	return o, nil
}

// E2EResult is what [RunE2E] measured. End-to-end latency is a message's
// receive time at a consumer minus the send time its producer stamped in
// its body just before sending it.
type E2EResult struct {
	// Flush, Producers, Connections, Consumers, Size and Queues echo the options.
	Flush       string `json:"flush"`
	Producers   int    `json:"producers"`
	Connections int    `json:"connections"`
	Consumers   int    `json:"consumers"`
	Size        int    `json:"size"`
	Queues      int    `json:"queues"`
	// DurationSec is from the first send until the last message was received.
	DurationSec float64 `json:"duration_sec"`
	// Produced counts sends answered SUCCESS; Consumed the distinct
	// messages received; Missing = Produced - Consumed; Duplicates the
	// receipts of a message already received.
	Produced   int64 `json:"produced"`
	Consumed   int64 `json:"consumed"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// MsgsPerSec and MBPerSec are Consumed over DurationSec.
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// P50ms and P99ms are end-to-end latency quantiles in milliseconds.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	// ProducedPerSec and SendP50ms, SendP99ms are the producers' own
	// figures, as [ProduceResult]'s MsgsPerSec, P50ms and P99ms.
	ProducedPerSec float64 `json:"produced_msgs_per_sec"`
	SendP50ms      float64 `json:"send_p50_ms"`
	SendP99ms      float64 `json:"send_p99_ms"`
	// DrainSec is how long after the last send the last message arrived.
	DrainSec float64 `json:"drain_sec"`
}

// RunE2E opens a broker as [RunProduce] does, starts the consumers, each
// pulling every queue it owns from offset 0 with PULL_MESSAGE and long
// polling, then runs the producers for o.Duration, and waits (at most
// o.Drain) until the consumers have received everything that was sent.
// Errors are as [RunProduce]'s, and a pull answered with anything but
// SUCCESS or one of the PULL_* codes fails the run.
func RunE2E(ctx context.Context, o E2EOptions) (res E2EResult, err error) {
	if o, err = o.validate(); err != nil {
		return E2EResult{}, err
	}
	rig, err := openRig(ctx, o.ProduceOptions, "halfback-bench-e2e-")
	if err != nil {
		return E2EResult{}, err
	}
	defer func() { err = errors.Join(err, rig.close()) }()
	conns, err := dialN(ctx, rig.b.Addr(), o.Consumers)
	if err != nil {
		return E2EResult{}, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	cs, stopConsumers := startConsumers(ctx, conns, o.Queues)
	defer stopConsumers()
	o.Logger.Info("bench: producing and consuming", "flush", o.Flush.String(), "producers", o.Producers,
		"consumers", o.Consumers, "size", o.Size, "for", o.Duration)
	start := time.Now()
	run, perr := rig.produce(ctx, o.ProduceOptions)
	sentAll := time.Now()
	var produced uint64
	for _, n := range run.sent {
		produced += n
	}
	if perr == nil {
		o.Logger.Info("bench: draining", "produced", produced, "within", o.Drain)
		perr = waitReceived(ctx, &cs.distinct, produced, o.Drain)
	}
	if perr = errors.Join(perr, stopConsumers()); perr != nil {
		return E2EResult{}, perr
	}
	return cs.result(o, start, sentAll, run), nil
}

// waitReceived polls until received (distinct messages: receipts of one
// twice must not end the wait early) reaches want, drain passes or ctx
// ends.
func waitReceived(ctx context.Context, received *atomic.Uint64, want uint64, drain time.Duration) error {
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for received.Load() < want {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil // the shortfall is reported as Missing
		case <-tick.C:
		}
	}
	return nil
}

// consumers are the pull loops of every consumer, one per queue.
type consumers struct {
	loops    []*pullLoop
	mu       sync.Mutex
	seen     map[uint64]struct{} // the ids received
	distinct atomic.Uint64       // len(seen)
}

// note counts the distinct ids among ids, just received.
func (cs *consumers) note(ids []uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, id := range ids {
		if _, ok := cs.seen[id]; !ok {
			cs.seen[id] = struct{}{}
			cs.distinct.Add(1)
		}
	}
}

// startConsumers starts a pull loop per queue over conns. stop cancels
// them, waits for them and returns their errors (a cancelled pull is none);
// calling it again returns nil.
func startConsumers(ctx context.Context, conns []*remoting.Conn, queues int) (*consumers, func() error) {
	cctx, cancel := context.WithCancel(ctx)
	cs := newConsumers(conns, queues)
	var wg sync.WaitGroup
	errs := make([]error, len(cs.loops))
	for i, l := range cs.loops {
		wg.Go(func() { errs[i] = l.run(cctx, cs.note) })
	}
	var once sync.Once
	return cs, func() error {
		var err error
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, e := range errs {
				if e != nil && !errors.Is(e, context.Canceled) {
					err = errors.Join(err, e)
				}
			}
		})
		return err
	}
}

func newConsumers(conns []*remoting.Conn, queues int) *consumers {
	cs := &consumers{seen: make(map[uint64]struct{})}
	for q := range queues {
		cs.loops = append(cs.loops, &pullLoop{conn: conns[q%len(conns)], queue: q})
	}
	return cs
}

// pullLoop pulls one queue, from offset 0, until its context ends.
type pullLoop struct {
	conn    *remoting.Conn
	queue   int
	latency histogram
	ids     []uint64 // every message received, in order
	last    time.Time
}

func (l *pullLoop) run(ctx context.Context, note func(ids []uint64)) error {
	qid := strconv.Itoa(l.queue)
	for offset := int64(0); ; {
		resp, err := l.conn.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
			"consumerGroup":        benchGroup,
			"topic":                benchTopic,
			"queueId":              qid,
			"queueOffset":          strconv.FormatInt(offset, 10),
			"maxMsgNums":           strconv.Itoa(pullBatch),
			"sysFlag":              strconv.Itoa(pullSysFlag),
			"commitOffset":         "0",
			"suspendTimeoutMillis": strconv.Itoa(pullSuspendMilli),
			"subscription":         "*",
			"subVersion":           "0",
			"expressionType":       "TAG",
		}))
		if err != nil {
			return fmt.Errorf("consumer of queue %d: pull: %w", l.queue, err)
		}
		now := time.Now()
		switch resp.Code {
		case remoting.RespSuccess:
			n, err := l.take(resp.Body, now)
			if err != nil {
				return fmt.Errorf("consumer of queue %d: offset %d: %w", l.queue, offset, err)
			}
			note(l.ids[len(l.ids)-n:])
		case remoting.RespPullNotFound, remoting.RespPullRetryImmediately, remoting.RespPullOffsetMoved:
		default:
			return fmt.Errorf("consumer of queue %d: pull at offset %d: response code %d: %s", l.queue, offset, resp.Code, resp.Remark)
		}
		if next, err := strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64); err == nil {
			offset = next
		}
	}
}

// take decodes a pull's records and records each one's latency and id.
func (l *pullLoop) take(records []byte, now time.Time) (int, error) {
	exts, err := message.DecodeAll(records)
	if err != nil {
		return 0, err
	}
	for _, e := range exts {
		if len(e.Body) < StampSize {
			return 0, fmt.Errorf("message at queue offset %d has a %d-byte body, want at least %d", e.QueueOffset, len(e.Body), StampSize)
		}
		sent := int64(binary.BigEndian.Uint64(e.Body))
		l.latency.record(time.Duration(now.UnixNano() - sent))
		l.ids = append(l.ids, binary.BigEndian.Uint64(e.Body[8:]))
	}
	if len(exts) > 0 {
		l.last = now
	}
	return len(exts), nil
}

// result matches what was received against what each producer sent.
func (cs *consumers) result(o E2EOptions, start, sentAll time.Time, run produceRun) E2EResult {
	seen := make([][]uint64, len(run.sent)) // a bitset per producer
	for p, n := range run.sent {
		seen[p] = make([]uint64, (n+63)/64)
	}
	var latency histogram
	var consumed, dups int64
	last := start
	for _, l := range cs.loops {
		latency.merge(&l.latency)
		if l.last.After(last) {
			last = l.last
		}
		for _, id := range l.ids {
			p, seq := int(id>>40), id&(1<<40-1)
			if p >= len(seen) || seq >= run.sent[p] {
				// Not a message this run counted as sent: a run that
				// returns a result has no failed sends, so count it with
				// the duplicates rather than lose it.
				dups++
				continue
			}
			word, bit := &seen[p][seq/64], uint64(1)<<(seq%64)
			if *word&bit != 0 {
				dups++
				continue
			}
			*word |= bit
			consumed++
		}
	}
	produced := int64(run.latency.total)
	secs := max(last.Sub(start), time.Nanosecond).Seconds()
	return E2EResult{
		Flush:          o.Flush.String(),
		Producers:      o.Producers,
		Connections:    o.Connections,
		Consumers:      o.Consumers,
		Size:           o.Size,
		Queues:         o.Queues,
		DurationSec:    secs,
		Produced:       produced,
		Consumed:       consumed,
		Missing:        produced - consumed,
		Duplicates:     dups,
		MsgsPerSec:     float64(consumed) / secs,
		MBPerSec:       float64(consumed) * float64(o.Size) / secs / 1e6,
		P50ms:          millis(latency.quantile(0.50)),
		P99ms:          millis(latency.quantile(0.99)),
		ProducedPerSec: float64(produced) / run.elapsed.Seconds(),
		SendP50ms:      millis(run.latency.quantile(0.50)),
		SendP99ms:      millis(run.latency.quantile(0.99)),
		DrainSec:       max(0, last.Sub(sentAll).Seconds()),
	}
}
