package txnbridge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
)

// The resolver against a real name server and broker. The helpers' names
// start with "resolver" to keep clear of the package's other tests.

// resolverWait bounds waits for check-backs (the test broker checks a half
// message 200 ms after it was stored, then every 200 ms).
const resolverWait = 30 * time.Second

// resolverEnv is a name server, a broker, an order database and a
// producer whose check listener is the resolver.
type resolverEnv struct {
	b     *broker.Broker
	db    *orders.DB
	p     *client.Producer
	topic string
}

var resolverSeq atomic.Int64

// resolverName returns a name unique to this test process.
func resolverName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, resolverSeq.Add(1))
}

// startResolverEnv starts the environment, closed when the test ends.
func startResolverEnv(t *testing.T) *resolverEnv {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	b, err := broker.Open(broker.Options{
		Store:        store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 16 << 20},
		Txn:          txn.Options{Timeout: 200 * time.Millisecond, CheckInterval: 200 * time.Millisecond},
		ListenAddr:   "127.0.0.1:0",
		NamesrvAddrs: []string{ns.Addr()},
		BrokerName:   resolverName("broker"),
		Logger:       quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	db, err := orders.Open(context.Background(), orders.Options{DSN: "file:" + filepath.Join(t.TempDir(), "orders.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := client.New(client.Options{NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p, err := c.NewProducer(client.ProducerOptions{Group: resolverName("orders"), CheckListener: txnbridge.NewResolver(db)})
	if err != nil {
		t.Fatal(err)
	}
	return &resolverEnv{b: b, db: db, p: p, topic: resolverName("order-events")}
}

// resolverCtx returns a context that ends after resolverWait or with the test.
func resolverCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), resolverWait)
	t.Cleanup(cancel)
	return ctx
}

// sendHalf stores a half message whose UNIQ_KEY is txnID.
func (e *resolverEnv) sendHalf(t *testing.T, txnID string) client.HalfReceipt {
	t.Helper()
	r, err := e.p.SendHalf(resolverCtx(t), &client.Message{Topic: e.topic, Body: []byte("order " + txnID),
		Keys: []string{txnID}, ID: txnID})
	if err != nil {
		t.Fatal(err)
	}
	if r.TransactionID != txnID {
		t.Fatalf("receipt transaction id %q, want %q", r.TransactionID, txnID)
	}
	return r
}

// visible returns how many times each UNIQ_KEY is stored in the topic:
// committed messages, visible to consumers.
func (e *resolverEnv) visible(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	st := e.b.Store()
	for _, q := range st.Queues() {
		if q.Topic != e.topic {
			continue
		}
		res, err := st.GetMessages(q.Topic, q.QueueID, q.MinOffset, store.GetOptions{MaxMessages: 10000, MaxBytes: 64 << 20})
		if err != nil {
			t.Fatalf("GetMessages %s/%d: %v", q.Topic, q.QueueID, err)
		}
		exts, err := message.DecodeAll(res.Records)
		if err != nil {
			t.Fatal(err)
		}
		for i := range exts {
			out[exts[i].Property(message.PropertyUniqKey)]++
		}
	}
	return out
}

// settled waits until the broker has no pending transaction left.
func (e *resolverEnv) settled(t *testing.T) txn.Stats {
	t.Helper()
	var s txn.Stats
	testutil.WaitFor(t, resolverWait, "every transaction resolved", func() bool {
		s = e.b.Transactions().Stats()
		return s.Pending == 0 && s.Parked == 0
	})
	return s
}

// A half message whose local transaction committed, but which nobody
// ended, is committed by the check-back.
func TestResolverCommitsCommittedLocalTxn(t *testing.T) {
	e := startResolverEnv(t)
	ctx := resolverCtx(t)
	if err := e.db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	const id = "wf-1/create"
	e.sendHalf(t, id)
	if err := e.db.CreateOrder(ctx, id, orders.Order{ID: "1", User: "ann", Amount: 1999, SKU: "sku", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	// The producer "crashes" here: no EndTransaction.
	testutil.WaitFor(t, resolverWait, "the checked-back commit", func() bool { return e.visible(t)[id] == 1 })
	if s := e.settled(t); s.CheckCommits < 1 || s.CheckRollbacks != 0 {
		t.Fatalf("broker stats %+v", s)
	}
}

// A half message with no local transaction is fenced and rolled back; the
// local transaction that tries to commit afterwards fails with ErrFenced,
// and so does a commit of the message.
func TestResolverFencesMissingLocalTxn(t *testing.T) {
	e := startResolverEnv(t)
	ctx := resolverCtx(t)
	if err := e.db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	const id = "wf-2/create"
	r := e.sendHalf(t, id)
	if s := e.settled(t); s.CheckRollbacks < 1 || s.CheckCommits != 0 {
		t.Fatalf("broker stats %+v", s)
	}
	if s, err := e.db.TxnState(ctx, id); err != nil || s != orders.TxnFenced {
		t.Fatalf("txn state %q, %v", s, err)
	}
	err := e.db.CreateOrder(ctx, id, orders.Order{ID: "2", User: "bob", Amount: 500, SKU: "sku", Qty: 1})
	if !errors.Is(err, orders.ErrFenced) {
		t.Fatalf("local transaction after the fence: %v", err)
	}
	if _, err := e.db.Order(ctx, "2"); !errors.Is(err, orders.ErrNotFound) {
		t.Fatalf("order of a fenced transaction: %v", err)
	}
	if n, err := e.db.Stock(ctx, "sku"); err != nil || n != 5 {
		t.Fatalf("stock %d, %v", n, err)
	}
	if err := e.p.EndTransaction(ctx, r, client.Commit); !errors.Is(err, client.ErrTransactionConflict) {
		t.Fatalf("commit after the fence: %v", err)
	}
	if n := e.visible(t)[id]; n != 0 {
		t.Fatalf("fenced message stored %d times in the topic", n)
	}
}

// While the database fails, check-backs are answered Unknown: the broker
// keeps asking and the message stays half.
func TestResolverUnknownWhileDBFails(t *testing.T) {
	e := startResolverEnv(t)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.sendHalf(t, "wf-3/create")
	testutil.WaitFor(t, resolverWait, "repeated check-backs", func() bool { return e.b.Transactions().Stats().Checks >= 3 })
	if s := e.b.Transactions().Stats(); s.Pending != 1 || s.CheckCommits+s.CheckRollbacks != 0 {
		t.Fatalf("broker stats %+v", s)
	}
	if got := e.visible(t); len(got) != 0 {
		t.Fatalf("messages visible: %v", got)
	}
}

// resolverOutcome is what one racing transaction's local side saw.
type resolverOutcome struct {
	receipt client.HalfReceipt
	local   error
}

// Local transactions race their check-backs (they run from before the
// first check to well after it; half of them end their transaction, half
// leave it to the check): a message is visible iff its local transaction
// committed, never without one.
func TestResolverNeverCommitsWithoutLocalTxn(t *testing.T) {
	e := startResolverEnv(t)
	ctx := resolverCtx(t)
	const n = 16
	if err := e.db.SetStock(ctx, "sku", n); err != nil {
		t.Fatal(err)
	}
	out := make([]resolverOutcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = e.raceOne(ctx, t, i) })
	}
	wg.Wait()
	e.settled(t)
	committed := 0
	for i, o := range out {
		id := resolverTxnID(i)
		state, err := e.db.TxnState(ctx, id)
		switch {
		case err != nil:
			t.Fatal(err)
		case o.local == nil && state == orders.TxnCommitted:
			committed++
			testutil.WaitFor(t, resolverWait, id+" visible", func() bool { return e.visible(t)[id] == 1 })
		case errors.Is(o.local, orders.ErrFenced) && state == orders.TxnFenced:
		default:
			t.Fatalf("%s: local transaction %v, state %q", id, o.local, state)
		}
	}
	for id, count := range e.visible(t) {
		if state, err := e.db.TxnState(ctx, id); err != nil || state != orders.TxnCommitted || count != 1 {
			t.Fatalf("message %s visible %d times, its local transaction %q (%v)", id, count, state, err)
		}
	}
	t.Logf("%d of %d committed, %d fenced; broker %+v", committed, n, n-committed, e.b.Transactions().Stats())
}

// resolverTxnID is the racing transaction i's id.
func resolverTxnID(i int) string { return fmt.Sprintf("wf-race-%d/create", i) }

// raceOne sends transaction i's half message, runs its local transaction
// i*30 ms later (the first check comes after 200 ms), and for even i ends
// the transaction as the local one went.
func (e *resolverEnv) raceOne(ctx context.Context, t *testing.T, i int) resolverOutcome {
	id := resolverTxnID(i)
	r, err := e.p.SendHalf(ctx, &client.Message{Topic: e.topic, Body: []byte(id), ID: id})
	if err != nil {
		t.Error(err)
		return resolverOutcome{local: err}
	}
	// A deliberate stagger against the check schedule, not a wait for an event.
	select {
	case <-time.After(time.Duration(i) * 30 * time.Millisecond):
	case <-ctx.Done():
	}
	o := resolverOutcome{receipt: r}
	o.local = e.db.CreateOrder(ctx, id, orders.Order{ID: fmt.Sprint("race-", i), User: "u", Amount: 1, SKU: "sku", Qty: 1})
	if i%2 == 1 {
		return o
	}
	state := client.Rollback
	if o.local == nil {
		state = client.Commit
	}
	if err := e.p.EndTransaction(ctx, r, state); err != nil {
		t.Errorf("%s: EndTransaction(%v) after local %v: %v", id, state, o.local, err)
	}
	return o
}

// The listener's decisions without a broker: the id comes from the
// receipt, else from the message; no id or a failing database is Unknown.
func TestResolverDecisions(t *testing.T) {
	ctx := resolverCtx(t)
	db, err := orders.Open(ctx, orders.Options{DSN: "file:" + filepath.Join(t.TempDir(), "orders.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrder(ctx, "done", orders.Order{ID: "1", User: "u", Amount: 1, SKU: "sku", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	l := txnbridge.NewResolver(db)
	for _, tc := range []struct {
		name string
		req  *client.CheckRequest
		want client.TransactionState
	}{
		{"committed", &client.CheckRequest{Receipt: client.HalfReceipt{TransactionID: "done"}}, client.Commit},
		{"by message id", &client.CheckRequest{Message: &client.MessageExt{MsgID: "done"}}, client.Commit},
		{"unknown id", &client.CheckRequest{Receipt: client.HalfReceipt{TransactionID: "never"}}, client.Rollback},
		{"no id", &client.CheckRequest{Message: &client.MessageExt{}}, client.Unknown},
		{"nil request", nil, client.Unknown},
	} {
		if got := l.CheckTransaction(ctx, tc.req); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if s, _ := db.TxnState(ctx, "never"); s != orders.TxnFenced {
		t.Fatalf("an answered Rollback left state %q", s)
	}
	db.Close()
	req := &client.CheckRequest{Receipt: client.HalfReceipt{TransactionID: "done"}}
	if got := l.CheckTransaction(ctx, req); got != client.Unknown {
		t.Fatalf("closed database: %v, want Unknown", got)
	}
}

// A workflow reset to before its pay step pays again under the pay step's
// transaction id with another payment: MarkPaid refuses it (ErrBadState),
// the step rolls its half message back and the payment is refunded. A
// check-back that comes before that rollback (a slow or restarted worker)
// must not commit the refused payment's OrderPaid event because the
// transaction id committed the first payment.
func TestResolverRollsBackPaymentTheOrderDidNotTake(t *testing.T) {
	e := startResolverEnv(t)
	ctx := resolverCtx(t)
	if err := e.db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	if err := e.db.CreateOrder(ctx, "wf-9/create", orders.Order{ID: "9", User: "ann", Amount: 1999, SKU: "sku", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	const id = "wf-9/pay"
	if err := e.db.MarkPaid(ctx, id, "9", "p1", 1999); err != nil { // the run before the reset
		t.Fatal(err)
	}
	body := []byte(`{"orderId":"9","user":"ann","sku":"sku","qty":1,"amount":1999,"paymentId":"p3"}`)
	if _, err := e.p.SendHalf(ctx, &client.Message{Topic: e.topic, Tags: "OrderPaid", Body: body, Keys: []string{"9"}, ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.MarkPaid(ctx, id, "9", "p3", 1999); !errors.Is(err, orders.ErrBadState) {
		t.Fatalf("MarkPaid of another payment under the committed id: %v, want ErrBadState", err)
	}
	// The worker is slow: the check-back comes before the rollback.
	s := e.settled(t)
	if n := e.visible(t)[id]; n != 0 {
		t.Fatalf("OrderPaid of refused payment p3 committed by the check-back (%d stored, stats %+v)", n, s)
	}
}

// The same for a cancel step: a workflow reset to before its cancel step
// cancels again under the step's id with another reason while the replaced
// run's half message is live. The database keeps one run's cancel; the
// check-back must not commit the other run's OrderCancelled event, or
// consumers would see the order cancelled twice.
func TestResolverRollsBackCancelTheOrderDidNotRecord(t *testing.T) {
	e := startResolverEnv(t)
	ctx := resolverCtx(t)
	if err := e.db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	if err := e.db.CreateOrder(ctx, "wf-8/create", orders.Order{ID: "8", User: "ann", Amount: 1999, SKU: "sku", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	const id = "wf-8/cancel"
	if err := e.db.Cancel(ctx, id, "8", "payment timeout"); err != nil { // the run before the reset
		t.Fatal(err)
	}
	body := []byte(`{"orderId":"8","user":"ann","sku":"sku","qty":1,"amount":1999,"reason":"cancelled by user"}`)
	if _, err := e.p.SendHalf(ctx, &client.Message{Topic: e.topic, Tags: "OrderCancelled", Body: body, Keys: []string{"8"}, ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Cancel(ctx, id, "8", "cancelled by user"); !errors.Is(err, orders.ErrBadState) && !errors.Is(err, orders.ErrAlreadyCommitted) {
		t.Fatalf("Cancel with another reason under the committed id: %v, want ErrBadState or ErrAlreadyCommitted", err)
	}
	s := e.settled(t)
	if n := e.visible(t)[id]; n != 0 {
		t.Fatalf("OrderCancelled of an unrecorded reason committed by the check-back (%d stored, stats %+v)", n, s)
	}
}

// The check-back of a committed pay or cancel id commits only the event
// the order recorded: its payment, its reason.
func TestResolverCommitsOnlyTheRecordedEvent(t *testing.T) {
	ctx := resolverCtx(t)
	db, err := orders.Open(ctx, orders.Options{DSN: "file:" + filepath.Join(t.TempDir(), "orders.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SetStock(ctx, "sku", 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		if err := db.CreateOrder(ctx, id+"/create", orders.Order{ID: id, User: "u", Amount: 1, SKU: "sku", Qty: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkPaid(ctx, "1/pay", "1", "p1", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.Cancel(ctx, "2/cancel", "2", "timeout"); err != nil {
		t.Fatal(err)
	}
	check := func(id, tags, body string) *client.CheckRequest {
		return &client.CheckRequest{Receipt: client.HalfReceipt{TransactionID: id},
			Message: &client.MessageExt{Message: client.Message{Tags: tags, Body: []byte(body)}}}
	}
	l := txnbridge.NewResolver(db)
	for _, tc := range []struct {
		name string
		req  *client.CheckRequest
		want client.TransactionState
	}{
		{"recorded payment", check("1/pay", "OrderPaid", `{"orderId":"1","paymentId":"p1"}`), client.Commit},
		{"other payment", check("1/pay", "OrderPaid", `{"orderId":"1","paymentId":"p2"}`), client.Rollback},
		{"recorded reason", check("2/cancel", "OrderCancelled", `{"orderId":"2","reason":"timeout"}`), client.Commit},
		{"other reason", check("2/cancel", "OrderCancelled", `{"orderId":"2","reason":"user"}`), client.Rollback},
		{"no reason", check("2/cancel", "OrderCancelled", `{"orderId":"2"}`), client.Rollback},
		{"not an order event", check("2/cancel", "OrderCancelled", `not json`), client.Commit},
		{"other tag", check("2/cancel", "Other", `{"orderId":"2","reason":"user"}`), client.Commit},
	} {
		if got := l.CheckTransaction(ctx, tc.req); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
