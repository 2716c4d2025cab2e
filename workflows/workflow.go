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

// MaxStepAttempts bounds how often step "create" runs again, under a new
// transaction id ("create", "create-2", "create-3"), after the check-back
// fenced its local transaction: nothing was promised to anyone yet.
const MaxStepAttempts = 3

// MaxFencedRuns bounds how often steps "pay" and "cancel" run: a fence
// says the local transaction was slower than the broker's check-back, not
// that the payment or the cancellation is wrong, so they run again, backing
// off from one second to five minutes (about two hours in all), each run
// adding some 23 events to the history. After the last, a payment is
// listed for a refund (the order waits on) and a cancellation fails the
// order.
const MaxFencedRuns = 30

// CreateSendTimeout is how long step "create" retries sending its half
// message while the broker is unreachable before the order fails: nothing
// was promised to anyone yet. Steps "pay" and "cancel" retry without a
// limit, since the payment or the cancellation they record has already
// happened.
const CreateSendTimeout = 10 * time.Minute

// MaxOrderIDLength bounds an order id, and the id of the workflow of
// OrderPaymentWorkflow: it leaves room in a transaction id
// ("<workflow id>/<run tag>/cancel-3", [StepTxnID]) and a payment check's
// message id ("<workflow id>/check/2") within client.MaxIDLength.
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
//     the order unpaid sends the next, until PaymentPolicy.MaxChecks; a
//     check not signalled in time is sent again (CheckResendChange); the
//     wait goes on while a check is sent (CheckSendWaitChange);
//  3. paid: step "pay", OrderPaid with ActivityMarkPaidLocal;
//  4. not paid in time: step "cancel", OrderCancelled with
//     ActivityCancelLocal.
//
// A business refusal completes the workflow with Status FAILED, a Reason
// and a nil error: invalid input, an order that cannot be created (out of
// stock; fenced MaxStepAttempts times), a cancel step the database refuses
// when it holds no final status either. A payment the database refuses to
// record (a payment id used by another order) is rejected, and the order
// waits on for another payment or its checks. An infrastructure failure
// (create's half message not stored within CreateSendTimeout, a rollback
// or commit the broker refuses) fails the workflow with the error.
//
// Cancelling the workflow takes effect between steps: the step running
// finishes (an order being created is created, a payment being recorded
// is recorded), then step "cancel" cancels the order (releasing the
// stock) and the workflow ends as cancelled. A payment signalled before
// the cancellation reached the workflow, or in the same workflow task, is
// taken (PayPendingChange). A cancellation that reaches the workflow once
// its order is settling (step "pay" running, or step "cancel" after the
// last check found it unpaid) changes nothing: the workflow completes
// with that order's result (PAID, or CANCELLED with the checks' reason).
//
// These rules came with the version SettlesChange; a workflow started
// before it replays with the earlier ones (a cancellation noticed at the
// next activity, no compensation, MaxStepAttempts for every step, a
// refused payment ending the order FAILED).
//
// A payment the database refused on an order it holds PAID (a workflow
// reset to before its pay step and paid again with another payment)
// completes the workflow PAID, with OrderResult.PaymentID the payment the
// database recorded (ActivityOrderState; before PaymentIDChange,
// ActivityPaymentState and no PaymentID).
//
// A payment the workflow does not take (a wrong amount, one signalled
// after the order was settled, one the database refused) is listed in
// OrderResult.RejectedPayments for a refund, never dropped silently. The
// query QueryStatus answers the current OrderResult (also once the
// workflow has closed, failed or cancelled included), QueryReceipts the
// steps' half-message receipts.
func OrderPaymentWorkflow(ctx workflow.Context, in OrderInput) (OrderResult, error) {
	if in.OrderID == "" {
		in.OrderID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	o := &order{in: in, res: OrderResult{OrderID: in.OrderID, Status: StatusCreating},
		receipts: map[string]client.HalfReceipt{}, runs: map[string]int{},
		settles:  workflow.GetVersion(ctx, SettlesChange, workflow.DefaultVersion, 1) == 1,
		runChain: workflow.GetVersion(ctx, RunChainTxnIDs, workflow.DefaultVersion, 1) == 1,
		once:     workflow.GetVersion(ctx, RejectOnceChange, workflow.DefaultVersion, 1) == 1}
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

// SettlesChange is the workflow.GetVersion change id of the behaviour
// that settles every order (version 1): a workflow cancellation cancels
// the order, steps run where the cancellation does not reach them, a
// refused payment is listed and the order waits on, and "pay" and
// "cancel" run again up to MaxFencedRuns times, backing off. Histories
// recorded before it (DefaultVersion) replay with the earlier behaviour.
const SettlesChange = "order-settles"

// RejectOnceChange is the workflow.GetVersion change id of listing a
// payment for a refund once (version 1): a repeated signal of a payment
// already listed, or of the one taken, is ignored, and a refused payment
// is not run against the database again. Histories recorded before it
// (DefaultVersion) ran a repeated refused payment again and replay so.
const RejectOnceChange = "pay-reject-once"

// CheckRunChange is the workflow.GetVersion change id of telling this
// run's payment checks from those of another run (version 1): the check
// activity stamps each with the run that sent it (PaymentCheck.Run) and
// the workflow counts only a check of the run that sent the one it waits
// for. A run that Temporal's reset started numbers its checks from 1
// again, and counted a check the replaced run had left in the delay
// queue (or one of its signals, reapplied) as its own: an unpaid order
// was cancelled before its own checks came due. Histories recorded
// before it (DefaultVersion) count any check of the number waited for.
const CheckRunChange = "payment-check-run"

// CheckResendChange is the workflow.GetVersion change id of sending a
// lost payment check again (version 1). The delayed check message is the
// one that comes due, but a message may never produce its signal: its
// signal failed until the consumer gave it to the dead-letter queue, it
// was lost to retention or a deleted topic, or a reset that excluded
// signals dropped it after it was received. Without its signal the order
// waited for ever, unpaid and its stock reserved. With it, a workflow
// timer runs while the workflow waits for check n: if check n has not
// come CheckLostAfter times PaymentPolicy.CheckDelay after it was sent,
// check n is sent again (the same number, so that whichever comes first
// counts and the other is ignored), with a warning, and the timer runs
// again for twice as long; after MaxCheckResends resends the next expiry
// counts check n as come due, and the workflow asks the database as the
// check would have. A consumer that never signals thus delays an unpaid
// order's cancellation (at most 21 check delays a check) instead of
// leaving it pending, and makes the workflow send no more than
// 1+MaxCheckResends messages a check. Histories recorded before it
// (DefaultVersion), and a policy without a CheckDelay, wait for the
// check's signal.
const CheckResendChange = "payment-check-resend"

// CheckResendRunsChange is the workflow.GetVersion change id of counting,
// after a resend (CheckResendChange), a check of the run that sent the
// check waited for before (version 1). In a run that Temporal's reset
// started, a check sent before the reset names the run the reset
// replaced, and its resend this run: the resend made the first copy, if
// it came, a check of another run, so the order waited for the resend's
// copy, or, that lost too, up to 21 check delays. Asked only when such a
// copy comes; a history recorded before it (DefaultVersion) ignored it.
const CheckResendRunsChange = "payment-check-resend-runs"

// CheckResendWaitChange is the workflow.GetVersion change id of waiting
// on while a check is sent again (CheckResendChange; version 1): a
// payment, the check's signal or the workflow's cancellation is taken
// while the resend's activity runs (the check's signal cancels it).
// Before it (DefaultVersion) the workflow waited for the resend: its
// activity retried while the check topic's broker was unreachable, or
// the topic was deleted, and an order paid meanwhile stayed
// PENDING_PAYMENT until then. Asked at each resend, so that a history
// recorded before it replays as it ran.
const CheckResendWaitChange = "payment-check-resend-wait"

// CheckSendWaitChange is the workflow.GetVersion change id of waiting on
// while a payment check is sent (version 1). A payment or the workflow's
// cancellation is taken while the send of the next check runs (a check's
// signal waits for it, as before), and while check n is sent again
// (CheckResendWaitChange) the timer after which it counts as lost runs
// on, from the resend's start. Before it (DefaultVersion) the workflow
// waited for the next check's send, and no timer ran while a resend did:
// with the check topic's broker unreachable, or the topic deleted, the
// send retried without end, an order paid meanwhile stayed
// PENDING_PAYMENT, and a lost check was never counted as come due. Asked
// before check 1 is sent, so that a workflow that sent it before the
// change replays, and runs on, as it ran.
const CheckSendWaitChange = "payment-check-send-wait"

// CheckLostAfter is the multiple of PaymentPolicy.CheckDelay after which
// a payment check not signalled is sent again (CheckResendChange); each
// resend doubles it.
const CheckLostAfter = 3

// MaxCheckResends is how often a payment check not signalled is sent
// again (CheckResendChange) before the workflow counts it as come due.
const MaxCheckResends = 2

// PaymentIDChange is the workflow.GetVersion change id of reading the
// order's state with ActivityOrderState (version 1): an order the
// database holds PAID (the pay step refused, a check finding it paid)
// gets OrderResult.PaymentID from the payment the database recorded, and
// that payment is not listed for a refund. Histories recorded before it
// (DefaultVersion) ran ActivityPaymentState, which returns the status
// alone, and replay so (PaymentID left empty).
const PaymentIDChange = "order-state-payment-id"

// run takes the order from its input to a final status.
func (o *order) run(ctx workflow.Context) error {
	if err := validateInput(o.in); err != nil {
		o.fail(err.Error())
		return nil
	}
	if id := workflow.GetInfo(ctx).WorkflowExecution.ID; o.runChain && !ValidOrderID(id) {
		// Its steps' transaction ids and its checks' message ids would
		// be refused half-way, after the order was created.
		o.fail(fmt.Sprintf("invalid input: workflow id %q is longer than %d characters or has a space", id, MaxOrderIDLength))
		return nil
	}
	ctx = workflow.WithActivityOptions(ctx, activityOptions)
	if err := o.create(o.steps(ctx)); err != nil || o.res.Status == StatusFailed {
		if err != nil && o.settles && ctx.Err() != nil {
			// The order may exist (a refused commit of a local transaction
			// that committed): cancel it, as for any cancelled workflow.
			return o.cancelled(ctx, err)
		}
		return err
	}
	if o.settles && ctx.Err() != nil { // cancelled while the order was created
		return o.cancelled(ctx, ctx.Err())
	}
	w, err := o.startWaiting(ctx)
	for err == nil {
		var pay *PayInput
		if pay, err = o.awaitPayment(ctx, w); err != nil || o.final() {
			break
		}
		if pay == nil {
			return o.cancel(o.steps(ctx), fmt.Sprintf("not paid after %d payment checks", o.res.Checks))
		}
		if taken, perr := o.pay(o.steps(ctx), *pay); perr != nil || taken {
			return perr
		}
	}
	if err != nil && o.settles && ctx.Err() != nil {
		return o.cancelled(ctx, err)
	}
	return err
}

// steps returns the context the order's steps run in: one the workflow's
// cancellation does not reach (a step records something that happened:
// the order, a payment, the cancellation), so that a cancellation takes
// effect between steps.
func (o *order) steps(ctx workflow.Context) workflow.Context {
	if !o.settles {
		return ctx
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return dctx
}

// cancelled cancels the order of a cancelled workflow (err is what the
// cancellation made the workflow's wait return) and returns the
// workflow's cancellation.
func (o *order) cancelled(ctx workflow.Context, err error) error {
	if taken, perr := o.payPending(ctx); perr != nil || taken {
		return perr
	}
	if cerr := o.cancel(o.steps(ctx), "workflow cancelled"); cerr != nil {
		return cerr
	}
	if !temporal.IsCanceledError(err) {
		err = ctx.Err()
	}
	return err
}

// PayPendingChange is the workflow.GetVersion change id of taking, in a
// cancelled workflow, a payment signalled before the cancellation reached
// it while a step or a payment check ran (version 1), as one signalled
// while it waited is. Before it (DefaultVersion) such a payment was
// listed for a refund and the order cancelled.
const PayPendingChange = "pay-pending-on-cancel"

// payPending takes, for a cancelled workflow whose order awaits its
// payment, an acceptable payment already signalled. It reports whether
// the order took it (or settled another way, or failed).
func (o *order) payPending(ctx workflow.Context) (bool, error) {
	payCh := workflow.GetSignalChannel(ctx, SignalPay)
	if o.res.Status != StatusPendingPayment || payCh.Len() == 0 ||
		workflow.GetVersion(ctx, PayPendingChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false, nil
	}
	for pay := o.pendingPay(ctx, payCh); pay != nil; pay = o.pendingPay(ctx, payCh) {
		if taken, err := o.pay(o.steps(ctx), *pay); err != nil || taken {
			return true, err
		}
	}
	return false, nil
}

// order is the workflow's state.
type order struct {
	in  OrderInput
	res OrderResult
	// receipts are the half messages of the steps, by step name.
	receipts map[string]client.HalfReceipt
	// runs counts the runs of each step, by its base name.
	runs map[string]int
	// settles: the workflow runs with SettlesChange.
	settles bool
	// runChain: the workflow runs with RunChainTxnIDs.
	runChain bool
	// once: the workflow runs with RejectOnceChange.
	once bool
	// checkRuns: the workflow runs with CheckRunChange; checkRun is the
	// run that sent the check waited for.
	checkRuns bool
	checkRun  string
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
	return Step{Name: name, Topic: TopicOrderEvents, Tags: tag, Keys: []string{o.in.OrderID}, ShardingKey: o.in.OrderID,
		Body: body, Local: local, LocalArgs: args}
}

// Back-off between the runs of a step the check-back fenced: a local
// transaction slower than the check-back once is likely to be so again
// right away (a busy database), and each run adds to the history.
const (
	fenceBackoff    = time.Second
	fenceBackoffMax = 5 * time.Minute
)

// runStep runs s, again after the check-back fenced it, at most
// maxAttempts times (before SettlesChange, MaxStepAttempts for every
// step). Each run of a step gets a name, and so a transaction id, of its
// own: "pay", "pay-2", "pay-3", numbered across the workflow (a second
// payment after a refused one is "pay-2").
func (o *order) runStep(ctx workflow.Context, s Step, maxAttempts int) error {
	base := s.Name
	if !o.settles {
		maxAttempts = MaxStepAttempts
	}
	backoff := fenceBackoff
	for attempt := 1; ; attempt++ {
		o.runs[base]++
		if n := o.runs[base]; n > 1 {
			s.Name = fmt.Sprintf("%s-%d", base, n)
		}
		r, err := SendTransactional(ctx, s)
		if r.MsgID != "" {
			o.receipts[s.Name] = r
		}
		if err == nil || !IsFenced(err) || attempt == maxAttempts {
			return err
		}
		workflow.GetLogger(ctx).Warn("local transaction fenced; running the step again", "step", s.Name)
		if o.settles {
			if err := workflow.Sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, fenceBackoffMax)
		}
	}
}

// create runs step "create". A refused order sets Status FAILED.
func (o *order) create(ctx workflow.Context) error {
	s := o.step("create", TagOrderCreated, ActivityCreateOrderLocal, o.event("", ""), o.in)
	s.SendTimeout = CreateSendTimeout
	err := o.runStep(ctx, s, MaxStepAttempts)
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

// pay runs step "pay" with an accepted payment. It reports whether the
// order took the payment (or settled another way, or failed). When the
// database refused it (the step rolled back) the payment is listed for a
// refund, and an order still unpaid is not taken (false, nil): the
// workflow waits on.
func (o *order) pay(ctx workflow.Context, p PayInput) (taken bool, err error) {
	s := o.step("pay", TagOrderPaid, ActivityMarkPaidLocal, o.event(p.PaymentID, ""), o.in.OrderID, p)
	err = o.runStep(ctx, s, MaxFencedRuns)
	if err == nil {
		o.res.Status, o.res.PaymentID = StatusPaid, p.PaymentID
		return true, nil
	}
	if !errors.Is(err, ErrRolledBack) {
		o.fail("payment " + p.PaymentID + " not recorded: " + err.Error())
		return true, err
	}
	// With PaymentIDChange the database's state is read first: should the
	// payment it recorded be p (taken before under another transaction
	// id), p paid the order and is not listed for a refund.
	var final bool
	var serr error
	adoptFirst := o.namesPayment(ctx)
	if adoptFirst {
		final, serr = o.adopt(ctx)
	}
	o.reject(ctx, p, "rejecting a payment the database refused", "error", err)
	if !adoptFirst {
		final, serr = o.adopt(ctx)
	}
	if serr == nil && !final && !o.settles {
		o.fail("payment " + p.PaymentID + " not recorded: " + failureMessage(err))
		return true, nil
	}
	return final || serr != nil, serr
}

// cancel runs step "cancel".
func (o *order) cancel(ctx workflow.Context, reason string) error {
	s := o.step("cancel", TagOrderCancelled, ActivityCancelLocal, o.event("", reason), o.in.OrderID, reason)
	err := o.runStep(ctx, s, MaxFencedRuns)
	if err == nil {
		o.res.Status, o.res.Reason = StatusCancelled, reason
		return nil
	}
	if !errors.Is(err, ErrRolledBack) {
		o.fail("order not cancelled: " + err.Error())
		return err
	}
	final, serr := o.adopt(ctx)
	if serr == nil && !final {
		o.fail("order not cancelled: " + failureMessage(err))
	}
	return serr
}

// adopt takes the database's status when it is final (the order was paid
// or cancelled another way), with PaymentIDChange the payment it
// recorded for a PAID order, and reports whether it was. With
// SettlesChange an order the database does not know is final too: it was
// never created (a cancelled workflow's create failed).
func (o *order) adopt(ctx workflow.Context) (bool, error) {
	st, err := o.state(ctx)
	if o.settles && HasErrorType(err, ErrTypeNotFound) {
		if !o.final() {
			o.fail("order not created")
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return o.settled(st), nil
}

// settled takes st's status when it is final, and the payment the
// database recorded for a PAID order, and reports whether it was.
func (o *order) settled(st OrderState) bool {
	if st.Status != StatusPaid && st.Status != StatusCancelled {
		return false
	}
	o.res.Status = st.Status
	if st.Status == StatusPaid && st.PaymentID != "" {
		o.res.PaymentID = st.PaymentID
	}
	return true
}

// state reads the order's state: ActivityOrderState, or, replaying a
// history recorded before PaymentIDChange, ActivityPaymentState (the
// status alone, the PaymentID left empty).
func (o *order) state(ctx workflow.Context) (OrderState, error) {
	var st OrderState
	if !o.namesPayment(ctx) {
		err := workflow.ExecuteActivity(ctx, ActivityPaymentState, o.in.OrderID).Get(ctx, &st.Status)
		return st, err
	}
	err := workflow.ExecuteActivity(ctx, ActivityOrderState, o.in.OrderID).Get(ctx, &st)
	return st, err
}

// namesPayment reports whether the workflow runs with PaymentIDChange.
// The version is taken where it matters, when the workflow first reads
// the order's state or a payment is refused: a workflow started before
// the change that gets there after it runs ActivityOrderState too.
func (o *order) namesPayment(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, PaymentIDChange, workflow.DefaultVersion, 1) == 1
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

// ValidOrderID reports whether id can be an order's (and its workflow's)
// id: it fits in a transaction or message id, at most MaxOrderIDLength
// characters, no white space or property separator. A workflow started
// with another id fails at once ("invalid input").
func ValidOrderID(id string) bool {
	return len(id) <= MaxOrderIDLength && !strings.ContainsAny(id, " \t\r\n\x01\x02")
}

// validateInput checks in before anything is sent.
func validateInput(in OrderInput) error {
	switch {
	case !ValidOrderID(in.OrderID):
		return fmt.Errorf("invalid input: order id %q is longer than %d characters or has a space", in.OrderID, MaxOrderIDLength)
	case in.User == "" || in.SKU == "":
		return fmt.Errorf("invalid input: user and sku are required")
	case in.Qty <= 0 || in.Amount <= 0:
		return fmt.Errorf("invalid input: qty %d and amount %d must be positive", in.Qty, in.Amount)
	}
	return nil
}
