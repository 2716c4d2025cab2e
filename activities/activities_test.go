package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/halfbackmq/halfback/activities"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantPermanent fails unless err is a non-retryable ApplicationError of
// errType.
func wantPermanent(t *testing.T, what string, err error, errType string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != errType {
		t.Fatalf("%s: error %v (%T), want a non-retryable %s", what, err, err, errType)
	}
}

// wantRetryable fails unless err is non-nil and not a non-retryable
// ApplicationError.
func wantRetryable(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || workflows.IsPermanent(err) {
		t.Fatalf("%s: error %v, want a retryable one", what, err)
	}
}

func TestLocalTransactions(t *testing.T) {
	ctx := ctxT(t)
	db := txnbridgetest.OpenDB(t)
	a := &activities.Activities{DB: db}
	if err := db.SetStock(ctx, "sku-1", 3); err != nil {
		t.Fatal(err)
	}
	in := workflows.OrderInput{OrderID: "o1", User: "alice", SKU: "sku-1", Qty: 2, Amount: 1500}
	if err := a.CreateOrderLocal(ctx, "o1/create", in); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateOrderLocal(ctx, "o1/create", in); err != nil {
		t.Fatalf("a second run of a committed local transaction: %v, want success", err)
	}
	if st, _ := db.Stock(ctx, "sku-1"); st != 1 {
		t.Fatalf("stock %d after one order of 2 from 3", st)
	}
	wantPermanent(t, "out of stock", a.CreateOrderLocal(ctx, "o2/create",
		workflows.OrderInput{OrderID: "o2", User: "bob", SKU: "sku-1", Qty: 2, Amount: 10}), workflows.ErrTypeOutOfStock)
	wantPermanent(t, "invalid", a.CreateOrderLocal(ctx, "o3/create", workflows.OrderInput{OrderID: "o3"}), workflows.ErrTypeInvalidInput)

	if status, err := a.PaymentState(ctx, "o1"); err != nil || status != workflows.StatusPendingPayment {
		t.Fatalf("PaymentState %q, %v", status, err)
	}
	wantPermanent(t, "bad amount", a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p", Amount: 1}),
		workflows.ErrTypeBadAmount)
	if _, err := db.Fence(ctx, "o1/pay"); err != nil {
		t.Fatal(err)
	}
	wantPermanent(t, "fenced", a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p", Amount: 1500}),
		workflows.ErrTypeFenced)
	if err := a.MarkPaidLocal(ctx, "o1/pay-2", "o1", workflows.PayInput{PaymentID: "p", Amount: 1500}); err != nil {
		t.Fatal(err)
	}
	if status, err := a.PaymentState(ctx, "o1"); err != nil || status != workflows.StatusPaid {
		t.Fatalf("PaymentState %q, %v", status, err)
	}
	wantPermanent(t, "cancel a paid order", a.CancelLocal(ctx, "o1/cancel", "o1", "late"), workflows.ErrTypeBadState)
	_, err := a.PaymentState(ctx, "nope")
	wantPermanent(t, "unknown order", err, workflows.ErrTypeNotFound)
}

// twoOrders returns Activities on a new database holding orders o1 and
// o2 (500 each, created under o1/create and o2/create), both unpaid.
func twoOrders(t *testing.T) *activities.Activities {
	t.Helper()
	ctx := ctxT(t)
	db := txnbridgetest.OpenDB(t)
	a := &activities.Activities{DB: db}
	if err := db.SetStock(ctx, "sku-1", 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"o1", "o2"} {
		in := workflows.OrderInput{OrderID: id, User: "u", SKU: "sku-1", Qty: 1, Amount: 500}
		if err := a.CreateOrderLocal(ctx, id+"/create", in); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// A payment id that paid another order fails MarkPaidLocal permanently,
// instead of being retried until the check-back fences the step; the
// order can still be paid with its own payment.
func TestMarkPaidLocalPaymentIDTaken(t *testing.T) {
	ctx := ctxT(t)
	a := twoOrders(t)
	if err := a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p1", Amount: 500}); err != nil {
		t.Fatal(err)
	}
	err := a.MarkPaidLocal(ctx, "o2/pay", "o2", workflows.PayInput{PaymentID: "p1", Amount: 500})
	wantPermanent(t, "o1's payment id", err, workflows.ErrTypePaymentExists)
	if !errors.Is(err, orders.ErrPaymentExists) {
		t.Fatalf("error %v does not wrap orders.ErrPaymentExists", err)
	}
	if err := a.MarkPaidLocal(ctx, "o2/pay", "o2", workflows.PayInput{PaymentID: "p2", Amount: 500}); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p1", Amount: 500}); err != nil {
		t.Fatalf("a second run of o1's payment: %v, want success", err)
	}
	// o1's pay transaction again with another payment (the workflow reset
	// to before its pay step): that payment was not recorded, so it is
	// refused (the workflow lists it for a refund), not taken.
	wantPermanent(t, "o1's pay transaction with another payment",
		a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p3", Amount: 500}), workflows.ErrTypeBadState)
}

// OrderState names the payment the database recorded: a workflow whose
// pay step the database refused (reset to before it and paid again with
// another payment) reports the order PAID by the payment it took.
func TestOrderStateNamesRecordedPayment(t *testing.T) {
	ctx := ctxT(t)
	a := twoOrders(t)
	want := func(orderID string, w workflows.OrderState) {
		t.Helper()
		if s, err := a.OrderState(ctx, orderID); err != nil || s != w {
			t.Fatalf("OrderState(%s) %+v, %v; want %+v", orderID, s, err, w)
		}
	}
	want("o1", workflows.OrderState{Status: workflows.StatusPendingPayment})
	if err := a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p1", Amount: 500}); err != nil {
		t.Fatal(err)
	}
	wantPermanent(t, "o1's pay transaction with another payment",
		a.MarkPaidLocal(ctx, "o1/pay", "o1", workflows.PayInput{PaymentID: "p3", Amount: 500}), workflows.ErrTypeBadState)
	want("o1", workflows.OrderState{Status: workflows.StatusPaid, PaymentID: "p1"})
	if err := a.CancelLocal(ctx, "o2/cancel", "o2", "timeout"); err != nil {
		t.Fatal(err)
	}
	want("o2", workflows.OrderState{Status: workflows.StatusCancelled})
	_, err := a.OrderState(ctx, "nope")
	wantPermanent(t, "unknown order", err, workflows.ErrTypeNotFound)
	_, err = (&activities.Activities{}).OrderState(ctx, "o1")
	wantRetryable(t, "no DB", err)
}

func TestCancelLocalReleasesStock(t *testing.T) {
	ctx := ctxT(t)
	db := txnbridgetest.OpenDB(t)
	a := &activities.Activities{DB: db}
	if err := db.SetStock(ctx, "sku-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateOrderLocal(ctx, "o1/create", workflows.OrderInput{OrderID: "o1", User: "u", SKU: "sku-1", Qty: 2, Amount: 5}); err != nil {
		t.Fatal(err)
	}
	if err := a.CancelLocal(ctx, "o1/cancel", "o1", "timeout"); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Stock(ctx, "sku-1"); st != 2 {
		t.Fatalf("stock %d after the cancel, want 2", st)
	}
	if status, _ := a.PaymentState(ctx, "o1"); status != workflows.StatusCancelled {
		t.Fatalf("status %q", status)
	}
}

func TestMissingDependencyIsRetryable(t *testing.T) {
	ctx := ctxT(t)
	var a activities.Activities
	wantRetryable(t, "no DB", a.CreateOrderLocal(ctx, "o/create", workflows.OrderInput{}))
	_, err := a.SendHalf(ctx, workflows.SendHalfInput{TxnID: "o/create", Topic: "t", Body: []byte("x")})
	wantRetryable(t, "no producer", err)
	if !errors.Is(err, activities.ErrNotConfigured) {
		t.Fatalf("error %v, want ErrNotConfigured", err)
	}
}

func TestPaymentPolicy(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, activities.DefaultMaxChecks}, {4, 4}} {
		p, err := (&activities.Activities{MaxChecks: tc.set}).PaymentPolicy(context.Background())
		if err != nil || p.MaxChecks != tc.want {
			t.Fatalf("MaxChecks %d: policy %+v, %v; want %d", tc.set, p, err, tc.want)
		}
	}
}

// The policy carries the check level's delay: the one set, else the
// level's under RocketMQ's default levels (delay.DefaultLevels), else none.
func TestPaymentPolicyCheckDelay(t *testing.T) {
	levels, err := delay.ParseLevels(delay.DefaultLevels)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    activities.Activities
		want time.Duration
	}{
		{activities.Activities{}, levels[activities.DefaultCheckLevel-1]},
		{activities.Activities{CheckLevel: 4, CheckDelay: 7 * time.Second}, 7 * time.Second},
		{activities.Activities{CheckLevel: len(levels) + 1}, 0},
	} {
		p, err := tc.a.PaymentPolicy(context.Background())
		if err != nil || p.CheckDelay != tc.want {
			t.Fatalf("%+v: policy %+v, %v; want CheckDelay %v", tc.a, p, err, tc.want)
		}
	}
	for l := range levels {
		p, _ := (&activities.Activities{CheckLevel: l + 1}).PaymentPolicy(context.Background())
		if p.CheckDelay != levels[l] {
			t.Fatalf("level %d: CheckDelay %v, want %v", l+1, p.CheckDelay, levels[l])
		}
	}
}

// registry records registered activity names.
type registry struct{ names []string }

func (r *registry) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) {
	r.names = append(r.names, o.Name)
}

func TestRegister(t *testing.T) {
	var r registry
	(&activities.Activities{}).Register(&r)
	sort.Strings(r.names)
	want := []string{workflows.ActivityCancelLocal, workflows.ActivityCreateOrderLocal, workflows.ActivityMarkPaidLocal,
		workflows.ActivityPaymentPolicy, workflows.ActivityPaymentState, workflows.ActivityOrderState, workflows.ActivitySendPaymentCheck,
		workflows.ActivitySendHalf, workflows.ActivityEndTransaction}
	sort.Strings(want)
	if !slices.Equal(r.names, want) {
		t.Fatalf("registered %v, want %v", r.names, want)
	}
}

func TestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent string // "" means retryable
	}{
		{fmt.Errorf("end: %w", client.ErrTransactionConflict), workflows.ErrTypeTransactionConflict},
		{fmt.Errorf("send: %w", client.ErrInvalidMessage), workflows.ErrTypeInvalidInput},
		{fmt.Errorf("mark paid: %w", orders.ErrPaymentExists), workflows.ErrTypePaymentExists},
		{&client.BrokerError{Op: "SEND_MESSAGE_V2", Code: remoting.RespMessageIllegal, Remark: "bad"}, workflows.ErrTypeBroker},
		{&client.BrokerError{Op: "SEND_MESSAGE_V2", Code: remoting.RespSystemBusy}, ""},
		{client.ErrClosed, ""},
		{context.Canceled, ""},
		{errors.New("connection reset by peer"), ""},
		{orders.ErrClosed, ""},
	} {
		err := activities.Classify(tc.err)
		if tc.permanent == "" {
			wantRetryable(t, tc.err.Error(), err)
		} else {
			wantPermanent(t, tc.err.Error(), err, tc.permanent)
		}
		if !errors.Is(err, tc.err) && tc.permanent == "" {
			t.Fatalf("%v: a retryable error is returned as it is, got %v", tc.err, err)
		}
	}
}

// consume subscribes a fresh group to topic and returns the channel its
// messages arrive on.
func consume(t *testing.T, c *client.Client, topic string) <-chan *client.MessageExt {
	t.Helper()
	ch := make(chan *client.MessageExt, 16)
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: "test-" + topic, FromWhere: client.ConsumeFromFirst,
		RebalanceInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, "*", func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		for _, m := range msgs {
			ch <- m
		}
		return client.ConsumeSuccess, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return ch
}

func receive(t *testing.T, ch <-chan *client.MessageExt, what string) *client.MessageExt {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s", what)
	}
	return nil
}

func TestSendHalfEndTransactionAgainstBroker(t *testing.T) {
	ctx := ctxT(t)
	_, c, p := startProducer(t, txnbridgetest.BrokerOptions{TxnTimeout: time.Hour})
	a := &activities.Activities{Producer: p}
	in := workflows.SendHalfInput{TxnID: "o1/create", Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderCreated,
		Keys: []string{"o1"}, Body: []byte(`{"orderId":"o1"}`)}
	r1, err := a.SendHalf(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.SendHalf(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 || r1.TransactionID != "o1/create" {
		t.Fatalf("a retried SendHalf got %+v, first %+v; want the same live half message", r2, r1)
	}
	events := consume(t, c, workflows.TopicOrderEvents)
	if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r1, Commit: true}); err != nil {
		t.Fatal(err)
	}
	m := receive(t, events, "committed OrderCreated")
	if m.MsgID != "o1/create" || m.Tags != workflows.TagOrderCreated || !slices.Equal(m.Keys, []string{"o1"}) {
		t.Fatalf("committed message %+v", m)
	}
	if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r1, Commit: true}); err != nil {
		t.Fatalf("a second commit: %v, want success", err)
	}
	wantPermanent(t, "rollback after commit", a.EndTransaction(ctx, workflows.EndInput{Receipt: r1}),
		workflows.ErrTypeTransactionConflict)
	_, err = a.SendHalf(ctx, workflows.SendHalfInput{TxnID: "o2/create", Topic: "bad topic", Body: []byte("x")})
	wantPermanent(t, "bad topic", err, workflows.ErrTypeInvalidInput)
}

func TestSendPaymentCheckIsDelayed(t *testing.T) {
	ctx := ctxT(t)
	_, c, p := startProducer(t, txnbridgetest.BrokerOptions{})
	a := &activities.Activities{Producer: p, CheckLevel: 2}
	checks := consume(t, c, workflows.TopicPaymentCheck)
	sent := time.Now()
	if _, err := a.SendPaymentCheck(ctx, "o1", 1); err != nil {
		t.Fatal(err)
	}
	m := receive(t, checks, "payment check")
	if waited := time.Since(sent); waited < 500*time.Millisecond {
		t.Fatalf("check delivered after %v; level 2 is 600ms", waited)
	}
	var pc workflows.PaymentCheck
	if err := json.Unmarshal(m.Body, &pc); err != nil || pc != (workflows.PaymentCheck{OrderID: "o1", Check: 1}) {
		t.Fatalf("check body %s (%v)", m.Body, err)
	}
	if m.MsgID != "o1/check/1" || !slices.Equal(m.Keys, []string{"o1"}) || m.Tags != workflows.TagPaymentCheck {
		t.Fatalf("check message %+v", m)
	}
	_, err := a.SendPaymentCheck(ctx, "o1", 0)
	wantPermanent(t, "check 0", err, workflows.ErrTypeInvalidInput)
}

// A step that runs again in a workflow reset to before it: its local
// transaction committed in the earlier run, whose half message was
// committed. SendHalf stores no second half message (the broker finds
// live ones of an id alone, so it would be stored and committed: the
// order's event twice), and ending it either way succeeds.
func TestSendHalfOfACommittedTransactionStoresNothing(t *testing.T) {
	ctx := ctxT(t)
	st, _, p := startProducer(t, txnbridgetest.BrokerOptions{TxnTimeout: time.Hour})
	db := txnbridgetest.OpenDB(t)
	if err := db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}
	a := &activities.Activities{Producer: p, DB: db}
	in := workflows.SendHalfInput{TxnID: "o1/create", Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderCreated,
		Keys: []string{"o1"}, Body: []byte(`{"orderId":"o1"}`)}
	order := workflows.OrderInput{OrderID: "o1", User: "u", SKU: "sku", Qty: 1, Amount: 1}
	// stored fails unless the topic holds o1/create once. It first sends
	// a plain message and waits until it is stored: the store dispatches
	// in commit-log order, so the messages committed before it are too.
	sentinels := 0
	stored := func(what string) {
		t.Helper()
		sentinels++
		id := fmt.Sprintf("sentinel-%d", sentinels)
		if _, err := p.Send(ctx, &client.Message{Topic: workflows.TopicOrderEvents, Body: []byte("x"), ID: id}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		testutil.WaitFor(t, 30*time.Second, id+" stored", func() bool {
			ids = ids[:0]
			found := false
			for _, m := range st.Stored(t, workflows.TopicOrderEvents) {
				if m.MsgID == id {
					found = true
				} else if !strings.HasPrefix(m.MsgID, "sentinel-") {
					ids = append(ids, m.MsgID)
				}
			}
			return found
		})
		if !slices.Equal(ids, []string{"o1/create"}) {
			t.Fatalf("%s: stored %v, want o1/create once", what, ids)
		}
	}
	for run := 1; run <= 2; run++ {
		r, err := a.SendHalf(ctx, in)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := a.CreateOrderLocal(ctx, in.TxnID, order); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r, Commit: true}); err != nil {
			t.Fatalf("run %d: commit: %v", run, err)
		}
	}
	stored("after a second run")
	// A third run whose local transaction is refused (a payment other
	// than the one recorded) rolls back what SendHalf returned.
	r, err := a.SendHalf(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	stored("after a rolled-back run")
}

// startProducer starts a broker with o and returns it with a client of it
// and a producer of group order-payment.
func startProducer(t *testing.T, o txnbridgetest.BrokerOptions) (*txnbridgetest.Stack, *client.Client, *client.Producer) {
	t.Helper()
	st := txnbridgetest.StartBroker(t, o)
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	p, err := c.NewProducer(client.ProducerOptions{Group: "order-payment"})
	if err != nil {
		t.Fatal(err)
	}
	return st, c, p
}

// The order events of one order, sent with the order id as sharding key,
// are committed to one queue of the topic, so an orderly consumer (the
// Kafka mirror) sees an order's OrderCreated before its OrderPaid; the
// orders themselves are spread over the queues.
func TestOrderEventsOfOneOrderShareAQueue(t *testing.T) {
	ctx := ctxT(t)
	_, c, p := startProducer(t, txnbridgetest.BrokerOptions{TxnTimeout: time.Hour})
	a := &activities.Activities{Producer: p}
	const orders = 8
	var receipts []client.HalfReceipt
	for i := range orders {
		id := fmt.Sprintf("o%d", i)
		for _, tag := range []string{workflows.TagOrderCreated, workflows.TagOrderPaid} {
			r, err := a.SendHalf(ctx, workflows.SendHalfInput{TxnID: id + "/" + tag, Topic: workflows.TopicOrderEvents, Tags: tag,
				Keys: []string{id}, ShardingKey: id, Body: []byte(`{"orderId":"` + id + `"}`)})
			if err != nil {
				t.Fatal(err)
			}
			receipts = append(receipts, r)
		}
	}
	events := consume(t, c, workflows.TopicOrderEvents)
	for _, r := range receipts {
		if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r, Commit: true}); err != nil {
			t.Fatal(err)
		}
	}
	queueOf, queues := map[string]int32{}, map[int32]bool{}
	for range 2 * orders {
		m := receive(t, events, "committed order event")
		id := m.Keys[0]
		if m.ShardingKey != id {
			t.Fatalf("%s: sharding key %q, want %q", m.MsgID, m.ShardingKey, id)
		}
		if q, seen := queueOf[id]; seen && q != m.QueueID {
			t.Fatalf("order %s's events on queues %d and %d, want one", id, q, m.QueueID)
		}
		queueOf[id], queues[m.QueueID] = m.QueueID, true
	}
	if len(queues) < 2 {
		t.Fatalf("%d orders' events all on queues %v, want them spread", orders, queues)
	}
}
