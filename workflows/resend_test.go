package workflows_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/workflows"
)

// replaced is the run a reset replaced in these tests: it sent check 1
// before the reset point, so the run the reset started has that check,
// stamped with it, in its history.
const replaced = "run-before-the-reset"

// resetRunLosingResends is a harness for a run that Temporal's reset
// started after the run it replaced sent check 1: check 1's first copy
// (stamped replaced) comes late, by when (3.5 check delays) it was sent
// again, or, with during, while it is sent again; the copies this run
// sends again are lost.
func resetRunLosingResends(t *testing.T, during bool) *harness {
	h := newHarness(t)
	h.stamp = func(n, send int) string {
		if n == 1 && send == 1 {
			return replaced
		}
		return ""
	}
	first := func() {
		h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 1, Run: replaced})
	}
	h.lose = func(n, send int) bool {
		switch {
		case n == 1 && send == 1 && !during:
			h.env.RegisterDelayedCallback(first, workflows.CheckLostAfter*checkDelay+checkDelay/2)
		case n == 1 && send == 2 && during:
			h.env.RegisterDelayedCallback(first, 0)
		}
		return n == 1
	}
	return h
}

// A check sent again in a run that Temporal's reset started names that
// run, while the check sent before the reset names the run the reset
// replaced: the first copy that comes counts, whichever it is. The resend
// made the first copy a check of another run, ignored: the order waited
// for the resend's copy, here lost too, and counted check 1 only when it
// had been sent twice more (21 check delays after its send).
func TestResetRunCountsCheckSentBeforeResend(t *testing.T) {
	for _, tc := range []struct {
		name   string
		during bool
	}{{"after the resend", false}, {"during the resend", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := resetRunLosingResends(t, tc.during)
			res, err := h.run(input)
			if err != nil {
				t.Fatal(err)
			}
			wantCancelledAfter3(t, h, res, []int{1, 1, 2, 3},
				"check 1's first copy, stamped with the run the reset replaced, was ignored once check 1 was sent again")
		})
	}
}

// A workflow that ran before workflows.CheckResendRunsChange replays as
// it ran: the first copy is ignored after the resend.
func TestResetRunBeforeCheckResendRunsChange(t *testing.T) {
	h := resetRunLosingResends(t, false)
	h.beforeResendRuns = true
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 1, 1, 2, 3}; res.Status != workflows.StatusCancelled || !reflect.DeepEqual(h.checks, want) {
		t.Fatalf("result %+v, checks sent %v: want CANCELLED, checks %v", res, h.checks, want)
	}
}

// errTopicGone is the retryable error of a check sent to a topic its
// broker no longer has (deleted, with automatic topic creation off).
var errTopicGone = errors.New("CODE: 17 DESC: topic[payment-check] not exist, apply first please")

// resendRetrying is a harness whose check 1 is lost and whose resends of
// it fail with errTopicGone: a worker retries them without end (the test
// environment gives up after 10 attempts, some 7 check delays after the
// first resend).
func resendRetrying(t *testing.T) *harness {
	h := newHarness(t)
	h.lose = func(n, send int) bool { return n == 1 && send == 1 }
	h.sendErr = func(n, send int) error {
		if n == 1 && send > 1 {
			return errTopicGone
		}
		return nil
	}
	return h
}

// A check sent again may take long: its activity retries while the check
// topic's broker is unreachable, or the topic was deleted. The order
// waits on meanwhile, as it did for the lost check: a payment is taken
// at once, not once the resend got through.
func TestPayTakenWhileCheckResendRetries(t *testing.T) {
	h := resendRetrying(t)
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, workflows.CheckLostAfter*checkDelay+checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v: the payment waited for the resend of check 1", err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: 1, PaymentID: "pay-1"}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
}

// The check's signal, late, counts while its resend retries, and stops
// the resend.
func TestLateCheckCountsWhileResendRetries(t *testing.T) {
	h := resendRetrying(t)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 1})
	}, workflows.CheckLostAfter*checkDelay+checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v: check 1 waited for its resend", err)
	}
	wantCancelledAfter3(t, h, res, nil, "")
}

// A workflow that ran before workflows.CheckResendWaitChange replays as
// it ran: it waited for the resend.
func TestPayWaitsForResendBeforeCheckResendWaitChange(t *testing.T) {
	h := resendRetrying(t)
	h.beforeResendWait = true
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, workflows.CheckLostAfter*checkDelay+checkDelay/2)
	_, err := h.run(input)
	if !errors.Is(err, errTopicGone) && (err == nil || !strings.Contains(err.Error(), errTopicGone.Error())) {
		t.Fatalf("workflow error %v, want the resend's (after the test environment's last attempt)", err)
	}
}

// A resend that got through while a refused payment's step ran (it was
// taken while the resend retried), and its copy that came meanwhile: the
// resend names the run, in a run that Temporal's reset started, that its
// copy names, and is taken first.
func TestResetRunResendDoneDuringRefusedPay(t *testing.T) {
	h := newHarness(t)
	h.stamp = func(n, send int) string {
		if n == 1 && send == 1 {
			return replaced
		}
		return ""
	}
	h.lose = func(n, send int) bool { return n == 1 && (send == 1 || send > 4) } // only the resend's last attempt delivers
	h.sendErr = func(n, send int) error {
		if n == 1 && send > 1 && send < 4 {
			return errTopicGone // two attempts of the resend fail (1 s, 2 s back-off)
		}
		return nil
	}
	var attempts int
	h.local = func(activity, _ string) error {
		if activity != workflows.ActivityMarkPaidLocal {
			return nil
		}
		if attempts++; attempts < 8 { // a busy database for 91 s, then the refusal
			return errors.New("database is locked")
		}
		return errPaymentExists
	}
	h.pay(workflows.PayInput{PaymentID: "pay-taken-elsewhere", Amount: input.Amount}, workflows.CheckLostAfter*checkDelay+time.Second/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusCancelled || res.Checks != 3 {
		t.Fatalf("result %+v, want CANCELLED after 3 checks", res)
	}
	if want := []int{1, 1, 1, 1, 2, 3}; !reflect.DeepEqual(h.checks, want) {
		t.Fatalf("checks sent (attempts) %v, want %v: the resend's copy was taken for another run's", h.checks, want)
	}
}

// wantCancelledAfter3 fails t unless the order was cancelled after 3
// checks, each read once, and, with checks, the checks sent were those
// (why says what else went wrong).
func wantCancelledAfter3(t *testing.T, h *harness, res workflows.OrderResult, checks []int, why string) {
	t.Helper()
	if res.Status != workflows.StatusCancelled || res.Checks != 3 || len(h.states) != 3 {
		t.Fatalf("result %+v, states read %d: want CANCELLED after 3 checks, each read once", res, len(h.states))
	}
	if checks != nil && !reflect.DeepEqual(h.checks, checks) {
		t.Fatalf("checks sent %v, want %v: %s", h.checks, checks, why)
	}
}
