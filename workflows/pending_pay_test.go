package workflows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/workflows"
)

// A payment signalled while a payment check asks the database, before the
// workflow is cancelled, is taken as one signalled while the workflow
// waits is: the customer paid before the cancellation.
func TestPayBeforeCancellationDuringCheckIsTaken(t *testing.T) {
	h := newHarness(t)
	first := true
	h.state = func() (string, error) {
		if first {
			first = false
			// The check's state read is retried (a busy database): the
			// customer pays, then the workflow is cancelled.
			h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, 0)
			h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 100*time.Millisecond) // within the retry's back-off
			return "", errors.New("database is locked")
		}
		return workflows.StatusPendingPayment, nil
	}
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("workflow error %v, status %+v; want PAID by pay-1 (paid before the cancellation)", err, h.status())
	}
	if res.Status != workflows.StatusPaid || res.PaymentID != "pay-1" || len(res.RejectedPayments) != 0 {
		t.Fatalf("result %+v, want PAID by pay-1, nothing to refund", res)
	}
}
