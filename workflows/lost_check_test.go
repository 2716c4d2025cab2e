package workflows_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/workflows"
)

// horizon is far beyond the time an unpaid order waits for its checks
// (maxChecks x checkDelay): an order still waiting then waits for ever.
const horizon = 1000 * checkDelay

// giveUpAt cancels the workflow at horizon (an operator giving up on it)
// and returns the status query's answer from then, taken before the
// cancellation; its Status is "" if the workflow had completed.
func (h *harness) giveUpAt(d time.Duration) *workflows.OrderResult {
	var at workflows.OrderResult
	h.env.RegisterDelayedCallback(func() {
		if h.env.IsWorkflowCompleted() {
			return
		}
		at = h.status()
		h.env.CancelWorkflow()
	}, d)
	return &at
}

// A check message that never produces its signal (its signal kept
// failing until the message went to the dead-letter queue, the message
// was lost to retention or a deleted topic, a reset that excluded signals
// dropped it) must not leave the order waiting for it for ever, PENDING
// with its stock reserved: the workflow sends that check again (the same
// number) and the order is cancelled after its checks as usual.
func TestLostCheckSentAgain(t *testing.T) {
	h := newHarness(t)
	h.lose = func(n, send int) bool { return n == 1 && send == 1 } // the first check 1 never comes
	at := h.giveUpAt(horizon)
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v; status at %v: %+v: the order waited for its lost check 1 for ever", err, horizon, *at)
	}
	if res.Status != workflows.StatusCancelled || res.Checks != 3 {
		t.Fatalf("result %+v, want CANCELLED after 3 checks", res)
	}
	if want := []int{1, 1, 2, 3}; !reflect.DeepEqual(h.checks, want) {
		t.Fatalf("checks sent %v, want %v (check 1 sent again)", h.checks, want)
	}
}

// A check consumer that never signals (every check lost) does not leave
// the order waiting for ever either, nor make the workflow send checks
// without end: each check is sent again at most workflows.MaxCheckResends
// times, then the workflow counts it as come due and asks the database
// itself.
func TestEveryCheckLostOrderStillCancelled(t *testing.T) {
	h := newHarness(t)
	h.deliverChecks = false
	at := h.giveUpAt(horizon)
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v; status at %v: %+v: the order waited for its lost checks for ever", err, horizon, *at)
	}
	if res.Status != workflows.StatusCancelled || res.Checks != 3 {
		t.Fatalf("result %+v, want CANCELLED after 3 checks", res)
	}
	if len(h.checks) != 3*(1+workflows.MaxCheckResends) || len(h.states) != 3 {
		t.Fatalf("checks sent %v, states read %d: want each of 3 sent %d times, the state read once per check",
			h.checks, len(h.states), 1+workflows.MaxCheckResends)
	}
}

// A workflow started before workflows.CheckResendChange replays as it
// ran: it sends no check again and waits for the check's signal.
func TestLostCheckBeforeCheckResendChange(t *testing.T) {
	h := newHarness(t)
	h.beforeCheckResend = true
	h.deliverChecks = false
	at := h.giveUpAt(horizon)
	_, err := h.run(input)
	wantCancelled(t, err)
	if at.Status != workflows.StatusPendingPayment || !reflect.DeepEqual(h.checks, []int{1}) {
		t.Fatalf("status at %v %+v, checks sent %v: want PENDING_PAYMENT waiting for check 1, sent once", horizon, *at, h.checks)
	}
}

// A check that comes late, after it was sent again, counts once: the
// copy that comes second is a check not waited for.
func TestLateCheckAndItsResendCountOnce(t *testing.T) {
	h := newHarness(t)
	h.lose = func(n, send int) bool {
		if n == 1 && send == 1 { // its signal retried until after the resend
			h.env.RegisterDelayedCallback(func() {
				h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 1})
			}, (workflows.CheckLostAfter+1)*checkDelay+checkDelay/2)
			return true
		}
		return false
	}
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	wantCancelledAfter3(t, h, res, []int{1, 1, 2, 3}, "the late check and its resend were not counted once")
}
