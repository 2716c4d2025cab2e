package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/samples/coupon"
	"github.com/halfbackmq/halfback/samples/orderpayment"
	"github.com/halfbackmq/halfback/workflows"
)

// TestOrdersEndToEnd runs the whole flow against a real Temporal dev
// server: the worker with its embedded broker, the starter with paid and
// unpaid orders, and the coupon consumer. Every order must end as
// intended, in the workflow and in the database; order-events must carry
// exactly the committed messages (one OrderCreated per order, one
// OrderPaid per paid order, one OrderCancelled per timed-out order); and
// every paid order must get exactly one coupon.
func TestOrdersEndToEnd(t *testing.T) {
	hostPort := devServer(t)
	cfg := testConfig(t, hostPort)
	// No check-back while the orders run: the test wants each step's first
	// transaction id on order-events, and on a loaded machine (CI, with
	// activities 15 s late) a 5 s check-back fenced two pay steps, which
	// then committed as pay-2, rightly. The crash tests cover fencing.
	cfg.Broker.TransactionTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	s, err := start(ctx, cfg, testLogger(t, "worker"), options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop the worker: %v", err)
		}
	})
	obs := observe(t, ctx, s.nsAddrs, testLogger(t, "observer"))
	coupons := startCoupons(t, ctx, s)

	const n = 8
	sum, err := orderpayment.Run(ctx, s.temporal, s.db, orderpayment.Options{
		Orders: n, PayRatio: 0.5, Wait: true, TaskQueue: cfg.Temporal.TaskQueue,
		Prefix: fmt.Sprintf("e2e-%d", time.Now().UnixNano())}) // unique on the shared dev server
	if err != nil {
		t.Fatal(err)
	}
	if sum.Started != n || sum.Paid != n/2 || sum.Cancelled != n/2 || sum.Failed != 0 {
		t.Fatalf("summary %+v, want %d started, %d paid, %d cancelled, none failed", sum, n, n/2, n/2)
	}
	paid, cancelled := checkOrders(t, ctx, s.db, sum)
	if stock, err := s.db.Stock(ctx, orderpayment.DefaultSKU); err != nil || stock != n-len(paid) {
		t.Errorf("stock %d (%v), want %d: paid orders keep their unit, cancelled ones give it back", stock, err, n-len(paid))
	}

	all := append(slices.Clone(paid), cancelled...)
	slices.Sort(all)
	testutil.WaitFor(t, 30*time.Second, "every committed order event", func() bool {
		ev := obs.byTag()
		return slices.Equal(keysOf(ev[workflows.TagOrderCreated]), all) &&
			slices.Equal(keysOf(ev[workflows.TagOrderPaid]), paid) &&
			slices.Equal(keysOf(ev[workflows.TagOrderCancelled]), cancelled)
	})
	testutil.WaitFor(t, 30*time.Second, "a coupon per paid order", func() bool {
		got, err := s.db.Coupons(ctx)
		return err == nil && len(got) == len(paid)
	})
	checkEvents(t, ctx, s.temporal, obs, len(all))
	coupons.check(t, ctx, s.temporal, s.db, paid)
	if live := s.broker.broker.Transactions().List(0, 0); len(live) != 0 {
		t.Errorf("%d transactions still open: %+v", len(live), live)
	}
}

// checkOrders compares each order in the database with the workflow's
// outcome and returns the sorted ids of the paid and the cancelled ones.
func checkOrders(t *testing.T, ctx context.Context, db *orders.DB, sum orderpayment.Summary) (paid, cancelled []string) {
	t.Helper()
	for _, o := range sum.Orders {
		row, err := db.Order(ctx, o.OrderID)
		if err != nil {
			t.Errorf("order %s: %v", o.OrderID, err)
			continue
		}
		if string(row.Status) != o.Status {
			t.Errorf("order %s is %s in the database, %s in its workflow", o.OrderID, row.Status, o.Status)
		}
		switch {
		case o.PaySent && o.Status == workflows.StatusPaid && row.PaymentID == orderpayment.PaymentID(o.OrderID):
			paid = append(paid, o.OrderID)
		case !o.PaySent && o.Status == workflows.StatusCancelled && o.Checks == 3:
			cancelled = append(cancelled, o.OrderID)
		default:
			t.Errorf("order %s: pay sent %v, outcome %+v, row %+v", o.OrderID, o.PaySent, o, row)
		}
	}
	slices.Sort(paid)
	slices.Sort(cancelled)
	return paid, cancelled
}

// checkEvents checks that each order event was committed once: one
// message id per order and tag, the step's transaction id.
func checkEvents(t *testing.T, ctx context.Context, tc temporalclient.Client, obs *observer, orders int) {
	t.Helper()
	ev := obs.byTag()
	steps := map[string]string{workflows.TagOrderCreated: "create", workflows.TagOrderPaid: "pay", workflows.TagOrderCancelled: "cancel"}
	total := 0
	for tag, byOrder := range ev {
		step, ok := steps[tag]
		if !ok {
			t.Errorf("unexpected tag %q on order-events: %v", tag, byOrder)
			continue
		}
		for id, msgIDs := range byOrder {
			if want := []string{stepTxnID(t, ctx, tc, id, step)}; !slices.Equal(msgIDs, want) {
				t.Errorf("%s of order %s: message ids %v, want %v", tag, id, msgIDs, want)
			}
		}
		total += len(byOrder)
	}
	if total != 2*orders {
		t.Errorf("%d order events, want %d (created, then paid or cancelled)", total, 2*orders)
	}
}

// couponLog records what the coupon consumer handled.
type couponLog struct {
	mu      sync.Mutex
	granted map[string]int // msgID -> coupons granted for it
	dups    int
}

func startCoupons(t *testing.T, ctx context.Context, s *stack) *couponLog {
	t.Helper()
	c, err := app.NewClient(s.nsAddrs, testLogger(t, "coupon client"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l := &couponLog{granted: map[string]int{}}
	pc, err := coupon.Start(ctx, c, s.db, coupon.Options{Logger: testLogger(t, "coupons"),
		Observe: func(m *client.MessageExt, granted bool) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if granted {
				l.granted[m.MsgID]++
			} else {
				l.dups++
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return l
}

// check: the consumer got exactly the OrderPaid messages of the paid
// orders and granted one coupon for each.
func (l *couponLog) check(t *testing.T, ctx context.Context, tc temporalclient.Client, db *orders.DB, paid []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var want []string
	for _, id := range paid {
		want = append(want, stepTxnID(t, ctx, tc, id, "pay"))
	}
	if got := keysOf(l.granted); !slices.Equal(got, want) {
		t.Errorf("coupon consumer granted for messages %v, want %v", got, want)
	}
	for id, n := range l.granted {
		if n != 1 {
			t.Errorf("message %s granted %d coupons", id, n)
		}
	}
	got, err := db.Coupons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keysOf(got), paid) {
		t.Errorf("coupons for orders %v, want %v", keysOf(got), paid)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("order %s has %d coupons, want 1", id, n)
		}
	}
}
