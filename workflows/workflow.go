package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/halfbackmq/halfback/client"
)

// MaxStepAttempts bounds how often an order step runs again, under a new
// transaction id ("pay", "pay-2", "pay-3"), after the check-back fenced
// its local transaction.
const MaxStepAttempts = 3

// CreateSendTimeout is how long step "create" retries sending its half
// message while the broker is unreachable before the order fails: nothing
// was promised to anyone yet. Steps "pay" and "cancel" retry without a
// limit, since the payment or the cancellation they record has already
// happened.
const CreateSendTimeout = 10 * time.Minute

// MaxOrderIDLength leaves room in a transaction id ("<order id>/cancel-3")
// for the step name within client.MaxIDLength.
const MaxOrderIDLength = 100

// activityOptions are those of the order activities other than the step's
// own: short calls retried without a limit on attempts.
var activityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         retryPolicy(time.Minute),
}

// policyOptions are those of the PaymentPolicy local activity.
var policyOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy:         retryPolicy(10 * time.Second),
}

// OrderPaymentWorkflow creates an order, waits for its payment and
// records the outcome, each state change sent as a transactional message
// on TopicOrderEvents (the message is visible exactly when the database
// change committed):
//
//  1. step "create": OrderCreated with ActivityCreateOrderLocal;
//  2. a delayed PaymentCheck through the broker (no timer, no table scan),
//     then wait for SignalPay or SignalPaymentCheck; a check that finds
//     the order unpaid sends the next, until PaymentPolicy.MaxChecks;
//  3. paid: step "pay", OrderPaid with ActivityMarkPaidLocal;
//  4. not paid in time: step "cancel", OrderCancelled with
//     ActivityCancelLocal.
//
// A business refusal completes the workflow with Status FAILED, a Reason
// and a nil error: invalid input, an order that cannot be created (out of
// stock; fenced MaxStepAttempts times), a pay or cancel step the database
// refuses when it holds no final status either. An infrastructure failure
// (create's half message not stored within CreateSendTimeout, a rollback
// or commit the broker refuses, cancellation) fails the workflow with the error.
//
// A payment the workflow does not take (a wrong amount, or one signalled
// after the order was settled) is listed in OrderResult.RejectedPayments
// for a refund, never dropped silently. The query QueryStatus answers the
// current OrderResult, QueryReceipts the steps' half-message receipts.
func OrderPaymentWorkflow(ctx workflow.Context, in OrderInput) (OrderResult, error) {
	if in.OrderID == "" {
		in.OrderID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	o := &order{in: in, res: OrderResult{OrderID: in.OrderID, Status: StatusCreating},
		receipts: map[string]client.HalfReceipt{}}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (OrderResult, error) { return o.res, nil }); err != nil {
		return o.res, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryReceipts, func() (map[string]client.HalfReceipt, error) {
		return o.receipts, nil
	}); err != nil {
		return o.res, err
	}
	err := o.run(ctx)
	o.rejectPending(ctx)
	return o.res, err
}

// run takes the order from its input to a final status.
func (o *order) run(ctx workflow.Context) error {
	if err := validateInput(o.in); err != nil {
		o.fail(err.Error())
		return nil
	}
	ctx = workflow.WithActivityOptions(ctx, activityOptions)
	if err := o.create(ctx); err != nil || o.res.Status == StatusFailed {
		return err
	}
	pay, err := o.awaitPayment(ctx)
	switch {
	case err != nil:
		return err
	case o.final():
		return nil
	case pay != nil:
		return o.pay(ctx, *pay)
	}
	return o.cancel(ctx, fmt.Sprintf("not paid after %d payment checks", o.res.Checks))
}

// order is the workflow's state.
type order struct {
	in  OrderInput
	res OrderResult
	// receipts are the half messages of the steps, by step name.
	receipts map[string]client.HalfReceipt
}

func (o *order) fail(reason string) {
	o.res.Status, o.res.Reason = StatusFailed, reason
}

func (o *order) final() bool {
	switch o.res.Status {
	case StatusPaid, StatusCancelled, StatusFailed:
		return true
	}
	return false
}

// event returns the body of an order-events message. Marshalling a
// struct of plain fields is deterministic (workflowcheck sees reflection
// and the runtime behind encoding/json, hence the annotation).
func (o *order) event(paymentID, reason string) []byte {
	//workflowcheck:ignore
	b, _ := json.Marshal(OrderEvent{OrderID: o.in.OrderID, User: o.in.User, SKU: o.in.SKU, Qty: o.in.Qty,
		Amount: o.in.Amount, PaymentID: paymentID, Reason: reason})
	return b
}

// step returns the base Step of an order-events message.
func (o *order) step(name, tag, local string, body []byte, args ...any) Step {
	return Step{Name: name, Topic: TopicOrderEvents, Tags: tag, Keys: []string{o.in.OrderID}, Body: body,
		Local: local, LocalArgs: args}
}

// runStep runs s, again under a new name after the check-back fenced it.
func (o *order) runStep(ctx workflow.Context, s Step) error {
	base := s.Name
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			s.Name = fmt.Sprintf("%s-%d", base, attempt)
		}
		r, err := SendTransactional(ctx, s)
		if r.MsgID != "" {
			o.receipts[s.Name] = r
		}
		if err == nil || !IsFenced(err) || attempt == MaxStepAttempts {
			return err
		}
		workflow.GetLogger(ctx).Warn("local transaction fenced; running the step again", "step", s.Name)
	}
}

// create runs step "create". A refused order sets Status FAILED.
func (o *order) create(ctx workflow.Context) error {
	s := o.step("create", TagOrderCreated, ActivityCreateOrderLocal, o.event("", ""), o.in)
	s.SendTimeout = CreateSendTimeout
	err := o.runStep(ctx, s)
	switch {
	case err == nil:
		o.res.Status = StatusPendingPayment
		return nil
	case errors.Is(err, ErrRolledBack):
		o.fail("order not created: " + failureMessage(err))
		return nil
	}
	o.fail("order not created: " + err.Error())
	return err
}

// pay runs step "pay" with an accepted payment.
func (o *order) pay(ctx workflow.Context, p PayInput) error {
	s := o.step("pay", TagOrderPaid, ActivityMarkPaidLocal, o.event(p.PaymentID, ""), o.in.OrderID, p)
	err := o.runStep(ctx, s)
	if err == nil {
		o.res.Status, o.res.PaymentID = StatusPaid, p.PaymentID
		return nil
	}
	return o.settle(ctx, "payment "+p.PaymentID+" not recorded", err)
}

// cancel runs step "cancel".
func (o *order) cancel(ctx workflow.Context, reason string) error {
	s := o.step("cancel", TagOrderCancelled, ActivityCancelLocal, o.event("", reason), o.in.OrderID, reason)
	err := o.runStep(ctx, s)
	if err == nil {
		o.res.Status, o.res.Reason = StatusCancelled, reason
		return nil
	}
	return o.settle(ctx, "order not cancelled", err)
}

// settle ends the workflow after a pay or cancel step failed with err: a
// rolled-back step adopts the database's status when it is final (the
// order was paid or cancelled another way), else Status FAILED; any other
// error fails the workflow.
func (o *order) settle(ctx workflow.Context, what string, err error) error {
	if !errors.Is(err, ErrRolledBack) {
		o.fail(what + ": " + err.Error())
		return err
	}
	status, serr := o.state(ctx)
	if serr != nil {
		return serr
	}
	if status == StatusPaid || status == StatusCancelled {
		o.res.Status = status
		return nil
	}
	o.fail(what + ": " + failureMessage(err))
	return nil
}

// state runs ActivityPaymentState.
func (o *order) state(ctx workflow.Context) (string, error) {
	var status string
	err := workflow.ExecuteActivity(ctx, ActivityPaymentState, o.in.OrderID).Get(ctx, &status)
	return status, err
}

// failureMessage returns the message of the ApplicationError err wraps,
// else err's text.
func failureMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// validateInput checks in before anything is sent.
func validateInput(in OrderInput) error {
	switch {
	case len(in.OrderID) > MaxOrderIDLength || strings.ContainsAny(in.OrderID, " \t\r\n\x01\x02"):
		return fmt.Errorf("invalid input: order id %q is longer than %d characters or has a space", in.OrderID, MaxOrderIDLength)
	case in.User == "" || in.SKU == "":
		return fmt.Errorf("invalid input: user and sku are required")
	case in.Qty <= 0 || in.Amount <= 0:
		return fmt.Errorf("invalid input: qty %d and amount %d must be positive", in.Qty, in.Amount)
	}
	return nil
}
