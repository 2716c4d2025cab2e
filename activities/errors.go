package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// permanentErrors maps the permanent errors of the order database and the
// broker to the ApplicationError type the workflow sees.
var permanentErrors = []struct {
	err     error
	errType string
}{
	{orders.ErrFenced, workflows.ErrTypeFenced},
	{orders.ErrOutOfStock, workflows.ErrTypeOutOfStock},
	{orders.ErrBadState, workflows.ErrTypeBadState},
	{orders.ErrBadAmount, workflows.ErrTypeBadAmount},
	{orders.ErrNotFound, workflows.ErrTypeNotFound},
	{orders.ErrOrderExists, workflows.ErrTypeOrderExists},
	// The payment id paid another order: retrying cannot change that.
	// Not workflows.ErrTypeBadState: the order is in the right state, the
	// payment is what it cannot take (the workflow lists it for a refund).
	{orders.ErrPaymentExists, workflows.ErrTypePaymentExists},
	{orders.ErrInvalidArgument, workflows.ErrTypeInvalidInput},
	{ErrInvalidInput, workflows.ErrTypeInvalidInput},
	{client.ErrInvalidMessage, workflows.ErrTypeInvalidInput},
	{client.ErrMessageTooLarge, workflows.ErrTypeInvalidInput},
	{client.ErrInvalidReceipt, workflows.ErrTypeInvalidInput},
	{client.ErrTransactionConflict, workflows.ErrTypeTransactionConflict},
}

// Errors of the activities, besides those of the order database and the
// client they wrap.
var (
	// ErrInvalidInput means an activity's argument is unusable (an empty
	// transaction or order id); it is returned as a non-retryable
	// ApplicationError of type workflows.ErrTypeInvalidInput.
	ErrInvalidInput = errors.New("activities: invalid input")
	// ErrNotConfigured means the Activities lack the DB or Producer the
	// activity needs. It is retryable: another worker may have them.
	ErrNotConfigured = errors.New("activities: not configured")
)

// classify turns err into what the activity returns: nil for nil, a
// non-retryable ApplicationError for a permanent failure, else err itself
// (retried). Closing (of the worker's producer or database, or the
// activity's context) is retryable: another attempt, perhaps on another
// worker, may succeed.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, p := range permanentErrors {
		if errors.Is(err, p.err) {
			return temporal.NewNonRetryableApplicationError(err.Error(), p.errType, err)
		}
	}
	switch {
	case errors.Is(err, client.ErrClosed), errors.Is(err, orders.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case !client.IsRetryable(err):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeBroker, err)
	}
	return err
}

// local classifies a local transaction's error: ErrAlreadyCommitted is
// success (the activity ran before).
func local(err error) error {
	if errors.Is(err, orders.ErrAlreadyCommitted) {
		return nil
	}
	return classify(err)
}
