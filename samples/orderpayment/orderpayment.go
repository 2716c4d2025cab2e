package orderpayment

import (
	"context"
	"errors"
	"fmt"
	"time"

	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// ErrInvalidOptions means Options.Validate rejected a field.
var ErrInvalidOptions = errors.New("orderpayment: invalid options")

// ErrGaveUpWaiting is Run's error when Options.WaitTimeout passed before
// every run ended.
var ErrGaveUpWaiting = errors.New("orderpayment: gave up waiting")

// Defaults of [Options].
const (
	DefaultSKU    = "sku-demo"
	DefaultAmount = 1999 // cents
	DefaultUsers  = 3
	// DefaultProgressEvery is the default of Options.ProgressEvery.
	DefaultProgressEvery = 10 * time.Second
)

// Options configure [Run].
type Options struct {
	// Orders is how many OrderPaymentWorkflow runs to start. At least 1.
	Orders int
	// PayRatio is the fraction of the orders paid (signal "pay"), 0 to 1,
	// spread evenly over them; the others time out.
	PayRatio float64
	// Wait waits for every run to end and fills the outcome of each.
	Wait bool
	// WaitTimeout, with Wait, bounds the waiting (from when every order
	// has started): past it Run returns [ErrGaveUpWaiting]. 0 waits until
	// every run ends or ctx does.
	WaitTimeout time.Duration
	// TaskQueue is where the runs are started. Required.
	TaskQueue string
	// Prefix starts every order id: <Prefix>-<n>. Required (callers use
	// something unique per run, such as a timestamp); the ids must be
	// valid order ids (workflows.ValidOrderID: at most 100 characters, no
	// white space).
	Prefix string
	// SKU is what every order buys, one unit each. Default DefaultSKU.
	SKU string
	// Amount is every order's price in cents. Default DefaultAmount.
	Amount int64
	// Users is how many customers ("user-1" ...) the orders are spread
	// over. Default DefaultUsers.
	Users int
	// Progress, if set, is called with Wait every ProgressEvery while Run
	// waits for order orderID: open of the total runs are left to wait
	// for (orderID's and those after it; some may have ended already). Without a worker on TaskQueue no run ever ends, and this is
	// how a user hears what Run waits for. It runs on Run's goroutine.
	Progress func(orderID string, open, total int)
	// ProgressEvery is how often Progress is called. Default
	// DefaultProgressEvery.
	ProgressEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.SKU == "" {
		o.SKU = DefaultSKU
	}
	if o.Amount == 0 {
		o.Amount = DefaultAmount
	}
	if o.Users == 0 {
		o.Users = DefaultUsers
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	return o
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Orders < 1:
		return fmt.Errorf("%w: Orders %d, want at least 1", ErrInvalidOptions, o.Orders)
	case !(o.PayRatio >= 0 && o.PayRatio <= 1):
		return fmt.Errorf("%w: PayRatio %v, want 0 to 1", ErrInvalidOptions, o.PayRatio)
	case o.TaskQueue == "" || o.Prefix == "":
		return fmt.Errorf("%w: TaskQueue and Prefix are required", ErrInvalidOptions)
	case o.Amount < 0 || o.Users < 0:
		return fmt.Errorf("%w: Amount %d and Users %d must not be negative", ErrInvalidOptions, o.Amount, o.Users)
	}
	if id := o.input(o.Orders - 1).OrderID; !workflows.ValidOrderID(id) {
		return fmt.Errorf("%w: Prefix %q makes order ids such as %q, longer than %d characters or with white space",
			ErrInvalidOptions, o.Prefix, id, workflows.MaxOrderIDLength)
	}
	return nil
}

// ShouldPay reports whether order i (0-based) of n is paid at ratio:
// round(n*ratio) of them are, spread evenly.
func ShouldPay(i, n int, ratio float64) bool {
	at := func(k int) int { return int(float64(k)*ratio + 0.5) }
	return i < n && at(i+1) > at(i)
}

// PaymentID is the payment id the starter pays an order with.
func PaymentID(orderID string) string { return "pay-" + orderID }

// Pay signals "pay" to order orderID's workflow: the customer paid amount
// cents with payment paymentID. The workflow accepts it if the amount is
// the order's and the order is still unpaid.
func Pay(ctx context.Context, tc temporalclient.Client, orderID, paymentID string, amount int64) error {
	err := tc.SignalWorkflow(ctx, orderID, "", workflows.SignalPay,
		workflows.PayInput{PaymentID: paymentID, Amount: amount})
	if err != nil {
		return fmt.Errorf("pay order %s: %w", orderID, err)
	}
	return nil
}

// SeedStock makes sure sku has at least n units in stock, so that n new
// orders can reserve one each.
func SeedStock(ctx context.Context, db *orders.DB, sku string, n int) error {
	have, err := db.Stock(ctx, sku)
	if err != nil {
		return err
	}
	if have >= n {
		return nil
	}
	return db.SetStock(ctx, sku, n)
}
