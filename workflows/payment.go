package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"
)

// waiting is the state of the wait for the payment across awaitPayment
// calls (the wait goes on after a payment the database refused).
type waiting struct {
	policy PaymentPolicy
	// exhausted: the last check found the order unpaid; none is in flight.
	exhausted bool
}

// startWaiting reads the payment policy and sends the first check.
func (o *order) startWaiting(ctx workflow.Context) (*waiting, error) {
	policy, err := o.policy(ctx)
	if err != nil {
		return nil, err
	}
	if err := o.sendCheck(ctx); err != nil {
		return nil, err
	}
	return &waiting{policy: policy}, nil
}

// awaitPayment waits for the payment: a SignalPay with the order's amount
// returns it; the delayed checks (SignalPaymentCheck) ask the database,
// and once MaxChecks of them found the order unpaid it returns nil (cancel
// it). A check that finds the order PAID or CANCELLED already sets that
// final status (with PaymentIDChange, a PAID order's recorded payment id)
// and returns nil. The workflow's cancellation ends the wait
// with its error.
func (o *order) awaitPayment(ctx workflow.Context, w *waiting) (*PayInput, error) {
	payCh := workflow.GetSignalChannel(ctx, SignalPay)
	if w.exhausted {
		return o.pendingPay(ctx, payCh), nil
	}
	checkCh := workflow.GetSignalChannel(ctx, SignalPaymentCheck)
	log := workflow.GetLogger(ctx)
	for {
		var pay *PayInput
		var check PaymentCheck
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(payCh, func(c workflow.ReceiveChannel, _ bool) { pay = o.receivePay(ctx, c) })
		sel.AddReceive(checkCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &check) })
		if o.settles {
			sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		}
		sel.Select(ctx)
		switch {
		case pay != nil: // taken even if the workflow was cancelled meanwhile: the customer paid
			return pay, nil
		case ctx.Err() != nil && o.settles:
			if pay := o.pendingPay(ctx, payCh); pay != nil { // signalled with the cancellation
				return pay, nil
			}
			return nil, ctx.Err()
		case check.Check == 0:
			continue // a rejected payment (or a check without a number)
		case check.Check != o.res.Checks:
			log.Info("ignoring a payment check not waited for", "check", check.Check, "waiting", o.res.Checks)
			continue
		}
		st, err := o.state(ctx)
		if err != nil {
			return nil, err
		}
		if o.settled(st) {
			return nil, nil
		}
		if o.res.Checks >= w.policy.MaxChecks {
			w.exhausted = true
			return o.pendingPay(ctx, payCh), nil // one signalled while the last check ran
		}
		if err := o.sendCheck(ctx); err != nil {
			return nil, err
		}
	}
}

// receivePay receives a SignalPay and returns it if acceptPay takes it.
func (o *order) receivePay(ctx workflow.Context, c workflow.ReceiveChannel) *PayInput {
	var p PayInput
	c.Receive(ctx, &p)
	return o.acceptPay(ctx, p)
}

// pendingPay returns an acceptable payment already signalled, or nil.
func (o *order) pendingPay(ctx workflow.Context, c workflow.ReceiveChannel) *PayInput {
	var p PayInput
	for c.ReceiveAsync(&p) {
		if pay := o.acceptPay(ctx, p); pay != nil {
			return pay
		}
	}
	return nil
}

// acceptPay returns p if it has a payment id and the order's amount,
// else nil, listing it as rejected. A repeated signal of a payment already
// listed is ignored: that payment is refunded, not taken.
func (o *order) acceptPay(ctx workflow.Context, p PayInput) *PayInput {
	if o.once && o.rejected(p) {
		workflow.GetLogger(ctx).Info("ignoring a repeated signal of a rejected payment", "paymentID", p.PaymentID)
		return nil
	}
	if p.PaymentID == "" || p.Amount != o.in.Amount {
		o.reject(ctx, p, "rejecting a payment", "amount", p.Amount, "want", o.in.Amount)
		return nil
	}
	return &p
}

// reject lists p in RejectedPayments for a refund, logging why, unless
// it is listed already or is the payment that paid the order: a payer
// that signals the same payment twice (a retried call, a webhook
// delivered twice) must not have it refunded, or refunded twice.
func (o *order) reject(ctx workflow.Context, p PayInput, why string, args ...any) {
	log := workflow.GetLogger(ctx)
	if !o.once {
		log.Warn(why, append([]any{"paymentID", p.PaymentID}, args...)...)
		o.res.RejectedPayments = append(o.res.RejectedPayments, p)
		return
	}
	if p.PaymentID != "" && p.PaymentID == o.res.PaymentID {
		log.Info("ignoring a repeated signal of the payment taken", "paymentID", p.PaymentID)
		return
	}
	if o.rejected(p) {
		log.Info("ignoring a repeated signal of a rejected payment", "paymentID", p.PaymentID)
		return
	}
	log.Warn(why, append([]any{"paymentID", p.PaymentID}, args...)...)
	o.res.RejectedPayments = append(o.res.RejectedPayments, p)
}

// rejected reports whether p is listed in RejectedPayments.
func (o *order) rejected(p PayInput) bool {
	return slices.Contains(o.res.RejectedPayments, p)
}

// rejectPending lists the payments signalled but not taken when the
// workflow ends. The workflow completes in the same workflow task, and a
// signal that arrives meanwhile makes Temporal run that task again, so no
// payment signal is dropped unseen.
func (o *order) rejectPending(ctx workflow.Context) {
	c := workflow.GetSignalChannel(ctx, SignalPay)
	var p PayInput
	for c.ReceiveAsync(&p) {
		o.reject(ctx, p, "rejecting a payment of a settled order", "status", o.res.Status)
		p = PayInput{}
	}
}

// policy runs the ActivityPaymentPolicy local activity (at least one
// check).
func (o *order) policy(ctx workflow.Context) (PaymentPolicy, error) {
	var p PaymentPolicy
	lctx := workflow.WithLocalActivityOptions(ctx, policyOptions)
	if err := workflow.ExecuteLocalActivity(lctx, ActivityPaymentPolicy).Get(ctx, &p); err != nil {
		return p, err
	}
	p.MaxChecks = max(p.MaxChecks, 1)
	return p, nil
}

// sendCheck sends the next delayed payment check, keyed by the workflow
// id: the check consumer signals the workflow the key names.
func (o *order) sendCheck(ctx workflow.Context) error {
	n := o.res.Checks + 1
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	if err := workflow.ExecuteActivity(ctx, ActivitySendPaymentCheck, id, n).Get(ctx, nil); err != nil {
		return err
	}
	o.res.Checks = n
	return nil
}
