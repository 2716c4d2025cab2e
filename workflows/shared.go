package workflows

import "time"

// Names shared by the worker, the starters, the activities and the
// delayed-check consumer, and the payloads that cross those boundaries.
// Every payload round-trips through encoding/json (Temporal's default
// converter); its JSON field names are part of recorded histories and
// never change.

// TaskQueue is the Temporal task queue of the order/payment worker.
const TaskQueue = "order-payment"

// Workflow type and the query it answers.
const (
	// OrderPaymentWorkflowName is OrderPaymentWorkflow's registered type.
	OrderPaymentWorkflowName = "OrderPaymentWorkflow"
	// QueryStatus is answered with the workflow's current [OrderResult].
	QueryStatus = "status"
	// QueryReceipts is answered with the half-message receipts of the
	// steps run so far, by step name (map[string]client.HalfReceipt). A
	// step that ran before a reset has one without a broker: nothing was
	// stored again (see activities.Activities.SendHalf).
	QueryReceipts = "receipts"
)

// Signals OrderPaymentWorkflow listens to.
const (
	// SignalPay carries a [PayInput]: the customer paid.
	SignalPay = "pay"
	// SignalPaymentCheck carries a [PaymentCheck]: a delayed check came due.
	SignalPaymentCheck = "payment-check"
)

// Topics, tags and groups on the broker.
const (
	// TopicOrderEvents carries OrderCreated, OrderPaid and OrderCancelled,
	// keyed by order id, each sent as a transactional message.
	TopicOrderEvents = "order-events"
	// TopicPaymentCheck carries delayed [PaymentCheck] messages, keyed by
	// order id.
	TopicPaymentCheck = "payment-check"
	// TagOrderCreated, TagOrderPaid and TagOrderCancelled tag the events.
	TagOrderCreated   = "OrderCreated"
	TagOrderPaid      = "OrderPaid"
	TagOrderCancelled = "OrderCancelled"
	// TagPaymentCheck tags the delayed checks.
	TagPaymentCheck = "PaymentCheck"
	// CheckConsumerGroup is the consumer group that turns delayed checks
	// into SignalPaymentCheck signals.
	CheckConsumerGroup = "order-payment-checks"
)

// Activity types. The generic transactional-message step uses the
// txnbridge.* pair; the rest are the order activities.
const (
	ActivitySendHalf         = "txnbridge.SendHalf"
	ActivityEndTransaction   = "txnbridge.EndTransaction"
	ActivityCreateOrderLocal = "CreateOrderLocal"
	ActivityMarkPaidLocal    = "MarkPaidLocal"
	ActivityCancelLocal      = "CancelLocal"
	// ActivityPaymentState returns the order's status (a string). Workflows
	// started before PaymentIDChange run it; later ones run
	// ActivityOrderState.
	ActivityPaymentState = "PaymentState"
	// ActivityOrderState returns the order's [OrderState]: its status and
	// the payment the database recorded for it.
	ActivityOrderState = "OrderState"
	// ActivitySendPaymentCheck sends a delayed PaymentCheck and returns
	// its Run (see CheckRunChange).
	ActivitySendPaymentCheck = "SendPaymentCheck"
	// ActivityPaymentPolicy is a local activity: the worker's payment
	// policy, recorded in the history when the workflow first needs it.
	ActivityPaymentPolicy = "PaymentPolicy"
)

// Application error types of permanent activity failures (the Type of a
// non-retryable temporal.ApplicationError). The workflow tells a fenced
// local transaction, which it may run again under a new transaction id,
// from the others, which end the step.
const (
	ErrTypeFenced              = "Fenced"
	ErrTypeOutOfStock          = "OutOfStock"
	ErrTypeBadState            = "BadState"
	ErrTypeBadAmount           = "BadAmount"
	ErrTypeNotFound            = "NotFound"
	ErrTypeOrderExists         = "OrderExists"
	ErrTypeInvalidInput        = "InvalidInput"
	ErrTypeTransactionConflict = "TransactionConflict"
	ErrTypeBroker              = "BrokerRejected"
	// ErrTypePaymentExists: the payment id is recorded for another order.
	ErrTypePaymentExists = "PaymentExists"
)

// Order statuses: the database's (PENDING_PAYMENT, PAID, CANCELLED) and
// the workflow's own (CREATING before the order exists, FAILED when it
// could not be created or could not reach a final state).
const (
	StatusCreating       = "CREATING"
	StatusPendingPayment = "PENDING_PAYMENT"
	StatusPaid           = "PAID"
	StatusCancelled      = "CANCELLED"
	StatusFailed         = "FAILED"
)

// OrderInput starts OrderPaymentWorkflow; the workflow id is OrderID.
type OrderInput struct {
	// OrderID is the order's id, at most 100 characters, no spaces; it
	// should be the workflow id as well (the order's messages are keyed by
	// it). Empty means the workflow id. The payment checks are keyed by
	// the workflow id, so that they find the workflow in any case.
	OrderID string `json:"orderId"`
	// User is the customer.
	User string `json:"user"`
	// SKU and Qty are what is ordered; Qty stock is reserved.
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
	// Amount is the price in cents; a payment must match it.
	Amount int64 `json:"amount"`
}

// OrderResult is OrderPaymentWorkflow's result and its "status" query's
// answer.
type OrderResult struct {
	OrderID string `json:"orderId"`
	// Status is one of the Status* constants.
	Status string `json:"status"`
	// Checks counts the delayed payment checks sent.
	Checks int `json:"checks"`
	// PaymentID is the id of the payment that paid the order, when PAID:
	// the accepted payment's, or the one the database recorded when it
	// was paid another way (a workflow reset to before its pay step and
	// paid again with another payment; see PaymentIDChange).
	PaymentID string `json:"paymentId,omitempty"`
	// Reason says why the order failed or was cancelled.
	Reason string `json:"reason,omitempty"`
	// RejectedPayments are payments signalled but not taken (a wrong
	// amount, the order was settled already, the database refused to
	// record it, or the workflow was cancelled): to be refunded. The
	// "status" query answers them also after the workflow failed or was
	// cancelled, when it has no result.
	RejectedPayments []PayInput `json:"rejectedPayments,omitempty"`
}

// PayInput is the SignalPay payload.
type PayInput struct {
	PaymentID string `json:"paymentId"`
	// Amount in cents; it must equal OrderInput.Amount.
	Amount int64 `json:"amount"`
}

// OrderState is the result of ActivityOrderState: what the order
// database holds of the order.
type OrderState struct {
	// Status is StatusPendingPayment, StatusPaid or StatusCancelled.
	Status string `json:"status"`
	// PaymentID is the payment that paid the order ("" unless PAID).
	PaymentID string `json:"paymentId,omitempty"`
}

// PaymentCheck is the body of a delayed check message and the
// SignalPaymentCheck payload.
type PaymentCheck struct {
	OrderID string `json:"orderId"`
	// Check numbers the checks of an order from 1; the workflow ignores
	// a check other than the one it waits for (a duplicate).
	Check int `json:"check"`
	// Run is the id of the workflow run whose ActivitySendPaymentCheck
	// sent the check (empty from a worker before CheckRunChange). A run
	// that Temporal's reset started numbers its checks from 1 again; with
	// CheckRunChange it ignores a check of another run, still in the
	// delay queue when the reset came.
	Run string `json:"run,omitempty"`
}

// PaymentPolicy is the worker's payment-timeout policy, the result of
// ActivityPaymentPolicy.
type PaymentPolicy struct {
	// MaxChecks is how many delayed checks find the order unpaid before
	// it is cancelled (at least 1).
	MaxChecks int `json:"maxChecks"`
	// CheckDelay is the delay of the checks' delay level on the broker
	// (JSON: nanoseconds). With CheckResendChange a check not signalled
	// within CheckLostAfter times it is sent again. Zero (a policy
	// recorded before the field, or a worker that does not know its
	// delay) sends no check again: the workflow waits for the check.
	CheckDelay time.Duration `json:"checkDelay,omitempty"`
}

// OrderEvent is the body of the order-events messages.
type OrderEvent struct {
	OrderID   string `json:"orderId"`
	User      string `json:"user"`
	SKU       string `json:"sku,omitempty"`
	Qty       int    `json:"qty,omitempty"`
	Amount    int64  `json:"amount"`
	PaymentID string `json:"paymentId,omitempty"`
	Reason    string `json:"reason,omitempty"`
}
