package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// A burst of check-backs larger than the connection's in-flight limit
// (1024) reaches the listener, every one: the broker counts each it wrote
// as a check, and sends up to MaxChecksPerRound (2000) in one burst.
func TestCheckBackBurstReachesTheListener(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	release := make(chan struct{})
	var asked atomic.Int64
	newProducer(t, c, ProducerOptions{Group: "pg-burst", CheckListener: CheckListenerFunc(
		func(ctx context.Context, r *CheckRequest) TransactionState {
			asked.Add(1)
			select { // a listener looking the transaction up in a slow database
			case <-release:
			case <-ctx.Done():
			}
			return Unknown
		})})
	defer close(release)
	var beat fakeBeat
	waitFor(t, "a heartbeat naming the group", func() (ok bool) { beat, ok = f.beatFor("pg-burst"); return ok })
	const n = 1100
	for i := range n {
		if err := beat.conn.InvokeOneway(checkCommand(t, "pg-burst", "pay")); err != nil {
			t.Fatalf("check-back %d: %v", i, err)
		}
	}
	// The bound is not what the test asserts (each check reaching the
	// listener is): 1100 decoded and dispatched under -race on a loaded
	// machine may take a while.
	waitFor(t, fmt.Sprintf("every one of %d check-backs reaching the listener", n), func() bool { return asked.Load() >= n })
	if got := asked.Load(); got != n {
		t.Fatalf("%d of %d check-backs reached the listener; the rest were dropped unanswered", got, n)
	}
}

// The same with a real broker: a listener that commits every transaction,
// but takes a moment, gets none parked (parked ones are delivered only
// when an operator resumes them). The interval between checks is far
// above CheckTimeout: on a loaded machine an answer that took 3 s came
// more than 5 s after its check, and the broker had parked it (the late
// commit then settled it). A check the client drops is still parked, an
// interval later.
func TestSlowListenerBurstParksNothing(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn = txn.Options{Timeout: 200 * time.Millisecond, CheckInterval: 20 * time.Second, CheckMax: 1}
	})
	c := newClient(t, cl.ns.Addr(), nil)
	sender := newClient(t, cl.ns.Addr(), nil)
	group := uniq("pg")
	newProducer(t, c, ProducerOptions{Group: group, CheckTimeout: 3 * time.Second, CheckListener: CheckListenerFunc(
		func(ctx context.Context, r *CheckRequest) TransactionState {
			<-ctx.Done() // slow lookup, bounded by CheckTimeout
			return Commit
		})})
	sp := newProducer(t, sender, ProducerOptions{Group: group})
	topic := uniq("pay")
	const n = 1200
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := sp.SendHalf(ctxT(t, 30*time.Second), &Message{Topic: topic, Body: []byte("x")})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 60*time.Second, "every transaction settled or parked", func() bool {
		s := cl.b.Transactions().Stats()
		return s.Pending == 0
	})
	if s := cl.b.Transactions().Stats(); s.ParkedTotal != 0 {
		t.Fatalf("%d of %d transactions parked though the listener commits every one: %+v", s.ParkedTotal, n, s)
	}
}

// Producer.Close unregisters the group at the broker too
// (UNREGISTER_CLIENT): a half message whose only producer closed waits,
// its checks unreached, for a producer of the group, instead of having
// checks the client drops counted against CheckMax and being parked.
func TestProducerCloseUnregistersFromTheBroker(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn = txn.Options{Timeout: 100 * time.Millisecond, CheckInterval: 100 * time.Millisecond, CheckMax: 3}
	})
	group := uniq("pg")
	a := newClient(t, cl.ns.Addr(), nil)
	var asked atomic.Int64
	pa := newProducer(t, a, ProducerOptions{Group: group, CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { asked.Add(1); return Unknown })})
	topic := uniq("pay")
	b := newClient(t, cl.ns.Addr(), nil)
	pb := newProducer(t, b, ProducerOptions{Group: group}) // no listener
	if _, err := pb.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("half")}); err != nil {
		t.Fatal(err)
	}
	// The broker reaches a's listener: a is registered for the group.
	testutil.WaitFor(t, 10*time.Second, "a check-back reaching a", func() bool { return asked.Load() >= 1 })
	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "three check rounds", func() bool {
		s := cl.b.Transactions().Stats()
		return s.Unreached >= 3 || s.ParkedTotal > 0
	})
	if s := cl.b.Transactions().Stats(); s.ParkedTotal != 0 {
		t.Fatalf("a closed producer's client still took the group's check-backs, dropped them, and the transaction was parked: %+v", s)
	}
}

// A CheckListener that ignores its ctx does not hold Client.Close forever.
func TestCloseDoesNotWaitForeverOnAStuckListener(t *testing.T) {
	f := startFake(t)
	c, err := New(Options{NamesrvAddrs: []string{f.addr}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	in := make(chan struct{}, 1)
	if _, err := c.NewProducer(ProducerOptions{Group: "pg-stuck", CheckTimeout: 100 * time.Millisecond, CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState {
			in <- struct{}{}
			<-release // ignores ctx
			return Unknown
		})}); err != nil {
		t.Fatal(err)
	}
	var beat fakeBeat
	waitFor(t, "a heartbeat naming the group", func() (ok bool) { beat, ok = f.beatFor("pg-stuck"); return ok })
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-stuck", "pay")); err != nil {
		t.Fatal(err)
	}
	<-in
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	var done atomic.Bool
	go func() { <-closed; done.Store(true) }()
	testutil.WaitFor(t, 5*time.Second, "Client.Close returning despite a listener past its CheckTimeout", done.Load)
}

// An Apache RocketMQ slave answers END_TRANSACTION with
// SLAVE_NOT_AVAILABLE having recorded nothing (EndTransactionProcessor): a
// retryable BrokerError, not ErrNotDurable ("recorded, not yet on disk").
func TestEndTransactionSlaveNotAvailableIsRetryable(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg-slave"})
	r := HalfReceipt{ProducerGroup: "pg-slave", Topic: "pay", BrokerName: fakeBrokerName, BrokerAddr: f.addr,
		CommitLogOffset: 1000, QueueOffset: 3, MsgID: "UNIQ", TransactionID: "TX"}
	f.setEnd(remoting.RespSlaveNotAvailable, "")
	err := p.EndTransaction(ctxT(t, 10*time.Second), r, Commit)
	if errors.Is(err, ErrNotDurable) || !IsRetryable(err) {
		t.Fatalf("EndTransaction = %v: reported as recorded, though a slave recorded nothing", err)
	}
}

// With MaxMessageSize above the 16 MiB frame limit, a message the frame
// cannot carry fails at once with ErrMessageTooLarge, not as a retryable
// transport error after three local "attempts".
func TestOversizeFrameIsPermanent(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, func(o *Options) { o.MaxMessageSize = 32 << 20 })
	p := newProducer(t, c, ProducerOptions{})
	_, err := p.Send(ctxT(t, 30*time.Second), &Message{Topic: "t", Body: make([]byte, 17<<20)})
	if err == nil || IsRetryable(err) {
		t.Fatalf("Send of a message larger than any frame = %v (retryable %v), %d sends reached the broker", err, IsRetryable(err), len(f.sent()))
	}
}
