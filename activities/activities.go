package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// Defaults of the payment policy, those of config.yaml's payment section.
const (
	// DefaultCheckLevel is delay level 5 (1m with RocketMQ's levels).
	DefaultCheckLevel = 5
	// DefaultMaxChecks is how many unpaid checks cancel an order.
	DefaultMaxChecks = 10
)

// rocketMQLevels are the delays of RocketMQ's delay levels 1..18, the
// broker's default (delay.DefaultLevels, which this package does not
// import: it pulls in the store).
var rocketMQLevels = [...]time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute, 6 * time.Minute,
	7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour}

// Activities are the order/payment activities. Their dependencies are
// set once, before the worker starts; the methods are safe for
// concurrent use. Every method is idempotent: a local transaction writes
// its transaction id with its effect (a second run is
// orders.ErrAlreadyCommitted, success), a half message carries its
// transaction id (a second send returns the live one), and a second
// EndTransaction is a no-op.
type Activities struct {
	// DB is the order database the local transactions write.
	DB *orders.DB
	// Producer sends the messages; its group's check-backs are answered
	// by the txnbridge resolver.
	Producer *client.Producer
	// CheckLevel is the delay level of the payment checks. Zero means
	// DefaultCheckLevel.
	CheckLevel int
	// CheckDelay is the delay of CheckLevel on the broker (its
	// broker.delayLevels), PaymentPolicy's CheckDelay: the workflow sends
	// a check not signalled within a multiple of it again
	// (workflows.CheckResendChange). Zero means CheckLevel's delay under
	// RocketMQ's default levels, or none (no check is sent again) for a
	// level beyond them.
	CheckDelay time.Duration
	// MaxChecks is PaymentPolicy's MaxChecks, at most 500 (txnbridge.MaxPaymentChecksLimit: each
	// check grows the workflow history). Zero means DefaultMaxChecks.
	MaxChecks int
}

// Registry is what Register needs of a worker (worker.Worker,
// testsuite.TestWorkflowEnvironment, a plugin's registry).
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers every activity under its workflows.Activity* name. A
// second registration replaces the first instead of panicking, so that a
// worker may register them and use the txnbridge plugin as well.
func (a *Activities) Register(r Registry) {
	for name, fn := range map[string]any{
		workflows.ActivitySendHalf:         a.SendHalf,
		workflows.ActivityEndTransaction:   a.EndTransaction,
		workflows.ActivityCreateOrderLocal: a.CreateOrderLocal,
		workflows.ActivityMarkPaidLocal:    a.MarkPaidLocal,
		workflows.ActivityCancelLocal:      a.CancelLocal,
		workflows.ActivityPaymentState:     a.PaymentState,
		workflows.ActivityOrderState:       a.OrderState,
		workflows.ActivitySendPaymentCheck: a.SendPaymentCheck,
		workflows.ActivityPaymentPolicy:    a.PaymentPolicy,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name, DisableAlreadyRegisteredCheck: true})
	}
}

// CreateOrderLocal is step "create"'s local transaction: the order is
// inserted PENDING_PAYMENT and its stock reserved.
func (a *Activities) CreateOrderLocal(ctx context.Context, txnID string, in workflows.OrderInput) error {
	if err := a.needDB(); err != nil {
		return err
	}
	o := orders.Order{ID: in.OrderID, User: in.User, SKU: in.SKU, Qty: in.Qty, Amount: in.Amount}
	return local(a.DB.CreateOrder(ctx, txnID, o))
}

// MarkPaidLocal is step "pay"'s local transaction: PENDING_PAYMENT to
// PAID, if the amount matches.
func (a *Activities) MarkPaidLocal(ctx context.Context, txnID, orderID string, p workflows.PayInput) error {
	if err := a.needDB(); err != nil {
		return err
	}
	return local(a.DB.MarkPaid(ctx, txnID, orderID, p.PaymentID, p.Amount))
}

// CancelLocal is step "cancel"'s local transaction: PENDING_PAYMENT to
// CANCELLED, the stock released.
func (a *Activities) CancelLocal(ctx context.Context, txnID, orderID, reason string) error {
	if err := a.needDB(); err != nil {
		return err
	}
	return local(a.DB.Cancel(ctx, txnID, orderID, reason))
}

// PaymentState returns the order's status: workflows.StatusPendingPayment,
// StatusPaid or StatusCancelled. Workflows started before
// workflows.PaymentIDChange run it; later ones run OrderState.
func (a *Activities) PaymentState(ctx context.Context, orderID string) (string, error) {
	if err := a.needDB(); err != nil {
		return "", err
	}
	o, err := a.DB.Order(ctx, orderID)
	if err != nil {
		return "", classify(err)
	}
	return string(o.Status), nil
}

// OrderState returns the order's status (workflows.StatusPendingPayment,
// StatusPaid or StatusCancelled) and the payment the database recorded
// for it ("" unless PAID).
func (a *Activities) OrderState(ctx context.Context, orderID string) (workflows.OrderState, error) {
	if err := a.needDB(); err != nil {
		return workflows.OrderState{}, err
	}
	o, err := a.DB.Order(ctx, orderID)
	if err != nil {
		return workflows.OrderState{}, classify(err)
	}
	return workflows.OrderState{Status: string(o.Status), PaymentID: o.PaymentID}, nil
}

// PaymentPolicy returns the worker's payment policy.
func (a *Activities) PaymentPolicy(context.Context) (workflows.PaymentPolicy, error) {
	return workflows.PaymentPolicy{MaxChecks: a.maxChecks(), CheckDelay: a.checkDelay()}, nil
}

// SendPaymentCheck sends check number check of the order: a plain
// message on workflows.TopicPaymentCheck, keyed by the order id, delayed
// by CheckLevel, with id "<order id>/check/<check>". Its body names the
// workflow run the activity runs for (workflows.PaymentCheck.Run; empty
// outside an activity), which it returns: a run that Temporal's reset
// started numbers its checks from 1 again and tells its own checks from
// those of the run it replaced (workflows.CheckRunChange). A retry may
// store it twice (a plain send is not deduplicated); the workflow ignores
// a check it is not waiting for.
func (a *Activities) SendPaymentCheck(ctx context.Context, orderID string, check int) (string, error) {
	if err := a.needProducer(); err != nil {
		return "", err
	}
	if orderID == "" || check < 1 {
		return "", classify(fmt.Errorf("%w: payment check %d of order %q", ErrInvalidInput, check, orderID))
	}
	var run string
	if activity.IsActivity(ctx) {
		run = activity.GetInfo(ctx).WorkflowExecution.RunID
	}
	body, err := json.Marshal(workflows.PaymentCheck{OrderID: orderID, Check: check, Run: run})
	if err != nil {
		return "", classify(fmt.Errorf("%w: %v", ErrInvalidInput, err))
	}
	_, err = a.Producer.Send(ctx, &client.Message{Topic: workflows.TopicPaymentCheck, Tags: workflows.TagPaymentCheck,
		Keys: []string{orderID}, Body: body, DelayLevel: a.checkLevel(), ID: orderID + "/check/" + strconv.Itoa(check)})
	if err != nil {
		return "", classify(err)
	}
	return run, nil
}

func (a *Activities) checkLevel() int {
	if a.CheckLevel == 0 {
		return DefaultCheckLevel
	}
	return a.CheckLevel
}

func (a *Activities) checkDelay() time.Duration {
	if a.CheckDelay != 0 {
		return a.CheckDelay
	}
	if l := a.checkLevel(); l >= 1 && l <= len(rocketMQLevels) {
		return rocketMQLevels[l-1]
	}
	return 0
}

func (a *Activities) maxChecks() int {
	if a.MaxChecks == 0 {
		return DefaultMaxChecks
	}
	return a.MaxChecks
}

// needDB and needProducer report a worker without the dependency as
// ErrNotConfigured, retryable: a worker that has it may run the activity.
func (a *Activities) needDB() error {
	if a.DB == nil {
		return fmt.Errorf("%w: no order database", ErrNotConfigured)
	}
	return nil
}

func (a *Activities) needProducer() error {
	if a.Producer == nil {
		return fmt.Errorf("%w: no producer", ErrNotConfigured)
	}
	return nil
}
