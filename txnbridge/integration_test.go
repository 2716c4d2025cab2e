package txnbridge_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// stack is a broker, an order database, a Temporal dev server and a
// worker running the plugin.
type stack struct {
	broker *txnbridgetest.Stack
	client *client.Client
	db     *orders.DB
	tc     temporalclient.Client
	worker worker.Worker
}

const maxChecks = 2 // the plugin's MaxPaymentChecks in these tests

// quietTxnTimeout is the broker's TxnTimeout in the tests that run
// workflows: no check-back while they run. With the 500 ms default, a
// local transaction that CI's load delays that long after its half
// message is fenced by the check-back, and the step runs again under a
// new id; the test then finds other message ids, or, when every attempt
// is fenced, a failed order.
const quietTxnTimeout = time.Minute

// startStack starts the stack; its broker checks a half message back
// txnTimeout after it was stored.
func startStack(t *testing.T, txnTimeout time.Duration) *stack {
	t.Helper()
	return startStackWith(t, txnTimeout, worker.Options{})
}

// startStackWith is startStack with the worker's options wo (the plugin
// is added to them).
func startStackWith(t *testing.T, txnTimeout time.Duration, wo worker.Options) *stack {
	t.Helper()
	return startStackOf(t, txnTimeout, wo, false)
}

// startTracedStackWith is startStackWith set up as the worker is
// (worker/stack.go): the tracing interceptor is on the Temporal client
// (s.tc), so the check consumer's signals join the order's trace too, and
// the plugin adds none. s.tc then starts and signals traced.
func startTracedStackWith(t *testing.T, txnTimeout time.Duration, wo worker.Options) *stack {
	t.Helper()
	return startStackOf(t, txnTimeout, wo, true)
}

func startStackOf(t *testing.T, txnTimeout time.Duration, wo worker.Options, traced bool) *stack {
	t.Helper()
	srv := txnbridgetest.StartDevServer(t) // fails without the CLI
	s := &stack{broker: txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{TxnTimeout: txnTimeout})}
	s.client = txnbridgetest.NewClient(t, s.broker.NamesrvAddr)
	s.db = txnbridgetest.OpenDB(t)
	s.tc = txnbridgetest.DialTemporal(t, srv)
	if traced {
		ti, err := txnbridge.NewTracingInterceptor()
		if err != nil {
			t.Fatal(err)
		}
		tc, err := temporalclient.NewClientFromExisting(s.tc, temporalclient.Options{
			Interceptors: []interceptor.ClientInterceptor{ti}, Logger: txnbridgetest.TemporalLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.Close)
		s.tc = tc
	}
	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: s.client, DB: s.db, Temporal: s.tc,
		PaymentCheckLevel: 1, MaxPaymentChecks: maxChecks, Logger: txnbridgetest.Logger(t),
		CheckConsumer: client.ConsumerOptions{RebalanceInterval: 200 * time.Millisecond}, DisableTracing: traced})
	if err != nil {
		t.Fatal(err)
	}
	wo.Plugins = append(wo.Plugins, plugin)
	s.worker = worker.New(s.tc, workflows.TaskQueue, wo)
	if err := s.worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.worker.Stop) // before the client, broker and database close
	return s
}

// start starts the order's workflow.
func (s *stack) start(t *testing.T, in workflows.OrderInput) temporalclient.WorkflowRun {
	t.Helper()
	run, err := s.tc.ExecuteWorkflow(context.Background(), temporalclient.StartWorkflowOptions{ID: in.OrderID,
		TaskQueue: workflows.TaskQueue, WorkflowExecutionTimeout: 2 * time.Minute},
		workflows.OrderPaymentWorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// txnIDs returns the transaction ids of the steps of run (the first run
// of its chain).
func txnIDs(run temporalclient.WorkflowRun, steps ...string) []string {
	ids := make([]string, len(steps))
	for i, step := range steps {
		ids[i] = workflows.StepTxnID(run.GetID(), run.GetRunID(), step)
	}
	return ids
}

func (s *stack) result(t *testing.T, run temporalclient.WorkflowRun) workflows.OrderResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.OrderResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// events waits until the store holds the order-events messages want of
// order id (message ids), and fails if it holds others of it.
func (s *stack) events(t *testing.T, id string, want ...string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	testutil.WaitFor(t, 30*time.Second, id+"'s events "+strings.Join(want, " "), func() bool {
		got = got[:0]
		for _, m := range s.broker.Stored(t, workflows.TopicOrderEvents) {
			if slices.Contains(m.Keys, id) {
				got = append(got, m.MsgID)
			}
		}
		sort.Strings(got)
		return len(got) >= len(want)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("%s's events %v, want %v", id, got, want)
	}
}

func TestPluginAgainstBrokerAndTemporal(t *testing.T) {
	g := newGate()
	s := startStackWith(t, quietTxnTimeout, worker.Options{Interceptors: []interceptor.WorkerInterceptor{g.interceptor()}})
	ctx := context.Background()
	if err := s.db.SetStock(ctx, "sku", 10); err != nil {
		t.Fatal(err)
	}
	order := func(id string, qty int) workflows.OrderInput {
		return workflows.OrderInput{OrderID: id, User: "alice", SKU: "sku", Qty: qty, Amount: 1500}
	}

	var paid temporalclient.WorkflowRun
	t.Run("paid", func(t *testing.T) {
		run := s.start(t, order("paid-1", 2))
		paid = run
		// Paid at once: the workflow takes the payment when it comes to
		// wait for one (see "fenced" below on why not wait to see it wait).
		if err := s.tc.SignalWorkflow(ctx, "paid-1", "", workflows.SignalPay, workflows.PayInput{PaymentID: "p1", Amount: 1500}); err != nil {
			t.Fatal(err)
		}
		if res := s.result(t, run); res.Status != workflows.StatusPaid || res.PaymentID != "p1" {
			t.Fatalf("result %+v", res)
		}
		s.events(t, "paid-1", txnIDs(run, "create", "pay")...)
		if o, err := s.db.Order(ctx, "paid-1"); err != nil || o.Status != orders.StatusPaid {
			t.Fatalf("order %+v, %v", o, err)
		}
	})

	t.Run("payment times out through delayed checks", func(t *testing.T) {
		before, _ := s.db.Stock(ctx, "sku")
		run := s.start(t, order("late-1", 3))
		res := s.result(t, run)
		if res.Status != workflows.StatusCancelled || res.Checks != maxChecks {
			t.Fatalf("result %+v, want CANCELLED after %d checks", res, maxChecks)
		}
		s.events(t, "late-1", txnIDs(run, "cancel", "create")...)
		if after, _ := s.db.Stock(ctx, "sku"); after != before {
			t.Fatalf("stock %d after the cancel, %d before the order", after, before)
		}
	})

	t.Run("out of stock rolls back", func(t *testing.T) {
		res := s.result(t, s.start(t, order("big-1", 1000)))
		if res.Status != workflows.StatusFailed {
			t.Fatalf("result %+v", res)
		}
		if _, err := s.db.Order(ctx, "big-1"); err == nil {
			t.Fatal("order big-1 exists")
		}
	})

	t.Run("fenced transaction runs again under a new id", func(t *testing.T) {
		// Its local transaction is held while the test fences the
		// transaction id (StepTxnID needs the run's id).
		h := g.hold(t, "fenced-1", workflows.ActivityCreateOrderLocal)
		run := s.start(t, order("fenced-1", 1))
		h.wait(t, "fenced-1's CreateOrderLocal")
		if _, err := s.db.Fence(ctx, txnIDs(run, "create")[0]); err != nil {
			t.Fatal(err)
		}
		h.let()
		// Paid now: the workflow takes the payment when it comes to wait
		// for one, after the create that runs again. (Waiting to see it
		// wait, PENDING_PAYMENT, missed the window once on a loaded CI
		// machine: two checks at delay level 1 cancel the order within a
		// second.)
		if err := s.tc.SignalWorkflow(ctx, "fenced-1", "", workflows.SignalPay, workflows.PayInput{PaymentID: "p2", Amount: 1500}); err != nil {
			t.Fatal(err)
		}
		if res := s.result(t, run); res.Status != workflows.StatusPaid {
			t.Fatalf("result %+v", res)
		}
		s.events(t, "fenced-1", txnIDs(run, "create-2", "pay")...)
	})

	t.Run("a reset to before the pay step pays once", func(t *testing.T) {
		// Temporal's reset to the workflow task that scheduled the pay
		// step: the new run takes the same payment (it is in the history
		// before that task) and runs the step again under the chain's
		// transaction id. The order is paid once, its OrderPaid is
		// committed once, and nothing is refunded.
		in := order("reset-pay-1", 1)
		run := s.start(t, in)
		p := workflows.PayInput{PaymentID: "rp1", Amount: in.Amount}
		if err := s.tc.SignalWorkflow(ctx, in.OrderID, "", workflows.SignalPay, p); err != nil {
			t.Fatal(err)
		}
		if res := s.result(t, run); res.Status != workflows.StatusPaid || res.PaymentID != "rp1" {
			t.Fatalf("result %+v", res)
		}
		stock, _ := s.db.Stock(ctx, "sku")
		ids := txnIDs(run, "create", "pay")
		s.events(t, in.OrderID, ids...)
		reset := s.reset(t, run, scheduledBy(t, s.history(t, run), workflows.ActivitySendHalf, 2), true)
		res := s.result(t, reset)
		if res.Status != workflows.StatusPaid || res.PaymentID != "rp1" || len(res.RejectedPayments) != 0 {
			t.Fatalf("reset run's result %+v, want PAID by rp1, nothing to refund", res)
		}
		s.flush(t)
		s.events(t, in.OrderID, ids...)
		if o, err := s.db.Order(ctx, in.OrderID); err != nil || o.Status != orders.StatusPaid || o.PaymentID != "rp1" {
			t.Fatalf("order %+v, %v", o, err)
		}
		if after, _ := s.db.Stock(ctx, "sku"); after != stock {
			t.Fatalf("stock %d after the reset, %d before", after, stock)
		}
	})

	t.Run("a reset to the first workflow task runs the order once", func(t *testing.T) {
		// The whole workflow runs again, the payment signal reapplied:
		// the order is created and paid once, each event committed once.
		in := order("reset-all-1", 1)
		run := s.start(t, in)
		p := workflows.PayInput{PaymentID: "ra1", Amount: in.Amount}
		if err := s.tc.SignalWorkflow(ctx, in.OrderID, "", workflows.SignalPay, p); err != nil {
			t.Fatal(err)
		}
		if res := s.result(t, run); res.Status != workflows.StatusPaid || res.PaymentID != "ra1" {
			t.Fatalf("result %+v", res)
		}
		stock, _ := s.db.Stock(ctx, "sku")
		ids := txnIDs(run, "create", "pay")
		s.events(t, in.OrderID, ids...)
		reset := s.reset(t, run, firstWorkflowTask(t, s.history(t, run)), true)
		res := s.result(t, reset)
		if res.Status != workflows.StatusPaid || res.PaymentID != "ra1" || len(res.RejectedPayments) != 0 {
			t.Fatalf("reset run's result %+v, want PAID by ra1, nothing to refund", res)
		}
		s.flush(t)
		s.events(t, in.OrderID, ids...)
		if after, _ := s.db.Stock(ctx, "sku"); after != stock {
			t.Fatalf("stock %d after the reset, %d before", after, stock)
		}
	})

	t.Run("a reset to before the cancel step cancels once", func(t *testing.T) {
		// Not paid: the checks cancel the order. Reset to the task that
		// scheduled the cancel step, the new run cancels it again under
		// the chain's transaction id: the stock is released once, and
		// OrderCancelled committed once.
		before, _ := s.db.Stock(ctx, "sku")
		in := order("reset-cancel-1", 1)
		run := s.start(t, in)
		if res := s.result(t, run); res.Status != workflows.StatusCancelled {
			t.Fatalf("result %+v", res)
		}
		ids := txnIDs(run, "cancel", "create")
		s.events(t, in.OrderID, ids...)
		reset := s.reset(t, run, scheduledBy(t, s.history(t, run), workflows.ActivitySendHalf, 2), true)
		if res := s.result(t, reset); res.Status != workflows.StatusCancelled || res.Checks != maxChecks {
			t.Fatalf("reset run's result %+v, want CANCELLED after %d checks", res, maxChecks)
		}
		s.flush(t)
		s.events(t, in.OrderID, ids...)
		if after, _ := s.db.Stock(ctx, "sku"); after != before {
			t.Fatalf("stock %d after the reset, %d before the order", after, before)
		}
	})

	t.Run("a payment refused after a reset reports the recorded one", func(t *testing.T) {
		// Paid with r1 while its first check is held, so that the
		// signal comes after the task that scheduled the check. Reset to
		// that task without reapplying signals, the new run waits for a
		// payment, and is paid with r3: the pay transaction is refused
		// (it recorded r1), and the workflow adopts the database's PAID:
		// its result names r1, and lists r3 for a refund.
		in := order("reset-1", 1)
		h := g.hold(t, in.OrderID, workflows.ActivitySendPaymentCheck)
		run := s.start(t, in)
		h.wait(t, "the first payment check")
		r1 := workflows.PayInput{PaymentID: "r1", Amount: in.Amount}
		if err := s.tc.SignalWorkflow(ctx, in.OrderID, "", workflows.SignalPay, r1); err != nil {
			t.Fatal(err)
		}
		h.let()
		if res := s.result(t, run); res.Status != workflows.StatusPaid || res.PaymentID != "r1" {
			t.Fatalf("result %+v", res)
		}
		ids := txnIDs(run, "create", "pay")
		s.events(t, in.OrderID, ids...)

		h = g.hold(t, in.OrderID, workflows.ActivitySendPaymentCheck)
		reset := s.reset(t, run, scheduledBy(t, s.history(t, run), workflows.ActivitySendPaymentCheck, 1), false)
		h.wait(t, "the reset run's first payment check")
		r3 := workflows.PayInput{PaymentID: "r3", Amount: in.Amount}
		if err := s.tc.SignalWorkflow(ctx, in.OrderID, reset.GetRunID(), workflows.SignalPay, r3); err != nil {
			t.Fatal(err)
		}
		h.let()
		res := s.result(t, reset)
		if res.Status != workflows.StatusPaid || res.PaymentID != "r1" || !slices.Equal(res.RejectedPayments, []workflows.PayInput{r3}) {
			t.Fatalf("result %+v, want PAID by r1 (the recorded payment), r3 listed for a refund", res)
		}
		if failed := failedActivities(s.history(t, reset)); !slices.Equal(failed, []string{workflows.ActivityMarkPaidLocal}) {
			t.Fatalf("the reset run's failed activities %v, want r3's MarkPaidLocal (r1 not reapplied)", failed)
		}
		s.flush(t)
		s.events(t, in.OrderID, ids...) // no OrderPaid for r3
		if o, err := s.db.Order(ctx, in.OrderID); err != nil || o.PaymentID != "r1" {
			t.Fatalf("order %+v, %v", o, err)
		}
	})

	t.Run("a workflow id used again is another order", func(t *testing.T) {
		// Temporal's default id reuse policy lets a run start under the id
		// of a closed one. Its steps' transaction ids are its own, so its
		// "create" runs against the database, which has the order already:
		// it fails, and takes no payment, rather than reporting the
		// earlier run's order and payment as its own.
		if paid == nil {
			t.Fatal("the paid subtest did not start its order")
		}
		second := s.result(t, s.start(t, order("paid-1", 1))) // closed above, paid with p1
		if second.Status != workflows.StatusFailed || !strings.Contains(second.Reason, "order exists") || second.PaymentID != "" {
			t.Fatalf("second run under paid-1: %+v, want FAILED, order exists", second)
		}
		if o, err := s.db.Order(ctx, "paid-1"); err != nil || o.Qty != 2 || o.PaymentID != "p1" {
			t.Fatalf("order paid-1 %+v, %v: want the first run's (qty 2, p1)", o, err)
		}
		s.events(t, "paid-1", txnIDs(paid, "create", "pay")...)
	})

	// Rolled-back messages never became visible: the later orders' events
	// are stored, and big-1 has none.
	s.events(t, "big-1")
}

// The plugin's producer answers check-backs of its group with the
// resolver: a half message of the group nobody ends is committed once
// the local transaction of its id committed.
func TestPluginAnswersCheckBacks(t *testing.T) {
	s := startStack(t, txnbridgetest.DefaultTxnTimeout)
	ctx := context.Background()
	other := txnbridgetest.NewClient(t, s.broker.NamesrvAddr) // a producer that dies before ending
	p, err := other.NewProducer(client.ProducerOptions{Group: txnbridge.DefaultProducerGroup})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.db.CreateOrder(ctx, "orphan-1/create", orders.Order{ID: "orphan-1", User: "u", SKU: "sku", Qty: 1, Amount: 1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"orphan-1/create", "orphan-2/create"} {
		if _, err := p.SendHalf(ctx, &client.Message{Topic: workflows.TopicOrderEvents, Keys: []string{id[:8]}, Body: []byte(id), ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	s.events(t, "orphan-1", "orphan-1/create")
	testutil.WaitFor(t, 30*time.Second, "orphan-2 fenced", func() bool {
		st, err := s.db.TxnState(ctx, "orphan-2/create")
		return err == nil && st == orders.TxnFenced
	})
}

// Stopping the worker closes the producer and the check consumer: their
// groups can be registered again on the same client.
func TestPluginStopReleasesGroups(t *testing.T) {
	s := startStack(t, quietTxnTimeout)
	s.worker.Stop()
	p, err := s.client.NewProducer(client.ProducerOptions{Group: txnbridge.DefaultProducerGroup,
		CheckListener: txnbridge.NewResolver(s.db)})
	if err != nil {
		t.Fatalf("producer group still registered after Stop: %v", err)
	}
	defer p.Close()
	pc, err := s.client.NewPushConsumer(client.ConsumerOptions{Group: workflows.CheckConsumerGroup})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(workflows.TopicPaymentCheck, "*", txnbridge.CheckHandler(s.tc, nil)); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(context.Background()); err != nil {
		t.Fatalf("check consumer group still registered after Stop: %v", err)
	}
	_ = pc.Close()
}

// A worker whose start fails after the plugin started (here its
// namespace does not exist) releases the producer and the check consumer
// by itself: worker.Run returns the error without calling Stop, and they
// kept answering check-backs and signalling workflows, their groups
// registered on the Client.
func TestPluginFailedStartReleasesGroups(t *testing.T) {
	srv := txnbridgetest.StartDevServer(t)
	b := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	hb := txnbridgetest.NewClient(t, b.NamesrvAddr)
	db := txnbridgetest.OpenDB(t)
	tc, err := temporalclient.NewClientFromExisting(txnbridgetest.DialTemporal(t, srv),
		temporalclient.Options{Namespace: "no-such-namespace", Logger: txnbridgetest.TemporalLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: hb, DB: db, Temporal: tc, Logger: txnbridgetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{Plugins: []worker.Plugin{plugin}})
	if err := w.Run(make(chan any)); err == nil {
		t.Fatal("Run of a worker of a namespace that does not exist succeeded")
	}
	p, err := hb.NewProducer(client.ProducerOptions{Group: txnbridge.DefaultProducerGroup, CheckListener: txnbridge.NewResolver(db)})
	if err != nil {
		t.Fatalf("producer group still registered after a failed Run: %v", err)
	}
	defer p.Close()
	pc, err := hb.NewPushConsumer(client.ConsumerOptions{Group: workflows.CheckConsumerGroup})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(workflows.TopicPaymentCheck, "*", txnbridge.CheckHandler(tc, nil)); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(context.Background()); err != nil {
		t.Fatalf("check consumer group still registered after a failed Run: %v", err)
	}
	_ = pc.Close()
	w.Stop() // harmless after the release
}

// stopGate makes activity name wait, once it has started, until its
// worker begins to stop, then run and report its error on done.
type stopGate struct {
	name    string
	started chan struct{}
	done    chan error
}

// interceptor is the worker interceptor that holds g's activity.
func (g *stopGate) interceptor() interceptor.WorkerInterceptor {
	return wrapActivities(func(ctx context.Context, run func() (any, error)) (any, error) {
		if activity.GetInfo(ctx).ActivityType.Name != g.name {
			return run()
		}
		select {
		case g.started <- struct{}{}:
		default:
		}
		<-activity.GetWorkerStopChannel(ctx)
		res, err := run()
		select {
		case g.done <- err:
		default:
		}
		return res, err
	})
}

// A graceful stop lets the activities running finish (the worker's
// WorkerStopTimeout) with the plugin's producer: the plugin closes it
// only after the worker has stopped. temporal.SimplePlugin's
// RunContextAfter runs before the worker's own stop; an activity still
// running then failed with client.ErrClosed.
func TestPluginStopLetsRunningActivitiesFinish(t *testing.T) {
	g := &stopGate{name: workflows.ActivitySendPaymentCheck, started: make(chan struct{}, 1), done: make(chan error, 1)}
	s := startStackWith(t, quietTxnTimeout, worker.Options{Interceptors: []interceptor.WorkerInterceptor{g.interceptor()},
		WorkerStopTimeout: 20 * time.Second})
	if err := s.db.SetStock(context.Background(), "sku", 1); err != nil {
		t.Fatal(err)
	}
	s.start(t, workflows.OrderInput{OrderID: "stop-1", User: "alice", SKU: "sku", Qty: 1, Amount: 1500})
	select {
	case <-g.started:
	case <-time.After(30 * time.Second):
		t.Fatal("SendPaymentCheck did not start")
	}
	stopped := make(chan struct{})
	go func() { s.worker.Stop(); close(stopped) }() // SIGTERM
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("SendPaymentCheck, running when the worker began to stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SendPaymentCheck did not end")
	}
	<-stopped
	// The check the activity sent is delivered from its delay level.
	testutil.WaitFor(t, 30*time.Second, "the payment check delivered", func() bool {
		return len(s.broker.Stored(t, workflows.TopicPaymentCheck)) == 1
	})
}
