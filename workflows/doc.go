// Package workflows holds OrderPaymentWorkflow and the reusable
// transactional-message step it is built of. It knows nothing of the
// wire: activities do the sending and the database work, by name, and
// the names, payloads and error types they share with the workflow are
// in shared.go.
//
// # The transactional step
//
// [SendTransactional] runs one [Step]: the "txnbridge.SendHalf" activity
// stores a half message whose id is [TxnID], "<workflow id>/<run tag>/<step
// name>" (a retried send returns the same live half message; a workflow
// started again under a closed one's id gets ids of its own), the step's
// local-transaction activity runs with that id, then
// "txnbridge.EndTransaction" commits.
// A local transaction that fails permanently rolls the message back
// ([ErrRolledBack]); one that ends without an outcome leaves it to the
// broker's check-back ([ErrOutcomeUnknown]), which fences the id in the
// order database and resolves it from there. The half message's receipt
// is returned and kept in the workflow's state.
//
// # The order workflow
//
// [OrderPaymentWorkflow] creates the order (step "create", OrderCreated),
// schedules a delayed payment check through the broker's delay levels
// instead of a timer or a table scan, and waits for SignalPay or
// SignalPaymentCheck. A check counts only in the run that sent it
// ([CheckRunChange]). A check message that never produces its signal
// (lost to retention or a deleted topic, given to the dead-letter queue,
// dropped by a reset that excluded signals) does not hold the order:
// with [CheckResendChange] a timer of [CheckLostAfter] times the check
// delay (PaymentPolicy.CheckDelay) sends it again under the same number,
// with a warning, at most [MaxCheckResends] times, then counts it as
// come due. A check that finds the order unpaid schedules the
// next until the worker's PaymentPolicy.MaxChecks, then the order is
// cancelled (step "cancel", OrderCancelled); a payment of the right
// amount pays it (step "pay", OrderPaid). A step whose local transaction
// the check-back fenced runs again under a new name ("pay-2"): "create"
// at most [MaxStepAttempts] times, "pay" and "cancel" at most
// [MaxFencedRuns] times, backing off.
// A payment the database refuses is listed for a refund and the order
// waits on, unless the database holds the order settled: then the
// workflow takes its status, and for a PAID order the payment it recorded
// (ActivityOrderState, [PaymentIDChange]), as it does when a payment
// check finds the order settled. While the broker is down, "create" retries for
// [CreateSendTimeout]; "pay" and "cancel" retry until it is back.
// Cancelling the workflow cancels the order once the step running has
// finished. Business refusals end the workflow with Status FAILED and
// a nil error; infrastructure failures fail it. The "status" query
// answers the current [OrderResult], also after the workflow closed.
//
// # Usage
//
// A worker gets the workflow and its activities from the txnbridge
// plugin; without it:
//
//	workflows.Register(w)
//	(&activities.Activities{DB: db, Producer: p, CheckLevel: 5, CheckDelay: time.Minute, MaxChecks: 10}).Register(w)
//
// A starter runs an order under its id, and a payer signals it:
//
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: orderID, TaskQueue: workflows.TaskQueue},
//		workflows.OrderPaymentWorkflowName, workflows.OrderInput{OrderID: orderID, User: "alice", SKU: "sku-1", Qty: 1, Amount: 1500})
//	err = c.SignalWorkflow(ctx, orderID, "", workflows.SignalPay, workflows.PayInput{PaymentID: "p-1", Amount: 1500})
//
// Another workflow reuses the step:
//
//	receipt, err := workflows.SendTransactional(ctx, workflows.Step{Name: "refund", Topic: "refunds",
//		Keys: []string{orderID}, ShardingKey: orderID, Body: body, Local: "RefundLocal", LocalArgs: []any{orderID}})
//
// # Tests
//
// The workflow is tested with mocked activities (testsuite), against a
// real dev server and broker (package txnbridge), and by replaying the
// histories in testdata, recorded from real runs by TestRecordHistories
// (HALFBACK_RECORD_HISTORY=1): those of the current version and, named
// "_pre_settles_", those recorded before the version [SettlesChange]
// (of the current ones, all but order_refused_pay_adopted_history.json
// predate [PaymentIDChange]; order_lost_check_history.json, a check
// sent again after a reset that excluded signals, alone has
// [CheckResendChange], order_lost_check_resend_wait_history.json, the
// same recorded again, [CheckResendWaitChange], and
// order_lost_check_send_wait_history.json [CheckSendWaitChange]).
package workflows
