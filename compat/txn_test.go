package compat

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/halfbackmq/halfback/broker/store/storetest"
	"github.com/halfbackmq/halfback/broker/txn"
)

// localTxns is the official client's TransactionListener: each message's
// body says what the local transaction answers first and what a check-back
// answers (checkAnswer, when set, overrides the latter for every message).
type localTxns struct {
	checks      atomic.Int64
	checkAnswer atomic.Int32 // 0 = by body
}

var firstAnswer = map[string]primitive.LocalTransactionState{
	"commit": primitive.CommitMessageState, "rollback": primitive.RollbackMessageState,
	"unknown-then-commit": primitive.UnknowState, "unknown-then-rollback": primitive.UnknowState,
	"unknown-forever": primitive.UnknowState,
}

var checkAnswer = map[string]primitive.LocalTransactionState{
	"unknown-then-commit": primitive.CommitMessageState, "unknown-then-rollback": primitive.RollbackMessageState,
	"unknown-forever": primitive.UnknowState,
}

func (l *localTxns) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	return firstAnswer[string(m.Body)]
}

func (l *localTxns) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.checks.Add(1)
	if a := l.checkAnswer.Load(); a != 0 {
		return primitive.LocalTransactionState(a)
	}
	return checkAnswer[string(m.Body)]
}

func newTxnProducer(t *testing.T, c *cluster, group string, l primitive.TransactionListener) rocketmq.TransactionProducer {
	t.Helper()
	p, err := rocketmq.NewTransactionProducer(l, producer.WithNsResolver(c.resolver()), producer.WithGroupName(group),
		producer.WithInstanceName(uniq("ti")), producer.WithRetry(2), producer.WithSendMsgTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

func startTxnCluster(t *testing.T) *cluster {
	c := startCluster(t)
	c.b.Close()
	c.opts.Txn = txn.Options{Timeout: 200 * time.Millisecond, CheckInterval: 200 * time.Millisecond, CheckMax: 3}
	c.startBroker()
	return c
}

func consumeAll(t *testing.T, c *cluster, topic string) *received {
	got := newReceived()
	pc := newPushConsumer(t, c, uniq("cg"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	t.Cleanup(func() { pc.Shutdown() })
	return got
}

func TestTransactionProducerOutcomesAndCheckBack(t *testing.T) {
	c := startTxnCluster(t)
	topic, group := uniq("txn"), uniq("tpg")
	l := &localTxns{}
	p := newTxnProducer(t, c, group, l)
	defer p.Shutdown()
	for _, body := range []string{"commit", "rollback", "unknown-then-commit", "unknown-then-rollback"} {
		res, err := p.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte(body)))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("%s: %+v %v", body, res, err)
		}
	}
	got := consumeAll(t, c, topic)
	waitFor(t, 30*time.Second, "both committed messages", func() bool {
		return got.has("commit") && got.has("unknown-then-commit")
	})
	waitFor(t, 30*time.Second, "every transaction resolved", func() bool {
		s := c.b.Transactions().Stats()
		return s.Pending == 0 && s.Commits == 1 && s.Rollbacks == 1 && s.CheckCommits == 1 && s.CheckRollbacks == 1
	})
	if got.has("rollback") || got.has("unknown-then-rollback") || got.distinct() != 2 {
		t.Fatalf("consumed %v", got.msgs)
	}
	for body, n := range got.msgs {
		if n != 1 {
			t.Fatalf("%s consumed %d times", body, n)
		}
	}
}

func TestCheckBackWaitsForANewProducerOfTheGroup(t *testing.T) {
	c := startTxnCluster(t)
	topic, group := uniq("txn"), uniq("tpg")
	first := newTxnProducer(t, c, group, &localTxns{})
	if _, err := first.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte("unknown-then-commit"))); err != nil {
		t.Fatal(err)
	}
	first.Shutdown() // gone before any check
	waitFor(t, 30*time.Second, "checks that reach nobody", func() bool { return c.b.Transactions().Stats().Unreached >= 3 })
	if s := c.b.Transactions().Stats(); s.Pending != 1 || s.ParkedTotal != 0 {
		t.Fatalf("with no producer online: %+v", s)
	}
	// A producer heartbeats to the brokers of the topics it has sent to:
	// the new one is reachable once it sends.
	second := newTxnProducer(t, c, group, &localTxns{})
	defer second.Shutdown()
	if _, err := second.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte("commit"))); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, c, topic)
	waitFor(t, 30*time.Second, "the message committed by the new producer", func() bool {
		return got.has("unknown-then-commit") && got.has("commit")
	})
	// At least one check reached the new producer (the unreached ones
	// count apart); a second may have, had its oneway commit taken longer
	// than the check interval to land, but only one commit counts.
	if s := c.b.Transactions().Stats(); s.CheckCommits != 1 || s.Checks < 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestParkedAfterMaxChecksThenResumed(t *testing.T) {
	c := startTxnCluster(t)
	topic, group := uniq("txn"), uniq("tpg")
	l := &localTxns{}
	p := newTxnProducer(t, c, group, l)
	defer p.Shutdown()
	res, err := p.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte("unknown-forever")))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the transaction parked", func() bool { return len(c.b.Transactions().List(txn.Parked, 0)) == 1 })
	// The broker parks it a check interval after sending the third check,
	// which a loaded producer may not have taken yet.
	waitFor(t, 30*time.Second, "the producer to take the third check", func() bool { return l.checks.Load() >= 3 })
	if n := l.checks.Load(); n != 3 {
		t.Fatalf("checks before parking = %d, want 3", n)
	}
	l.checkAnswer.Store(int32(primitive.CommitMessageState))
	got := consumeAll(t, c, topic)
	if _, err := c.b.Transactions().Resume(context.Background(), res.MsgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the resumed transaction delivered", func() bool { return got.has("unknown-forever") })
}

// The official client rolls a transaction back at once when its half send
// is answered FLUSH_DISK_TIMEOUT (the half message is stored, not yet
// durable). The rollback must stand: the message is never delivered and
// never checked back, though the check listener would commit it.
func TestRollbackAfterAHalfSendsFlushTimeoutStands(t *testing.T) {
	c := startCluster(t)
	c.b.Close()
	g := storetest.NewFlushGate()
	g.Tune(&c.opts.Store)
	c.opts.Txn = txn.Options{Timeout: 200 * time.Millisecond, CheckInterval: 200 * time.Millisecond, CheckMax: 3}
	c.startBroker()
	topic, group := uniq("txn"), uniq("tpg")
	l := &localTxns{}
	p := newTxnProducer(t, c, group, l)
	defer p.Shutdown()
	// Routes and the topic first, on a flushing store.
	if _, err := p.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte("rollback"))); err != nil {
		t.Fatal(err)
	}
	open := g.Hold(t, c.b.Store())
	res, err := p.SendMessageInTransaction(context.Background(), primitive.NewMessage(topic, []byte("unknown-then-commit")))
	if err != nil || res.Status != primitive.SendFlushDiskTimeout || res.State != primitive.RollbackMessageState {
		t.Fatalf("half send with a stuck fsync: %+v, %v; want FLUSH_DISK_TIMEOUT and a rollback", res, err)
	}
	open()
	got := consumeAll(t, c, topic)
	waitFor(t, 30*time.Second, "the transaction resolved", func() bool {
		s := c.b.Transactions().Stats()
		return s.Pending == 0 && s.Rollbacks+s.CheckCommits+s.CheckRollbacks == 2
	})
	if s := c.b.Transactions().Stats(); s.Rollbacks != 2 || s.Checks != 0 || got.has("unknown-then-commit") {
		t.Fatalf("stats %+v, consumed %v; want both rolled back by the producer, no check-back, nothing delivered", s, got.msgs)
	}
}
