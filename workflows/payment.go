package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// waiting is the state of the wait for the payment across awaitPayment
// calls (the wait goes on after a payment the database refused).
type waiting struct {
	policy PaymentPolicy
	// exhausted: the last check found the order unpaid; none is in flight.
	exhausted bool
	// resends: CheckResendChange, with a CheckDelay to time the checks by.
	resends bool
	// lost is the timer after which the check waited for counts as lost
	// (nil: none runs), stopLost cancels it, and resent counts the
	// resends of that check.
	lost     workflow.Future
	stopLost workflow.CancelFunc
	resent   int
	// senders are the runs other than o.checkRun that sent the check
	// waited for before it was sent again (CheckResendRunsChange): in a
	// run that Temporal's reset started, a resend names this run and the
	// check sent before the reset the run it replaced; either is the
	// check waited for.
	senders []string
	// resend is the resend of the check waited for while it runs
	// (CheckResendWaitChange; nil: none runs), stopResend cancels it.
	resend     workflow.Future
	stopResend workflow.CancelFunc
	// sendWait: CheckSendWaitChange; next is the send of the next check
	// while it runs (nil: none runs).
	sendWait bool
	next     workflow.Future
}

// startWaiting reads the payment policy and sends the first check.
func (o *order) startWaiting(ctx workflow.Context) (*waiting, error) {
	policy, err := o.policy(ctx)
	if err != nil {
		return nil, err
	}
	o.checkRuns = workflow.GetVersion(ctx, CheckRunChange, workflow.DefaultVersion, 1) == 1
	w := &waiting{policy: policy,
		resends: workflow.GetVersion(ctx, CheckResendChange, workflow.DefaultVersion, 1) == 1 && policy.CheckDelay > 0}
	if w.sendWait = workflow.GetVersion(ctx, CheckSendWaitChange, workflow.DefaultVersion, 1) == 1; w.sendWait {
		w.next = o.startCheck(ctx, o.res.Checks+1) // awaitPayment takes it
		return w, nil
	}
	if err := o.sendCheck(ctx, o.res.Checks+1); err != nil {
		return nil, err
	}
	o.watchCheck(ctx, w)
	return w, nil
}

// watchCheck starts the timer after which the check just sent counts as
// lost (CheckResendChange): CheckLostAfter check delays, doubled by each
// resend.
func (o *order) watchCheck(ctx workflow.Context, w *waiting) {
	if !w.resends {
		return
	}
	tctx, cancel := workflow.WithCancel(ctx)
	w.lost, w.stopLost = workflow.NewTimer(tctx, lostAfter(w.policy.CheckDelay, w.resent)), cancel
}

// lostAfter is how long after its send the resent-th resend of a check
// (0: its first send) counts as lost.
func lostAfter(delay time.Duration, resent int) time.Duration {
	return CheckLostAfter * delay << resent
}

// unwatch stops the lost-check timer.
func (w *waiting) unwatch() {
	if w.stopLost != nil {
		w.stopLost()
	}
	if w.stopResend != nil {
		w.stopResend()
	}
	w.lost, w.stopLost, w.resent, w.senders = nil, nil, 0, nil
	w.resend, w.stopResend = nil, nil
}

// resent takes the outcome of the resend of the check waited for, f,
// and, unless its timer runs since the resend started (timed), watches
// that check again.
func (o *order) resent(ctx workflow.Context, w *waiting, f workflow.Future, timed bool) error {
	sender := o.checkRun
	if err := o.checkSent(ctx, f, o.res.Checks); err != nil {
		return err
	}
	if sender != o.checkRun && !slices.Contains(w.senders, sender) {
		w.senders = append(w.senders, sender)
	}
	if !timed {
		w.resent++
		o.watchCheck(ctx, w)
	}
	return nil
}

// awaitPayment waits for the payment: a SignalPay with the order's amount
// returns it; the delayed checks (SignalPaymentCheck) of this run (with
// CheckRunChange, those whose Run is the one that sent the check waited
// for, or empty) ask the database,
// and once MaxChecks of them found the order unpaid it returns nil (cancel
// it). A check that finds the order PAID or CANCELLED already sets that
// final status (with PaymentIDChange, a PAID order's recorded payment id)
// and returns nil. With CheckResendChange a check not signalled in time
// is sent again, and after MaxCheckResends resends counts as come due.
// With CheckSendWaitChange the wait goes on while a check is sent: a
// payment or the cancellation is taken meanwhile, and a check's expiries
// run on while it is sent again. The workflow's cancellation ends the
// wait with its error.
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
		lost := false
		var resend, next workflow.Future
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(payCh, func(c workflow.ReceiveChannel, _ bool) { pay = o.receivePay(ctx, c) })
		if w.resend != nil { // before the checks: its copy names the run the resend returns
			sel.AddFuture(w.resend, func(f workflow.Future) { resend, w.resend, w.stopResend = f, nil, nil })
		}
		if w.next != nil { // a check waits for its send (checkSent takes the run it names)
			sel.AddFuture(w.next, func(f workflow.Future) { next, w.next = f, nil })
		} else {
			sel.AddReceive(checkCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &check) })
		}
		if w.lost != nil {
			sel.AddFuture(w.lost, func(f workflow.Future) {
				w.lost = nil
				lost = f.Get(ctx, nil) == nil // not cancelled
			})
		}
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
		case lost && w.resent < MaxCheckResends && w.resend != nil:
			// CheckSendWaitChange: the resend still running stands for
			// this one, and the timer runs on.
			log.Warn("payment check not signalled in time; still sending it again", "check", o.res.Checks,
				"after", lostAfter(w.policy.CheckDelay, w.resent), "resend", w.resent)
			w.resent++
			o.watchCheck(ctx, w)
			continue
		case lost && w.resent < MaxCheckResends:
			log.Warn("payment check not signalled in time; sending it again", "check", o.res.Checks,
				"after", lostAfter(w.policy.CheckDelay, w.resent), "resend", w.resent+1)
			if workflow.GetVersion(ctx, CheckResendWaitChange, workflow.DefaultVersion, 1) == 1 {
				// Wait on meanwhile: the resend may take long (its
				// broker unreachable) and a payment must not wait for it.
				rctx, cancel := workflow.WithCancel(ctx)
				w.resend, w.stopResend = o.startCheck(rctx, o.res.Checks), cancel
				if w.sendWait {
					// Nor must the check's count: should the resend
					// retry for long, the check comes due all the same.
					w.resent++
					o.watchCheck(ctx, w)
				}
				continue
			}
			if err := o.resent(ctx, w, o.startCheck(ctx, o.res.Checks), false); err != nil {
				return nil, err
			}
			continue
		case resend != nil:
			if err := o.resent(ctx, w, resend, w.sendWait); err != nil {
				return nil, err
			}
			continue
		case next != nil:
			if err := o.checkSent(ctx, next, o.res.Checks+1); err != nil {
				return nil, err
			}
			o.watchCheck(ctx, w)
			continue
		case lost:
			log.Warn("payment check never signalled; counting it as come due", "check", o.res.Checks,
				"resends", w.resent)
		case check.Check == 0:
			continue // a rejected payment (or a check without a number)
		case check.Check != o.res.Checks:
			log.Info("ignoring a payment check not waited for", "check", check.Check, "waiting", o.res.Checks)
			continue
		case o.checkRuns && check.Run != "" && check.Run != o.checkRun && !w.sentBy(ctx, check.Run):
			// Sent by the run a reset replaced, which numbered its checks
			// from 1 too: not one of this run's.
			log.Info("ignoring a payment check of another run", "check", check.Check, "run", check.Run,
				"waiting", o.checkRun)
			continue
		}
		w.unwatch()
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
		if w.sendWait {
			// Wait on meanwhile: the send may take long (its broker
			// unreachable) and a payment must not wait for it.
			w.next = o.startCheck(ctx, o.res.Checks+1)
			continue
		}
		if err := o.sendCheck(ctx, o.res.Checks+1); err != nil {
			return nil, err
		}
		o.watchCheck(ctx, w)
	}
}

// sentBy reports whether run sent the check waited for before it was
// sent again, with CheckResendRunsChange. Asked only then, so that a
// history recorded before the change replays as it ran.
func (w *waiting) sentBy(ctx workflow.Context, run string) bool {
	return slices.Contains(w.senders, run) &&
		workflow.GetVersion(ctx, CheckResendRunsChange, workflow.DefaultVersion, 1) == 1
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

// sendCheck sends payment check n (the next, or with CheckResendChange
// the one waited for, again), keyed by the workflow id: the check
// consumer signals the workflow the key names. With CheckRunChange it
// keeps the run the activity stamped the check with: taken from the
// history, it is the run that sent the check, also in a run that a reset
// started after the check was sent.
func (o *order) sendCheck(ctx workflow.Context, n int) error {
	return o.checkSent(ctx, o.startCheck(ctx, n), n)
}

// startCheck starts sending payment check n.
func (o *order) startCheck(ctx workflow.Context, n int) workflow.Future {
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	return workflow.ExecuteActivity(ctx, ActivitySendPaymentCheck, id, n)
}

// checkSent waits for f, the send of check n, and takes it as the check
// waited for.
func (o *order) checkSent(ctx workflow.Context, f workflow.Future, n int) error {
	var run string
	var result any
	if o.checkRuns {
		result = &run
	}
	if err := f.Get(ctx, result); err != nil {
		return err
	}
	o.res.Checks, o.checkRun = n, run
	return nil
}
