package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// ProduceOptions configure [RunProduce] (and, embedded in [E2EOptions],
// the producing half of [RunE2E]).
type ProduceOptions struct {
	// Dir is the directory the run works in; it is created if missing. The
	// broker's store lives in a fresh subdirectory that is removed at the
	// end. Required; as for [StoreOptions.Dir], put it on a real disk.
	Dir string
	// Flush is the broker store's flush type (the zero value is AsyncFlush).
	Flush store.FlushType
	// Producers is the number of sends in flight: Connections × the sends
	// each connection carries at once. Each producer is a goroutine that
	// sends one SEND_MESSAGE_V2 and waits for its response before the next,
	// as a synchronous producer does. At least 1.
	Producers int
	// Connections is the number of TCP connections the producers share,
	// round-robin, like that many producer instances each sending from
	// Producers/Connections threads. Default min(Producers, 4); at most
	// Producers.
	Connections int
	// Size is the message body in bytes, 1 to [MaxSize]. [RunE2E] needs at
	// least [StampSize].
	Size int
	// Duration is how long the producers send. Must be positive.
	Duration time.Duration
	// Queues is the number of queues of the benchmark topic, created over
	// the protocol with UPDATE_AND_CREATE_TOPIC before the run. Each
	// producer sends to the queues in turn. Default 4, at most 1024.
	Queues int
	// SegmentSize is the store's commit-log segment size in bytes; zero
	// means the store's default (1 GiB).
	SegmentSize int64
	// Logger receives progress. The broker itself logs nowhere. Default:
	// discard.
	Logger *slog.Logger
}

// StampSize is the smallest body [RunE2E] accepts: a body starts with the
// send time (Unix nanoseconds) and the message's id, 8 bytes each, big
// endian. [RunProduce] stamps bodies that are large enough too.
const StampSize = 16

// Defaults of [ProduceOptions].
const (
	DefaultConnections = 4
	DefaultQueues      = 4
)

// validate reports the first field out of range, naming it, and fills
// the defaults.
func (o ProduceOptions) validate() (ProduceOptions, error) {
	if o.Connections == 0 {
		o.Connections = min(o.Producers, DefaultConnections)
	}
	if o.Queues == 0 {
		o.Queues = DefaultQueues
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.Dir == "":
		return o, fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case o.Flush != store.SyncFlush && o.Flush != store.AsyncFlush:
		return o, fmt.Errorf("%w: Flush %d is neither SyncFlush nor AsyncFlush", ErrInvalidOptions, o.Flush)
	case o.Producers < 1:
		return o, fmt.Errorf("%w: Producers %d, want at least 1", ErrInvalidOptions, o.Producers)
	case o.Connections < 1 || o.Connections > o.Producers:
		return o, fmt.Errorf("%w: Connections %d, want 1 to Producers (%d)", ErrInvalidOptions, o.Connections, o.Producers)
	case o.Size < 1 || o.Size > MaxSize:
		return o, fmt.Errorf("%w: Size %d, want 1 to %d bytes", ErrInvalidOptions, o.Size, MaxSize)
	case o.Duration <= 0:
		return o, fmt.Errorf("%w: Duration %v, want more than zero", ErrInvalidOptions, o.Duration)
	case o.Queues < 1 || o.Queues > 1024:
		return o, fmt.Errorf("%w: Queues %d, want 1 to 1024", ErrInvalidOptions, o.Queues)
	case o.SegmentSize < 0:
		return o, fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidOptions, o.SegmentSize)
	}
	return o, nil
}

// ProduceResult is what [RunProduce] measured. MB means 10^6 bytes of
// message bodies.
type ProduceResult struct {
	// Flush is SYNC_FLUSH or ASYNC_FLUSH.
	Flush string `json:"flush"`
	// Producers, Connections, Size and Queues echo the options.
	Producers   int `json:"producers"`
	Connections int `json:"connections"`
	Size        int `json:"size"`
	Queues      int `json:"queues"`
	// DurationSec is from the first send until the last producer's last
	// response arrived.
	DurationSec float64 `json:"duration_sec"`
	// Messages is the number of sends answered SUCCESS.
	Messages int64 `json:"messages"`
	// MsgsPerSec and MBPerSec are the throughput.
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// P50ms and P99ms are send latency quantiles in milliseconds, from
	// just before the request is written until its response is decoded
	// (within 2%: they come from a log-linear histogram).
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// RunProduce opens a broker in a fresh subdirectory of o.Dir, listening on
// a loopback port, and drives it over TCP: o.Producers goroutines send
// o.Size-byte messages with SEND_MESSAGE_V2 for o.Duration, each waiting
// for its response. It closes the broker and removes the subdirectory
// before it returns. It fails with [ErrInvalidOptions] if o is out of
// range, with ctx's error if ctx ends first, and with the broker's answer
// if a send is not answered SUCCESS.
func RunProduce(ctx context.Context, o ProduceOptions) (res ProduceResult, err error) {
	if o, err = o.validate(); err != nil {
		return ProduceResult{}, err
	}
	rig, err := openRig(ctx, o, "halfback-bench-produce-")
	if err != nil {
		return ProduceResult{}, err
	}
	defer func() { err = errors.Join(err, rig.close()) }()

	o.Logger.Info("bench: producing", "flush", o.Flush.String(), "producers", o.Producers,
		"connections", o.Connections, "size", o.Size, "for", o.Duration)
	run, err := rig.produce(ctx, o)
	if err != nil {
		return ProduceResult{}, err
	}
	secs := run.elapsed.Seconds()
	return ProduceResult{
		Flush:       o.Flush.String(),
		Producers:   o.Producers,
		Connections: o.Connections,
		Size:        o.Size,
		Queues:      o.Queues,
		DurationSec: secs,
		Messages:    int64(run.latency.total),
		MsgsPerSec:  float64(run.latency.total) / secs,
		MBPerSec:    float64(run.latency.total) * float64(o.Size) / secs / 1e6,
		P50ms:       millis(run.latency.quantile(0.50)),
		P99ms:       millis(run.latency.quantile(0.99)),
	}, nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchTopic and benchGroup name what the protocol benchmarks use.
const (
	benchTopic = "bench_protocol"
	benchGroup = "bench_group"
)

// rig is an in-process broker in a scratch directory and the producers'
// connections to it.
type rig struct {
	dir   string
	b     *broker.Broker
	conns []*remoting.Conn
}

// openRig opens the broker, dials o.Connections connections and creates
// the topic over the first one.
func openRig(ctx context.Context, o ProduceOptions, prefix string) (_ *rig, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	r := &rig{}
	if r.dir, err = os.MkdirTemp(o.Dir, prefix); err != nil {
		return nil, err
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.b, err = broker.Open(broker.Options{
		Store:            store.Options{Dir: filepath.Join(r.dir, "store"), FlushType: o.Flush, SegmentSize: o.SegmentSize},
		ListenAddr:       "127.0.0.1:0",
		DefaultQueueNums: o.Queues,
		Logger:           discard,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open broker: %w", err), os.RemoveAll(r.dir))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	if r.conns, err = dialN(ctx, r.b.Addr(), o.Connections); err != nil {
		return nil, err
	}
	return r, createTopic(ctx, r.conns[0], benchTopic, o.Queues)
}

// close closes the connections and the broker and removes the directory.
func (r *rig) close() error {
	var err error
	for _, c := range r.conns {
		c.Close()
	}
	if r.b != nil {
		err = r.b.Close()
	}
	return errors.Join(err, os.RemoveAll(r.dir))
}

// dialN opens n connections to addr.
func dialN(ctx context.Context, addr string, n int) ([]*remoting.Conn, error) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	conns := make([]*remoting.Conn, 0, n)
	for range n {
		c, err := remoting.Dial(ctx, addr, remoting.DialOptions{Logger: discard})
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("dial broker at %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// createTopic creates topic with the given number of read and write
// queues, as mqadmin updateTopic does.
func createTopic(ctx context.Context, c *remoting.Conn, topic string, queues int) error {
	q := strconv.Itoa(queues)
	resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "readQueueNums": q, "writeQueueNums": q, "perm": "6", "topicFilterType": "SINGLE_TAG",
	}))
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Code != remoting.RespSuccess {
		return fmt.Errorf("create topic %s: response code %d: %s", topic, resp.Code, resp.Remark)
	}
	return nil
}

// produceRun is what rig.produce saw.
type produceRun struct {
	elapsed time.Duration
	latency histogram // every acknowledged send
	sent    []uint64  // messages acknowledged, by producer
}

// produce runs o.Producers sending goroutines over the rig's connections
// for o.Duration; each sends at least one message.
func (r *rig) produce(ctx context.Context, o ProduceOptions) (produceRun, error) {
	ps := make([]*producer, o.Producers)
	errs := make([]error, o.Producers)
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(o.Duration, func() { stop.Store(true) })
	for p := range ps {
		ps[p] = newProducer(r.conns[p%len(r.conns)], p, o)
		wg.Go(func() {
			if errs[p] = ps[p].loop(ctx, &stop); errs[p] != nil {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
	run := produceRun{elapsed: time.Since(start), sent: make([]uint64, len(ps))}
	timer.Stop()
	if err := errors.Join(errs...); err != nil {
		return produceRun{}, err
	}
	for i, p := range ps {
		run.latency.merge(&p.latency)
		run.sent[i] = p.latency.total
	}
	return run, nil
}

// producer is one synchronous sender on a shared connection.
type producer struct {
	conn    *remoting.Conn
	id      int
	queues  int
	body    []byte
	uniq    string // UNIQ_KEY prefix, unique to the producer and run
	latency histogram
}

func newProducer(c *remoting.Conn, id int, o ProduceOptions) *producer {
	return &producer{
		conn:   c,
		id:     id,
		queues: o.Queues,
		body:   filled(o.Size),
		uniq:   fmt.Sprintf("%s%08X%08X", message.PropertyUniqKey+"\x01", time.Now().UnixNano()&0xFFFFFFFF, id),
	}
}

// msgID is the id a producer stamps into a body: producer<<40 | sequence.
func msgID(producer int, seq uint64) uint64 { return uint64(producer)<<40 | seq }

// loop sends until stop is set: to queue (id+i) mod queues, with a unique
// UNIQ_KEY and WAIT=true as the clients set them, recording each send's
// latency.
func (p *producer) loop(ctx context.Context, stop *atomic.Bool) error {
	props := make([]byte, 0, 64)
	for seq := uint64(0); ; seq++ {
		qid := (p.id + int(seq)) % p.queues
		props = append(props[:0], p.uniq...)
		props = strconv.AppendUint(props, seq, 16)
		props = append(props, "\x02"+message.PropertyWaitStoreMsgOK+"\x01true\x02"...)
		t0 := time.Now()
		if len(p.body) >= StampSize {
			binary.BigEndian.PutUint64(p.body, uint64(t0.UnixNano()))
			binary.BigEndian.PutUint64(p.body[8:], msgID(p.id, seq))
		}
		if err := p.send(ctx, qid, string(props), t0); err != nil {
			return err
		}
		p.latency.record(time.Since(t0))
		if stop.Load() {
			return nil
		}
	}
}

// send is one SEND_MESSAGE_V2 round trip; anything but SUCCESS is an error.
func (p *producer) send(ctx context.Context, qid int, props string, born time.Time) error {
	req := remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": benchGroup,                              // producerGroup
		"b": benchTopic,                              // topic
		"c": "TBW102",                                // defaultTopic
		"d": "4",                                     // defaultTopicQueueNums
		"e": strconv.Itoa(qid),                       // queueId
		"f": "0",                                     // sysFlag
		"g": strconv.FormatInt(born.UnixMilli(), 10), // bornTimestamp
		"h": "0",                                     // flag
		"i": props,                                   // properties
		"j": "0",                                     // reconsumeTimes
		"k": "false",                                 // unitMode
		"m": "false",                                 // batch
	})
	req.Body = p.body // encoded by Invoke before it waits, so reusable after
	resp, err := p.conn.Invoke(ctx, req)
	if err != nil {
		return fmt.Errorf("producer %d: send: %w", p.id, err)
	}
	if resp.Code != remoting.RespSuccess {
		return fmt.Errorf("producer %d: send to queue %d: response code %d: %s", p.id, qid, resp.Code, resp.Remark)
	}
	return nil
}
