package workflows_test

import (
	"reflect"
	"testing"

	"github.com/halfbackmq/halfback/workflows"
)

// A check message sent by an earlier run of the workflow (a run that
// Temporal's reset replaced while its check waited in the delay queue)
// carries the number the reset run waits for, since that run numbers its
// checks from 1 again. It is not one of this run's checks: counting it
// cancelled an unpaid order before its own first check came due (here,
// with one check, at once), and a payment made within the policy's time
// was then refunded instead of taken.
func TestCheckOfEarlierRunIgnored(t *testing.T) {
	h := newHarness(t)
	h.maxChecks = 1
	h.deliverChecks = false // this run's own check never comes before the payment
	h.env.RegisterDelayedCallback(func() {
		// The earlier run's check 1, as its consumer signals it: the
		// message body names the run whose activity sent it.
		h.env.SignalWorkflow(workflows.SignalPaymentCheck,
			map[string]any{"orderId": orderID, "check": 1, "run": "run-before-the-reset"})
	}, checkDelay/2)
	pay := workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}
	h.pay(pay, 2*checkDelay)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: 1, PaymentID: "pay-1"}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v: the earlier run's check counted as this run's", res, want)
	}
	if len(h.states) != 0 {
		t.Fatalf("order state read %d times for checks this run never sent", len(h.states))
	}
}

// A check without a run (sent by a worker from before
// workflows.CheckRunChange, or signalled by its check consumer) still
// counts when it has the number waited for, and a workflow started before
// the change (DefaultVersion) counts a check of any run, as it did.
func TestCheckWithoutRunAndBeforeCheckRunChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		legacy bool
		run    string
	}{{"check without a run", false, ""}, {"before the change", true, "run-before-the-reset"}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.maxChecks = 1
			h.deliverChecks = false
			h.beforeCheckRun = tc.legacy
			h.env.RegisterDelayedCallback(func() {
				h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 1, Run: tc.run})
			}, checkDelay)
			res, err := h.run(input)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != workflows.StatusCancelled || res.Checks != 1 {
				t.Fatalf("result %+v, want CANCELLED after 1 check", res)
			}
		})
	}
}
