package client

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// Transactions against the real broker.

// checkWait bounds the wait for a check-back (the test broker checks
// after 200 ms).
const checkWait = 30 * time.Second

// barrier sends a plain message to topic and waits until it is stored, so
// that whatever the broker did for the topic before is visible; it returns
// the topic's messages.
func (c *cluster) barrier(t testing.TB, p *Producer, topic string) []*MessageExt {
	t.Helper()
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("barrier")})
	if err != nil {
		t.Fatal(err)
	}
	var got []*MessageExt
	waitFor(t, "the barrier message", func() bool {
		got = c.stored(t, topic)
		for _, m := range got {
			if m.MsgID == res.MsgID {
				return true
			}
		}
		return false
	})
	return got
}

// countID returns how many of msgs have MsgID id.
func countID(msgs []*MessageExt, id string) int {
	n := 0
	for _, m := range msgs {
		if m.MsgID == id {
			n++
		}
	}
	return n
}

func TestTxnCommitMakesVisible(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 20*time.Second)
	topic := uniq("pay")
	m := &Message{Topic: topic, Body: []byte("charge 10"), Tags: "charge", Keys: []string{"order-1"},
		Properties: map[string]string{"tenant": "acme"}}
	r, err := p.SendHalf(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.stored(t, topic); len(got) != 0 {
		t.Fatalf("half message visible before commit: %v", got)
	}
	if err := p.EndTransaction(ctx, r, Commit); err != nil {
		t.Fatal(err)
	}
	var got []*MessageExt
	waitFor(t, "the committed message", func() bool { got = cl.stored(t, topic); return len(got) == 1 })
	e := got[0]
	if e.MsgID != r.MsgID || string(e.Body) != "charge 10" || e.Tags != "charge" || e.Keys[0] != "order-1" ||
		e.Properties["tenant"] != "acme" {
		t.Fatalf("committed message %+v (receipt %+v)", e, r)
	}
	// Committing again is a no-op that reports success.
	if err := p.EndTransaction(ctx, r, Commit); err != nil {
		t.Fatalf("duplicate commit: %v", err)
	}
	if got := cl.barrier(t, p, topic); countID(got, r.MsgID) != 1 {
		t.Fatalf("after a duplicate commit the topic holds %d copies", countID(got, r.MsgID))
	}
	// Rolling back a committed transaction is a conflict.
	if err := p.EndTransaction(ctx, r, Rollback); !errors.Is(err, ErrTransactionConflict) {
		t.Fatalf("rollback after commit: %v", err)
	}
}

func TestTxnRollbackNeverVisible(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 20*time.Second)
	topic := uniq("pay")
	r, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge 10")})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second rollback is a no-op that reports success
		if err := p.EndTransaction(ctx, r, Rollback); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EndTransaction(ctx, r, Commit); !errors.Is(err, ErrTransactionConflict) {
		t.Fatalf("commit after rollback: %v", err)
	}
	if got := cl.barrier(t, p, topic); countID(got, r.MsgID) != 0 || len(got) != 1 {
		t.Fatalf("rolled-back message visible: %d messages", len(got))
	}
}

// A receipt serialised by one process is ended by another of the group.
func TestTxnReceiptEndedElsewhere(t *testing.T) {
	cl := startCluster(t, nil, nil)
	group := uniq("pg")
	ctx := ctxT(t, 20*time.Second)
	topic := uniq("pay")
	first := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{Group: group})
	r, err := first.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge 10")})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back HalfReceipt
	if err := json.Unmarshal(payload, &back); err != nil {
		t.Fatal(err)
	}
	second := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{Group: group})
	if err := second.EndTransaction(ctx, back, Commit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the committed message", func() bool { return countID(cl.stored(t, topic), r.MsgID) == 1 })
}

// A receipt whose offsets point at no half message of the group is refused.
func TestTxnForgedReceiptRejected(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 20*time.Second)
	topic := uniq("pay")
	r, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge 10")})
	if err != nil {
		t.Fatal(err)
	}
	forged := r
	forged.CommitLogOffset += 1 << 20
	if err := p.EndTransaction(ctx, forged, Commit); !errors.Is(err, ErrTransactionRejected) {
		t.Fatalf("forged offset: %v", err)
	}
	other := newProducer(t, c, ProducerOptions{})
	wrongGroup := r
	wrongGroup.ProducerGroup = other.Group()
	if err := other.EndTransaction(ctx, wrongGroup, Commit); !errors.Is(err, ErrTransactionRejected) {
		t.Fatalf("another group's half message: %v", err)
	}
	if got := cl.barrier(t, p, topic); countID(got, r.MsgID) != 0 {
		t.Fatal("a rejected end committed the message")
	}
}

// A half message nobody ends is checked back; the listener's Commit makes
// it visible.
func TestTxnCheckBackCommits(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn.Timeout, o.Txn.CheckInterval = 200*time.Millisecond, 200*time.Millisecond
	})
	c := newClient(t, cl.ns.Addr(), nil)
	var (
		mu    sync.Mutex
		asked []*CheckRequest
	)
	p := newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(_ context.Context, r *CheckRequest) TransactionState {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, r)
			return Commit
		})})
	topic := uniq("pay")
	r, err := p.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("charge 10"), Keys: []string{"order-7"}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, checkWait, "the checked-back commit", func() bool { return countID(cl.stored(t, topic), r.MsgID) == 1 })
	mu.Lock()
	defer mu.Unlock()
	q := asked[0]
	if q.Receipt.MsgID != r.MsgID || q.Receipt.ProducerGroup != p.Group() || q.Message.Topic != topic ||
		string(q.Message.Body) != "charge 10" || q.Message.Keys[0] != "order-7" {
		t.Fatalf("listener asked %+v about %+v", q.Receipt, q.Message)
	}
}
