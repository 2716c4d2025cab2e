package txnbridge_test

import (
	"context"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/workflows"
)

// A run that Temporal's reset started (here to its first workflow task,
// the signals reapplied, as the reset's default is) numbers its payment
// checks from 1 again. The checks of the run it replaced, reapplied or
// still in the delay queue, are not its own: it reads the order's state
// for a check only once a check it sent itself came back. It counted the
// earlier run's check 1 as soon as it had sent its own, and so cancelled
// an unpaid order a check interval early.
func TestResetRunCountsOnlyItsOwnChecks(t *testing.T) {
	g := newGate()
	s := startStackWith(t, quietTxnTimeout, worker.Options{Interceptors: []interceptor.WorkerInterceptor{g.interceptor()}})
	ctx := context.Background()
	if err := s.db.SetStock(ctx, "sku", 10); err != nil {
		t.Fatal(err)
	}
	in := workflows.OrderInput{OrderID: "reset-check-1", User: "alice", SKU: "sku", Qty: 1, Amount: 1500}
	// The first run's check 1 came (its OrderState runs): reset then.
	h := g.hold(t, in.OrderID, workflows.ActivityOrderState)
	run := s.start(t, in)
	h.wait(t, "the first run's OrderState for check 1")
	reset := s.reset(t, run, firstWorkflowTask(t, s.history(t, run)), true)
	res := s.result(t, reset)
	if res.Status != workflows.StatusCancelled || res.Checks != maxChecks {
		t.Fatalf("reset run's result %+v, want CANCELLED after %d checks", res, maxChecks)
	}
	events := s.history(t, reset)
	sent := firstCompleted(t, events, workflows.ActivitySendPaymentCheck)
	signalled := false
	for _, e := range events[sent:] {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a.GetSignalName() == workflows.SignalPaymentCheck {
			signalled = true
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a.GetActivityType().GetName() == workflows.ActivityOrderState {
			if !signalled {
				t.Fatalf("the reset run read the order's state (event %d) for a check before any check came back "+
					"after it sent its first (event %d): it counted the earlier run's check", e.GetEventId(), events[sent].GetEventId())
			}
			return
		}
	}
	t.Fatal("the reset run never read the order's state")
}

// firstCompleted returns the index in events of the completion of the
// first run of activity name.
func firstCompleted(t *testing.T, events []*historypb.HistoryEvent, name string) int {
	t.Helper()
	scheduled := map[int64]string{}
	for i, e := range events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[e.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == name {
			return i
		}
	}
	t.Fatalf("no completed %s in the history", name)
	return 0
}
