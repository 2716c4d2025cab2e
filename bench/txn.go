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
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/namesrv"
)

// TxnOptions configure [RunTxn].
type TxnOptions struct {
	// Dir, Flush, Size, Duration, Queues, SegmentSize and Logger are as
	// for [ProduceOptions]; Size must be at least [StampSize].
	Dir         string
	Flush       store.FlushType
	Size        int
	Duration    time.Duration
	Queues      int
	SegmentSize int64
	Logger      *slog.Logger
	// Producers is the number of transactions in flight, each a goroutine
	// running SendHalf → local transaction (none) → EndTransaction in turn
	// through one halfback client. At least 1.
	Producers int
	// UnknownPercent of the transactions (0 to 100) are left unknown by
	// their producer: the broker checks them back after CheckTimeout and
	// the producer's check listener answers commit.
	UnknownPercent int
	// CheckTimeout is the broker's transactionTimeout (and check interval)
	// for the run. Default 1 s.
	CheckTimeout time.Duration
	// Drain bounds how long after the producers stop the consumers may
	// take to receive the rest. Default max(Duration, 3 × CheckTimeout, 10 s).
	Drain time.Duration
}

func (o TxnOptions) validate() (TxnOptions, error) {
	if o.CheckTimeout == 0 {
		o.CheckTimeout = time.Second
	}
	if o.Drain == 0 {
		o.Drain = max(o.Duration, 3*o.CheckTimeout, 10*time.Second)
	}
	po, err := ProduceOptions{Dir: o.Dir, Flush: o.Flush, Producers: o.Producers, Connections: 1, Size: o.Size,
		Duration: o.Duration, Queues: o.Queues, SegmentSize: o.SegmentSize, Logger: o.Logger}.validate()
	if err != nil {
		return o, err
	}
	o.Queues, o.Logger = po.Queues, po.Logger
	switch {
	case o.Size < StampSize:
		return o, fmt.Errorf("%w: Size %d, want at least %d bytes to carry the send time and id", ErrInvalidOptions, o.Size, StampSize)
	case o.UnknownPercent < 0 || o.UnknownPercent > 100:
		return o, fmt.Errorf("%w: UnknownPercent %d, want 0 to 100", ErrInvalidOptions, o.UnknownPercent)
	case o.CheckTimeout < 0 || o.Drain < 0:
		return o, fmt.Errorf("%w: CheckTimeout %v / Drain %v is negative", ErrInvalidOptions, o.CheckTimeout, o.Drain)
	}
	return o, nil
}

// TxnResult is what [RunTxn] measured. A transaction's latency runs from
// just before its SendHalf until a consumer received its committed
// message.
type TxnResult struct {
	Flush          string `json:"flush"`
	Producers      int    `json:"producers"`
	Size           int    `json:"size"`
	Queues         int    `json:"queues"`
	UnknownPercent int    `json:"unknown_percent"`
	CheckTimeoutMs int64  `json:"check_timeout_ms"`
	// DurationSec is from the first SendHalf until the last message was received.
	DurationSec float64 `json:"duration_sec"`
	// Transactions counts the half messages stored; Committed those ended
	// with commit by the producer, CheckedBack those committed through a
	// check-back (a producer's commit that arrives after a check-back
	// committed counts in both); Consumed the distinct messages received;
	// Missing those never received within Drain.
	Transactions int64 `json:"transactions"`
	Committed    int64 `json:"committed"`
	CheckedBack  int64 `json:"checked_back"`
	Consumed     int64 `json:"consumed"`
	Missing      int64 `json:"missing"`
	// Duplicates counts receipts of a message already received.
	Duplicates int64 `json:"duplicates"`
	// TxnPerSec is Consumed / DurationSec.
	TxnPerSec float64 `json:"txn_per_sec"`
	// P50ms and P99ms are transaction latency quantiles (send → consumed).
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// RunTxn opens a name server and a broker in a fresh subdirectory of
// o.Dir and runs transactions through halfback's client for o.Duration,
// while consumers pull the topic as [RunE2E]'s do. It waits (at most
// o.Drain) until every transaction's message arrived, then closes
// everything and removes the subdirectory.
func RunTxn(ctx context.Context, o TxnOptions) (res TxnResult, err error) {
	if o, err = o.validate(); err != nil {
		return TxnResult{}, err
	}
	tr, err := openTxnRig(ctx, o)
	if err != nil {
		return TxnResult{}, err
	}
	defer func() { err = errors.Join(err, tr.close()) }()
	cs, stopConsumers := startConsumers(ctx, tr.conns, o.Queues)
	defer stopConsumers()
	o.Logger.Info("bench: transactions", "flush", o.Flush.String(), "producers", o.Producers,
		"unknown%", o.UnknownPercent, "for", o.Duration)
	start := time.Now()
	sent, perr := tr.run(ctx, o)
	if perr == nil {
		perr = waitReceived(ctx, &cs.distinct, uint64(sent), o.Drain)
	}
	if perr = errors.Join(perr, stopConsumers()); perr != nil {
		return TxnResult{}, perr
	}
	return tr.result(o, cs, start, sent), nil
}

// txnRig is a name server, a broker and a client with one producer.
type txnRig struct {
	*rig
	ns      *namesrv.Server
	cl      *client.Client
	p       *client.Producer
	commits atomic.Int64
}

func openTxnRig(ctx context.Context, o TxnOptions) (_ *txnRig, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := &txnRig{rig: &rig{}}
	if tr.dir, err = os.MkdirTemp(o.Dir, "halfback-bench-txn-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tr.close())
		}
	}()
	if tr.ns, err = namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: discard}); err != nil {
		return nil, err
	}
	tr.b, err = broker.Open(broker.Options{
		Store:        store.Options{Dir: filepath.Join(tr.dir, "store"), FlushType: o.Flush, SegmentSize: o.SegmentSize},
		Txn:          txn.Options{Timeout: o.CheckTimeout, CheckInterval: o.CheckTimeout},
		ListenAddr:   "127.0.0.1:0",
		NamesrvAddrs: []string{tr.ns.Addr()},
		Logger:       discard, DefaultQueueNums: o.Queues, RegisterInterval: 200 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("open broker: %w", err)
	}
	if tr.conns, err = dialN(ctx, tr.b.Addr(), min(o.Queues, DefaultConsumers)); err != nil {
		return nil, err
	}
	if err := createTopic(ctx, tr.conns[0], benchTopic, o.Queues); err != nil {
		return nil, err
	}
	if tr.cl, err = client.New(client.Options{NamesrvAddrs: []string{tr.ns.Addr()}, Logger: discard}); err != nil {
		return nil, err
	}
	tr.p, err = tr.cl.NewProducer(client.ProducerOptions{Group: "bench_txn",
		CheckListener: client.CheckListenerFunc(func(context.Context, *client.CheckRequest) client.TransactionState {
			return client.Commit
		})})
	return tr, err
}

func (tr *txnRig) close() error {
	var err error
	if tr.cl != nil {
		err = tr.cl.Close()
	}
	err = errors.Join(err, tr.rig.close())
	if tr.ns != nil {
		err = errors.Join(err, tr.ns.Close())
	}
	return err
}

// run drives o.Producers transaction loops for o.Duration and returns how
// many half messages were stored.
func (tr *txnRig) run(ctx context.Context, o TxnOptions) (int64, error) {
	var stop atomic.Bool
	var sent atomic.Int64
	timer := time.AfterFunc(o.Duration, func() { stop.Store(true) })
	defer timer.Stop()
	errs := make([]error, o.Producers)
	var wg sync.WaitGroup
	for p := range o.Producers {
		wg.Go(func() {
			body := make([]byte, o.Size)
			for seq := uint64(0); !stop.Load(); seq++ {
				if errs[p] = tr.one(ctx, o, body, msgID(p, seq)); errs[p] != nil {
					stop.Store(true)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	return sent.Load(), errors.Join(errs...)
}

// one runs a transaction: half message, no local work, then commit — or,
// for UnknownPercent of them, nothing (the check-back commits).
func (tr *txnRig) one(ctx context.Context, o TxnOptions, body []byte, id uint64) error {
	binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(body[8:], id)
	r, err := tr.p.SendHalf(ctx, &client.Message{Topic: benchTopic, Body: body})
	if err != nil {
		return fmt.Errorf("SendHalf: %w", err)
	}
	if int(id%100) < o.UnknownPercent {
		return nil
	}
	if err := tr.p.EndTransaction(ctx, r, client.Commit); err != nil {
		return fmt.Errorf("EndTransaction: %w", err)
	}
	tr.commits.Add(1)
	return nil
}

func (tr *txnRig) result(o TxnOptions, cs *consumers, start time.Time, sent int64) TxnResult {
	var lat histogram
	seen := map[uint64]bool{}
	var dups int64
	last := start
	for _, l := range cs.loops {
		lat.merge(&l.latency)
		for _, id := range l.ids {
			if seen[id] {
				dups++
			}
			seen[id] = true
		}
		if l.last.After(last) {
			last = l.last
		}
	}
	st := tr.b.Transactions().Stats()
	elapsed := last.Sub(start).Seconds()
	res := TxnResult{Flush: o.Flush.String(), Producers: o.Producers, Size: o.Size, Queues: o.Queues,
		UnknownPercent: o.UnknownPercent, CheckTimeoutMs: o.CheckTimeout.Milliseconds(), DurationSec: elapsed,
		Transactions: sent, Committed: tr.commits.Load(), CheckedBack: st.CheckCommits,
		Consumed: int64(len(seen)), Missing: sent - int64(len(seen)), Duplicates: dups,
		P50ms: millis(lat.quantile(0.50)), P99ms: millis(lat.quantile(0.99))}
	if elapsed > 0 {
		res.TxnPerSec = float64(res.Consumed) / elapsed
	}
	return res
}
