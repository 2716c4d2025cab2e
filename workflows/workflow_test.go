package workflows_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

func TestOrderPaid(t *testing.T) {
	h := newHarness(t)
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: 1, PaymentID: "pay-1"}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	commits, rollbacks := h.outcomes()
	if !slices.Equal(commits, []string{"order-1/create", "order-1/pay"}) || len(rollbacks) != 0 {
		t.Fatalf("commits %v, rollbacks %v", commits, rollbacks)
	}
	if want := []string{"CreateOrderLocal order-1/create", "MarkPaidLocal order-1/pay"}; !slices.Equal(h.locals, want) {
		t.Fatalf("local transactions %v, want %v", h.locals, want)
	}
	if len(h.halves) != 2 || h.halves[0].Topic != workflows.TopicOrderEvents || h.halves[0].Tags != workflows.TagOrderCreated ||
		!slices.Equal(h.halves[0].Keys, []string{orderID}) || h.halves[1].Tags != workflows.TagOrderPaid {
		t.Fatalf("half messages %+v", h.halves)
	}
	for _, in := range h.halves { // one order's events share a queue
		if in.ShardingKey != orderID {
			t.Fatalf("half message %s has sharding key %q, want the order id %q", in.TxnID, in.ShardingKey, orderID)
		}
	}
	if !strings.Contains(string(h.halves[1].Body), `"paymentId":"pay-1"`) {
		t.Fatalf("OrderPaid body %s", h.halves[1].Body)
	}
}

func TestOrderTimesOutAfterMaxChecks(t *testing.T) {
	h := newHarness(t)
	states := 0
	h.state = func() (string, error) { states++; return workflows.StatusPendingPayment, nil }
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusCancelled || res.Checks != 3 || !strings.Contains(res.Reason, "3 payment checks") {
		t.Fatalf("result %+v, want CANCELLED after 3 checks", res)
	}
	if !slices.Equal(h.checks, []int{1, 2, 3}) || states != 3 {
		t.Fatalf("checks sent %v, states asked %d; want 1 2 3 and 3", h.checks, states)
	}
	commits, _ := h.outcomes()
	if !slices.Equal(commits, []string{"order-1/create", "order-1/cancel"}) {
		t.Fatalf("commits %v", commits)
	}
	if len(h.paid) != 0 {
		t.Fatalf("paid %v", h.paid)
	}
}

func TestCheckFindsOrderPaid(t *testing.T) {
	h := newHarness(t)
	h.state = func() (string, error) { return workflows.StatusPaid, nil }
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid || res.Checks != 1 {
		t.Fatalf("result %+v, want PAID after 1 check", res)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create"}) {
		t.Fatalf("commits %v: no step after a check found the order paid", commits)
	}
}

func TestCreateFailureRollsBack(t *testing.T) {
	h := newHarness(t)
	h.local = func(activity, _ string) error {
		return permanent("orders: out of stock", workflows.ErrTypeOutOfStock)
	}
	res, err := h.run(input)
	if err != nil {
		t.Fatalf("a refused order is a result, not a workflow error: %v", err)
	}
	if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "out of stock") {
		t.Fatalf("result %+v, want FAILED: out of stock", res)
	}
	commits, rollbacks := h.outcomes()
	if len(commits) != 0 || !slices.Equal(rollbacks, []string{"order-1/create"}) {
		t.Fatalf("commits %v, rollbacks %v; want the create message rolled back", commits, rollbacks)
	}
	if len(h.checks) != 0 {
		t.Fatalf("payment checks %v sent for an order never created", h.checks)
	}
}

func TestSendHalfRetried(t *testing.T) {
	h := newHarness(t)
	calls := 0
	h.sendHalf = func(in workflows.SendHalfInput) (client.HalfReceipt, error) {
		calls++
		if calls == 1 {
			return client.HalfReceipt{}, errBrokerDown
		}
		return receipt(in.TxnID), nil
	}
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid {
		t.Fatalf("result %+v", res)
	}
	if len(h.halves) != 3 || h.halves[0].TxnID != "order-1/create" || h.halves[1].TxnID != "order-1/create" {
		t.Fatalf("half sends %+v; want create twice (same id), then pay", h.halves)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/pay"}) {
		t.Fatalf("commits %v", commits)
	}
}

// errBrokerDown is a SendHalf failure while the broker is unreachable.
var errBrokerDown = errors.New("client: SEND_MESSAGE_V2 to broker: connection refused")

// brokerDownFor is errBrokerDown asking for the next attempt after d. The
// test environment stops retrying after 10 attempts when a policy sets no
// limit (its guard against spinning), so an outage longer than the
// policy's backoff reaches in 10 attempts spaces them out this way.
func brokerDownFor(d time.Duration) error {
	return temporal.NewApplicationErrorWithOptions(errBrokerDown.Error(), "", temporal.ApplicationErrorOptions{NextRetryDelay: d})
}

// A step that records what already happened (a payment, a cancellation)
// retries its send for as long as the broker is down; giving up would
// lose it.
func TestPayAndCancelOutlastLongBrokerOutage(t *testing.T) {
	const outage = 3 * workflows.CreateSendTimeout
	for _, tc := range []struct {
		step string
		pay  bool
		want string
	}{{"pay", true, workflows.StatusPaid}, {"cancel", false, workflows.StatusCancelled}} {
		t.Run(tc.step, func(t *testing.T) {
			h := newHarness(t)
			var downUntil time.Time
			sends := 0
			h.sendHalf = func(in workflows.SendHalfInput) (client.HalfReceipt, error) {
				if in.TxnID == "order-1/"+tc.step {
					sends++
					if downUntil.IsZero() {
						downUntil = h.env.Now().Add(outage)
					}
					if h.env.Now().Before(downUntil) {
						return client.HalfReceipt{}, brokerDownFor(5 * time.Minute)
					}
				}
				return receipt(in.TxnID), nil
			}
			if tc.pay {
				h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
			}
			res, err := h.run(input)
			if err != nil {
				t.Fatalf("step %s gave up during a %v broker outage: %v", tc.step, outage, err)
			}
			if res.Status != tc.want {
				t.Fatalf("result %+v", res)
			}
			if downUntil.IsZero() || h.env.Now().Before(downUntil) || sends < 7 {
				t.Fatalf("%d sends, done at %v, outage until %v", sends, h.env.Now(), downUntil)
			}
			if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/" + tc.step}) {
				t.Fatalf("commits %v", commits)
			}
		})
	}
}

func TestCreateGivesUpWhileBrokerStaysDown(t *testing.T) {
	h := newHarness(t)
	h.sendHalf = func(workflows.SendHalfInput) (client.HalfReceipt, error) {
		return client.HalfReceipt{}, brokerDownFor(2 * time.Minute)
	}
	start := h.env.Now()
	_, err := h.run(input)
	if err == nil || !strings.Contains(err.Error(), "send half message order-1/create") {
		t.Fatalf("workflow error %v, want the create step's send failure", err)
	}
	if took := h.env.Now().Sub(start); took != workflows.CreateSendTimeout {
		t.Fatalf("create gave up after %v, want %v", took, workflows.CreateSendTimeout)
	}
	if len(h.halves) != 6 || len(h.locals) != 0 || len(h.checks) != 0 {
		t.Fatalf("%d sends, local transactions %v, checks %v; want 6 sends (every 2 minutes) and nothing else",
			len(h.halves), h.locals, h.checks)
	}
}

func TestFencedLocalTransactionRollsBackAndRunsAgain(t *testing.T) {
	h := newHarness(t)
	h.local = func(activity, txnID string) error {
		if txnID == "order-1/create" {
			return errFenced
		}
		return nil
	}
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid {
		t.Fatalf("result %+v", res)
	}
	commits, rollbacks := h.outcomes()
	if !slices.Equal(rollbacks, []string{"order-1/create"}) ||
		!slices.Equal(commits, []string{"order-1/create-2", "order-1/pay"}) {
		t.Fatalf("commits %v, rollbacks %v; want create rolled back, create-2 committed", commits, rollbacks)
	}
}

func TestFencedEveryTimeFails(t *testing.T) {
	h := newHarness(t)
	h.local = func(string, string) error {
		return errFenced
	}
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "fenced") {
		t.Fatalf("result %+v, want FAILED: fenced", res)
	}
	commits, rollbacks := h.outcomes()
	if len(commits) != 0 || !slices.Equal(rollbacks, []string{"order-1/create", "order-1/create-2", "order-1/create-3"}) {
		t.Fatalf("commits %v, rollbacks %v", commits, rollbacks)
	}
}

func TestPayStepRefusedAdoptsDatabaseState(t *testing.T) {
	h := newHarness(t)
	h.local = failing(workflows.ActivityMarkPaidLocal, permanent("orders: order in wrong state", workflows.ErrTypeBadState))
	h.state = func() (string, error) { return workflows.StatusCancelled, nil }
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	want := []workflows.PayInput{{PaymentID: "pay-1", Amount: input.Amount}}
	if res.Status != workflows.StatusCancelled || !reflect.DeepEqual(res.RejectedPayments, want) {
		t.Fatalf("result %+v, want the database's CANCELLED and the payment listed for a refund", res)
	}
	if _, rollbacks := h.outcomes(); !slices.Equal(rollbacks, []string{"order-1/pay"}) {
		t.Fatalf("rollbacks %v", rollbacks)
	}
}

// A payment fenced more often than MaxStepAttempts is still recorded: a
// fence means the local transaction was slow, not that the payment is bad.
func TestPayFencedRunsAgain(t *testing.T) {
	h := newHarness(t)
	fences := workflows.MaxStepAttempts + 1
	var runs []time.Time
	h.local = func(activity, _ string) error {
		if activity != workflows.ActivityMarkPaidLocal {
			return nil
		}
		runs = append(runs, h.env.Now())
		if fences > 0 {
			fences--
			return errFenced
		}
		return nil
	}
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid || res.PaymentID != "pay-1" || len(res.RejectedPayments) != 0 {
		t.Fatalf("result %+v, want PAID by pay-1", res)
	}
	commits, rollbacks := h.outcomes()
	want := []string{"order-1/pay", "order-1/pay-2", "order-1/pay-3", "order-1/pay-4"}
	if !slices.Equal(rollbacks, want) || !slices.Equal(commits, []string{"order-1/create", "order-1/pay-5"}) {
		t.Fatalf("commits %v, rollbacks %v; want %v rolled back, pay-5 committed", commits, rollbacks, want)
	}
	for i, backoff := 1, time.Second; i < len(runs); i, backoff = i+1, 2*backoff {
		if gap := runs[i].Sub(runs[i-1]); gap < backoff {
			t.Fatalf("run %d of the fenced step %v after the one before, want a back-off of at least %v", i+1, gap, backoff)
		}
	}
}

// A payment the database refuses (its id recorded for another order) is
// listed for a refund, and the order, still unpaid, takes the next one
// under a transaction id of its own.
func TestRefusedPaymentListedAndOrderWaitsOn(t *testing.T) {
	h := newHarness(t)
	h.local = func(activity, txnID string) error {
		if activity == workflows.ActivityMarkPaidLocal && txnID == "order-1/pay" {
			return errPaymentExists
		}
		return nil
	}
	h.pay(workflows.PayInput{PaymentID: "used", Amount: input.Amount}, checkDelay/4)
	h.pay(workflows.PayInput{PaymentID: "fresh", Amount: input.Amount}, checkDelay+checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: 2, PaymentID: "fresh",
		RejectedPayments: []workflows.PayInput{{PaymentID: "used", Amount: input.Amount}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	commits, rollbacks := h.outcomes()
	if !slices.Equal(rollbacks, []string{"order-1/pay"}) || !slices.Equal(commits, []string{"order-1/create", "order-1/pay-2"}) {
		t.Fatalf("commits %v, rollbacks %v", commits, rollbacks)
	}
}

// A refused payment with no other one to come: the checks run out and the
// order is cancelled, the payment listed for a refund.
func TestRefusedPaymentThenChecksRunOut(t *testing.T) {
	h := newHarness(t)
	h.local = failing(workflows.ActivityMarkPaidLocal, errPaymentExists)
	h.pay(workflows.PayInput{PaymentID: "used", Amount: input.Amount}, checkDelay/4)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusCancelled || res.Checks != 3 ||
		!reflect.DeepEqual(res.RejectedPayments, []workflows.PayInput{{PaymentID: "used", Amount: input.Amount}}) {
		t.Fatalf("result %+v, want CANCELLED after 3 checks with the payment listed for a refund", res)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/cancel"}) {
		t.Fatalf("commits %v", commits)
	}
}

// Cancelling the workflow while it waits for the payment cancels the
// order (releasing its stock) before the workflow ends as cancelled, and
// the status query still answers afterwards.
func TestWorkflowCancelledWhileWaitingCancelsOrder(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, checkDelay/2)
	_, err := h.run(input)
	wantCancelled(t, err)
	if want := []string{"CreateOrderLocal order-1/create", "CancelLocal order-1/cancel"}; !slices.Equal(h.locals, want) {
		t.Fatalf("local transactions %v, want %v", h.locals, want)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/cancel"}) {
		t.Fatalf("commits %v", commits)
	}
	res := h.status()
	if res.Status != workflows.StatusCancelled || res.Reason != "workflow cancelled" {
		t.Fatalf("status after cancellation %+v, want CANCELLED: workflow cancelled", res)
	}
}

// A payment being recorded when the workflow is cancelled is recorded:
// the money was taken.
func TestWorkflowCancelledWhilePayingRecordsPayment(t *testing.T) {
	h := newHarness(t)
	h.local = h.cancelDuringRetryOf(workflows.ActivityMarkPaidLocal)
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid || res.PaymentID != "pay-1" {
		t.Fatalf("result %+v, want PAID by pay-1", res)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/pay"}) {
		t.Fatalf("commits %v", commits)
	}
}

func TestWrongAmountAndStaleChecksIgnored(t *testing.T) {
	h := newHarness(t)
	h.pay(workflows.PayInput{PaymentID: "cheap", Amount: 1}, checkDelay/4)
	// A duplicate of check 1 arriving while check 2 is awaited.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: orderID, Check: 1})
	}, checkDelay+checkDelay/2)
	h.pay(workflows.PayInput{PaymentID: "pay-2", Amount: input.Amount}, checkDelay+3*checkDelay/4)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPaid, Checks: 2, PaymentID: "pay-2",
		RejectedPayments: []workflows.PayInput{{PaymentID: "cheap", Amount: 1}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if len(h.paid) != 1 || h.paid[0].PaymentID != "pay-2" {
		t.Fatalf("payments recorded %+v", h.paid)
	}
}

func TestPaymentsAfterSettlementRejected(t *testing.T) {
	h := newHarness(t)
	h.maxChecks = 1
	// Both arrive with check 1's signal: the check cancels the order
	// first, the payments are neither taken nor dropped.
	late := []workflows.PayInput{{PaymentID: "late-1", Amount: input.Amount}, {PaymentID: "late-2", Amount: input.Amount}}
	h.local = func(activity, _ string) error {
		if activity == workflows.ActivityCancelLocal {
			for _, p := range late {
				h.pay(p, 0)
			}
		}
		return nil
	}
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusCancelled || !reflect.DeepEqual(res.RejectedPayments, late) {
		t.Fatalf("result %+v, want CANCELLED with both late payments rejected", res)
	}
	if len(h.paid) != 0 {
		t.Fatalf("paid %+v", h.paid)
	}
}

func TestStatusQuery(t *testing.T) {
	h := newHarness(t)
	var during workflows.OrderResult
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(&during); err != nil {
			t.Error(err)
		}
	}, checkDelay/2)
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay*3/4)
	if _, err := h.run(input); err != nil {
		t.Fatal(err)
	}
	want := workflows.OrderResult{OrderID: orderID, Status: workflows.StatusPendingPayment, Checks: 1}
	if !reflect.DeepEqual(during, want) {
		t.Fatalf("status while waiting %+v, want %+v", during, want)
	}
	v, err := h.env.QueryWorkflow(workflows.QueryReceipts)
	if err != nil {
		t.Fatal(err)
	}
	var receipts map[string]client.HalfReceipt
	if err := v.Get(&receipts); err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 2 || receipts["create"] != receipt("order-1/create") || receipts["pay"] != receipt("order-1/pay") {
		t.Fatalf("receipts %+v", receipts)
	}
}

func TestInvalidInputFailsWithoutSending(t *testing.T) {
	for name, in := range map[string]workflows.OrderInput{
		"spaced order id": {OrderID: "order 1", User: "u", SKU: "s", Qty: 1, Amount: 1},
		"no user":         {OrderID: orderID, SKU: "s", Qty: 1, Amount: 1},
		"zero qty":        {OrderID: orderID, User: "u", SKU: "s", Amount: 1},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			res, err := h.run(in)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != workflows.StatusFailed || !strings.HasPrefix(res.Reason, "invalid input") {
				t.Fatalf("result %+v", res)
			}
			if len(h.halves) != 0 {
				t.Fatalf("sent %+v", h.halves)
			}
		})
	}
	// A workflow id too long for its steps' transaction ids and its
	// checks' message ids fails before anything is sent, not after the
	// order was created (its first check's id would be refused).
	t.Run("long workflow id", func(t *testing.T) {
		h := newHarness(t)
		h.env.SetStartWorkflowOptions(temporalclient.StartWorkflowOptions{ID: strings.Repeat("w", workflows.MaxOrderIDLength+1)})
		in := input
		in.OrderID = "short-1"
		res, err := h.run(in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "workflow id") || len(h.halves) != 0 {
			t.Fatalf("result %+v, sent %+v", res, h.halves)
		}
	})
}

// StepTxnID names the run chain: two chains under one workflow id get
// different transaction ids, one chain always the same.
func TestStepTxnID(t *testing.T) {
	a := workflows.StepTxnID("order-1", "0193a8b2-7c1e-7d4f-9a3b-1f2e3d4c5b6a", "pay")
	b := workflows.StepTxnID("order-1", "0193a8b2-7c1e-7d4f-9a3b-1f2e3d4c5b6b", "pay")
	if a == b || a != workflows.StepTxnID("order-1", "0193a8b2-7c1e-7d4f-9a3b-1f2e3d4c5b6a", "pay") {
		t.Fatalf("ids %q and %q", a, b)
	}
	if !strings.HasPrefix(a, "order-1/") || !strings.HasSuffix(a, "/pay") || len(a) != len("order-1/")+12+len("/pay") {
		t.Fatalf("id %q, want order-1/<12 hex digits>/pay", a)
	}
	// The longest ids the order workflow builds fit in a message id.
	long := workflows.StepTxnID(strings.Repeat("w", workflows.MaxOrderIDLength), a, "cancel-30")
	if len(long) > client.MaxIDLength {
		t.Fatalf("%d-character transaction id", len(long))
	}
}

func TestCommitRefusedFailsWorkflow(t *testing.T) {
	h := newHarness(t)
	h.endTxn = func(in workflows.EndInput) error {
		return permanent("client: transaction already ended with the other outcome", workflows.ErrTypeTransactionConflict)
	}
	_, err := h.run(input)
	if err == nil || !strings.Contains(err.Error(), "other outcome") {
		t.Fatalf("error %v, want the commit's conflict", err)
	}
}

// A workflow cancelled while its order is being created lets the create
// step finish (the order may be in the database already) and then
// cancels the order, releasing its stock.
func TestCancelledDuringCreateCancelsOrder(t *testing.T) {
	h := newHarness(t)
	busy := 3
	h.local = func(activity, _ string) error {
		if activity == workflows.ActivityCreateOrderLocal && busy > 0 {
			busy--
			if busy == 2 {
				h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 0) // during the retries' back-off
			}
			return errors.New("database is locked")
		}
		return nil
	}
	_, err := h.run(input)
	wantCancelled(t, err)
	want := []string{"CreateOrderLocal order-1/create", "CreateOrderLocal order-1/create", "CreateOrderLocal order-1/create",
		"CreateOrderLocal order-1/create", "CancelLocal order-1/cancel"}
	if !slices.Equal(h.locals, want) {
		t.Fatalf("local transactions %v, want %v", h.locals, want)
	}
	if commits, _ := h.outcomes(); !slices.Equal(commits, []string{"order-1/create", "order-1/cancel"}) {
		t.Fatalf("commits %v", commits)
	}
	if len(h.checks) != 0 {
		t.Fatalf("payment checks sent %v for a cancelled order", h.checks)
	}
}

// A payment and the workflow's cancellation handled in the same workflow
// task: the payment is taken (the money was), not dropped.
func TestPayAndCancellationTogetherTakesPayment(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflowSkippingWorkflowTask(workflows.SignalPay, workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount})
		h.env.CancelWorkflow() // one workflow task sees both
	}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusPaid || res.PaymentID != "pay-1" {
		t.Fatalf("result %+v, want PAID by pay-1", res)
	}
}

func TestChecksKeyedByWorkflowID(t *testing.T) {
	h := newHarness(t)
	in := input
	in.OrderID = "order-x" // not the workflow id
	h.maxChecks = 1
	res, err := h.run(in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != workflows.StatusCancelled || res.OrderID != "order-x" {
		t.Fatalf("result %+v", res)
	}
	if !slices.Equal(h.checkIDs, []string{orderID}) {
		t.Fatalf("checks sent for %v, want the workflow id %s", h.checkIDs, orderID)
	}
	if !slices.Equal(h.halves[0].Keys, []string{"order-x"}) || h.halves[0].TxnID != orderID+"/create" {
		t.Fatalf("create message %+v: keyed by the order id, transaction id of the workflow id", h.halves[0])
	}
}

// A payment fenced MaxFencedRuns times is listed for a refund and the
// order waits on: its checks then cancel it.
func TestPayFencedMaxTimesIsRefunded(t *testing.T) {
	h := newHarness(t)
	runs := 0
	h.local = func(activity, _ string) error {
		if activity == workflows.ActivityMarkPaidLocal {
			runs++
			return errFenced
		}
		return nil
	}
	h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
	res, err := h.run(input)
	if err != nil {
		t.Fatal(err)
	}
	if runs != workflows.MaxFencedRuns || res.Status != workflows.StatusCancelled ||
		!reflect.DeepEqual(res.RejectedPayments, []workflows.PayInput{{PaymentID: "pay-1", Amount: input.Amount}}) {
		t.Fatalf("%d pay runs, result %+v; want %d runs, then CANCELLED by the checks with pay-1 listed for a refund",
			runs, res, workflows.MaxFencedRuns)
	}
}

// A payment signalled right after the cancellation, while the order is
// being cancelled, is listed for a refund, not dropped.
func TestPayAfterCancellationIsRefunded(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() {
		h.env.CancelWorkflow()
		h.env.SignalWorkflow(workflows.SignalPay, workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount})
	}, checkDelay/2)
	_, err := h.run(input)
	wantCancelled(t, err)
	res := h.status()
	if res.Status != workflows.StatusCancelled ||
		!reflect.DeepEqual(res.RejectedPayments, []workflows.PayInput{{PaymentID: "pay-1", Amount: input.Amount}}) {
		t.Fatalf("status %+v, want CANCELLED with pay-1 listed for a refund", res)
	}
}

// A cancelled workflow whose create failed after its local transaction
// (the broker refused the commit) cancels the order it may have created.
func TestCancelledCreateFailureCancelsOrder(t *testing.T) {
	h := newHarness(t)
	h.local = h.cancelDuringRetryOf(workflows.ActivityCreateOrderLocal)
	h.endTxn = func(in workflows.EndInput) error {
		if in.Commit && in.Receipt.TransactionID == "order-1/create" {
			return permanent("client: transaction already ended with the other outcome", workflows.ErrTypeTransactionConflict)
		}
		return nil
	}
	_, err := h.run(input)
	wantCancelled(t, err)
	if n := len(h.locals); n == 0 || h.locals[n-1] != "CancelLocal order-1/cancel" {
		t.Fatalf("local transactions %v, want the order cancelled last", h.locals)
	}
}

// Workflows started before SettlesChange keep the earlier rules.
func TestBeforeSettlesChange(t *testing.T) {
	t.Run("pay fenced MaxStepAttempts times fails the order", func(t *testing.T) {
		h := newHarness(t)
		h.legacy = true
		h.local = failing(workflows.ActivityMarkPaidLocal, errFenced)
		h.pay(workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}, checkDelay/2)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		_, rollbacks := h.outcomes()
		if res.Status != workflows.StatusFailed || !slices.Equal(rollbacks, []string{"order-1/pay", "order-1/pay-2", "order-1/pay-3"}) {
			t.Fatalf("result %+v, rollbacks %v; want FAILED after 3 runs", res, rollbacks)
		}
	})
	t.Run("refused payment fails the order", func(t *testing.T) {
		h := newHarness(t)
		h.legacy = true
		h.local = failing(workflows.ActivityMarkPaidLocal, errPaymentExists)
		h.pay(workflows.PayInput{PaymentID: "used", Amount: input.Amount}, checkDelay/4)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusFailed || res.Checks != 1 {
			t.Fatalf("result %+v, want FAILED at once", res)
		}
	})
	t.Run("cancellation noticed at the next activity, nothing compensated", func(t *testing.T) {
		h := newHarness(t)
		h.legacy = true
		h.env.RegisterDelayedCallback(h.env.CancelWorkflow, checkDelay/2)
		_, err := h.run(input)
		wantCancelled(t, err)
		if want := []string{"CreateOrderLocal order-1/create"}; !slices.Equal(h.locals, want) {
			t.Fatalf("local transactions %v, want %v", h.locals, want)
		}
	})
}

// A payer that signals the same payment twice (a retried call, a webhook
// delivered twice): the order is paid once, and the payment that paid it
// is not listed for a refund. A refused payment signalled twice is
// listed once, and not run against the database again.
func TestRepeatedPaySignals(t *testing.T) {
	t.Run("taken", func(t *testing.T) {
		h := newHarness(t)
		p := workflows.PayInput{PaymentID: "pay-1", Amount: input.Amount}
		h.pay(p, checkDelay/2)
		h.pay(p, checkDelay/2)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusPaid || res.PaymentID != "pay-1" || len(res.RejectedPayments) != 0 {
			t.Fatalf("result %+v, want PAID by pay-1 and nothing to refund", res)
		}
	})
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t)
		var runs int
		h.local = func(activity, _ string) error {
			if activity != workflows.ActivityMarkPaidLocal {
				return nil
			}
			runs++
			return errPaymentExists
		}
		used := workflows.PayInput{PaymentID: "used", Amount: input.Amount}
		cheap := workflows.PayInput{PaymentID: "cheap", Amount: 1}
		h.pay(used, checkDelay/4)
		h.pay(used, checkDelay/2)
		h.pay(cheap, checkDelay/2)
		h.pay(cheap, checkDelay/2)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusCancelled || !reflect.DeepEqual(res.RejectedPayments, []workflows.PayInput{used, cheap}) {
			t.Fatalf("result %+v, want CANCELLED with used and cheap listed once each", res)
		}
		if runs != 1 {
			t.Fatalf("the refused payment ran against the database %d times, want 1", runs)
		}
	})
}

// A workflow reset to before its pay step and paid again with another
// payment: the database refuses it (ErrBadState, the pay transaction
// recorded p1) and the order is PAID. The result names the payment the
// database recorded, and only the refused one is listed for a refund.
func TestRefusedPayAdoptsRecordedPayment(t *testing.T) {
	p1 := workflows.PayInput{PaymentID: "p1", Amount: input.Amount}
	p3 := workflows.PayInput{PaymentID: "p3", Amount: input.Amount}
	badState := permanent("orders: mark paid order-1: orders: order in wrong state: transaction order-1/pay recorded payment p1, not p3",
		workflows.ErrTypeBadState)
	paidByP1 := func(h *harness) {
		h.local = failing(workflows.ActivityMarkPaidLocal, badState)
		h.state = func() (string, error) { return workflows.StatusPaid, nil }
		h.recorded = "p1"
	}
	for _, tc := range []struct {
		name         string
		pays         []workflows.PayInput
		wantRejected []workflows.PayInput
	}{
		{"another payment", []workflows.PayInput{p3}, []workflows.PayInput{p3}},
		// The recorded payment signalled again is the one that paid the
		// order: not refunded.
		{"then the recorded one signalled", []workflows.PayInput{p3, p1}, []workflows.PayInput{p3}},
		// The order paid by p1 under another transaction (the run before
		// the reset took it at "pay-2"): p1 refused at "pay" is not refunded.
		{"the recorded one refused", []workflows.PayInput{p1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			paidByP1(h)
			for _, p := range tc.pays {
				h.pay(p, checkDelay/2)
			}
			res, err := h.run(input)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != workflows.StatusPaid || res.PaymentID != "p1" || !reflect.DeepEqual(res.RejectedPayments, tc.wantRejected) {
				t.Fatalf("result %+v, want PAID by p1 (the recorded payment), %v listed for a refund", res, tc.wantRejected)
			}
			if !slices.Equal(h.states, []string{workflows.ActivityOrderState}) {
				t.Fatalf("state activities %v, want %s", h.states, workflows.ActivityOrderState)
			}
		})
	}
	t.Run("a check finds it paid", func(t *testing.T) {
		h := newHarness(t)
		paidByP1(h)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusPaid || res.PaymentID != "p1" || len(res.RejectedPayments) != 0 {
			t.Fatalf("result %+v, want PAID by p1 (the recorded payment)", res)
		}
	})
	t.Run("before PaymentIDChange", func(t *testing.T) {
		h := newHarness(t)
		paidByP1(h)
		h.beforePaymentID = true
		h.pay(p3, checkDelay/2)
		res, err := h.run(input)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != workflows.StatusPaid || res.PaymentID != "" || !reflect.DeepEqual(res.RejectedPayments, []workflows.PayInput{p3}) {
			t.Fatalf("result %+v, want PAID without a payment id, p3 listed for a refund", res)
		}
		if !slices.Equal(h.states, []string{workflows.ActivityPaymentState}) {
			t.Fatalf("state activities %v, want %s", h.states, workflows.ActivityPaymentState)
		}
	})
}
