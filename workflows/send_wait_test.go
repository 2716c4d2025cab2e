package workflows_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/workflows"
)

// slowSend is a harness whose attempt i to send a check (from 0, over
// every check) takes horizon: its activity retries while the check
// topic's broker is unreachable. paidAt is when the payment was recorded
// on the workflow's clock, after the start.
func slowSend(t *testing.T, i int) (h *harness, paidAt func() time.Duration) {
	h = newHarness(t)
	h.sendTakes = func(attempt int) time.Duration {
		if attempt == i {
			return horizon
		}
		return 0
	}
	start := h.env.Now()
	var at time.Duration
	h.local = func(activity, _ string) error {
		if activity == workflows.ActivityMarkPaidLocal {
			h.record(func() { at = h.env.Now().Sub(start) })
		}
		return nil
	}
	return h, func() time.Duration {
		h.mu.Lock()
		defer h.mu.Unlock()
		return at
	}
}

// The send of a check may take long: its activity retries while the
// check topic's broker is unreachable, or the topic was deleted. The
// order waits on meanwhile: a payment is taken at once, not once the
// send got through.
func TestPayTakenWhileCheckSendRetries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attempt int           // the slow send
		payAt   time.Duration // after the start
		checks  int           // the checks sent when the payment came
	}{
		{"check 1", 0, checkDelay / 2, 0},
		{"check 2", 1, checkDelay + checkDelay/2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, paidAt := slowSend(t, tc.attempt)
			h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, tc.payAt)
			res, err := h.run(input)
			if err != nil {
				t.Fatal(err)
			}
			want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: tc.checks, PaymentID: "pay-1"}
			if !reflect.DeepEqual(res, want) || paidAt() != tc.payAt {
				t.Fatalf("result %+v, paid at %v: want %+v, paid at %v (the payment waited for the send of %s)",
					res, paidAt(), want, tc.payAt, tc.name)
			}
		})
	}
}

// A check's signal that comes while its send still retries (an attempt
// stored the message, its answer was lost) waits for the send, and then
// counts.
func TestCheckSignalledWhileItsSendRetries(t *testing.T) {
	h := newHarness(t)
	h.sendTakes = func(attempt int) time.Duration {
		if attempt == 1 { // check 2
			return 5 * checkDelay
		}
		return 0
	}
	h.lose = func(n, _ int) bool { return n == 2 } // but for the early copy
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 2})
	}, 3*checkDelay)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	wantCancelledAfter3(t, h, res, []int{1, 2, 3}, "check 2's early copy was not counted")
}

// A lost check whose resend retries for long still comes due:
// workflows.CheckLostAfter check delays after its send it is sent again,
// and after workflows.MaxCheckResends doubled expiries (21 check delays
// after its send) it counts as come due, whether the resend got through
// or not. No timer ran while the resend did: the order waited for it,
// PENDING_PAYMENT with its stock reserved.
func TestLostCheckComesDueWhileResendRetries(t *testing.T) {
	h := newHarness(t)
	h.lose = func(n, send int) bool { return n == 1 && send == 1 }
	h.sendTakes = func(attempt int) time.Duration {
		if attempt == 1 { // check 1's resend
			return horizon
		}
		return 0
	}
	start := h.env.Now()
	giveUp := 100 * checkDelay
	at := h.giveUpAt(giveUp)
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v; status at %v: %+v: the order waited for the resend of check 1", err, giveUp, *at)
	}
	wantCancelledAfter3(t, h, res, []int{1, 2, 3}, "check 1's resend got through") // it was cancelled
	// 21 check delays for check 1, one each for checks 2 and 3.
	if took, want := h.env.Now().Sub(start), (21+2)*checkDelay; took != want {
		t.Fatalf("cancelled %v after the start, want %v", took, want)
	}
}

// A workflow that ran before workflows.CheckSendWaitChange replays as it
// ran: the payment waited for the send of check 2.
func TestPayWaitsForCheckSendBeforeCheckSendWaitChange(t *testing.T) {
	h, paidAt := slowSend(t, 1)
	h.beforeSendWait = true
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay+checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid || res.Checks != 2 || paidAt() != checkDelay+horizon {
		t.Fatalf("result %+v, paid at %v: want PAID after the send of check 2, at %v", res, paidAt(), checkDelay+horizon)
	}
}

// The workflow cancelled while a check's send retries cancels the order
// then, as while it waits for the check.
func TestCancelledWhileCheckSendRetries(t *testing.T) {
	h, _ := slowSend(t, 1)
	start := h.env.Now()
	var cancelledAt time.Duration
	h.local = func(activity, _ string) error {
		if activity == workflows.ActivityCancelLocal {
			h.record(func() { cancelledAt = h.env.Now().Sub(start) })
		}
		return nil
	}
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, checkDelay+checkDelay/2)
	_, err := h.run(input)
	wantCancelled(t, err)
	if res := h.status(); res.Status != workflows.StatusCancelled || res.Reason != "workflow cancelled" ||
		cancelledAt != checkDelay+checkDelay/2 {
		t.Fatalf("status %+v, order cancelled at %v: want CANCELLED (workflow cancelled) at %v", res, cancelledAt, checkDelay+checkDelay/2)
	}
}
