package orders

import "errors"

// Errors returned by [DB]; test them with errors.Is. The business errors
// (ErrOutOfStock, ErrBadState, ErrBadAmount, ErrNotFound, ErrOrderExists,
// ErrPaymentExists, ErrInvalidArgument) are permanent: retrying the same call gives the same
// answer, and nothing was written.
var (
	// ErrInvalidOptions means Options.Validate rejected a field: an
	// unregistered driver, an empty DSN, a negative pool size.
	ErrInvalidOptions = errors.New("orders: invalid options")
	// ErrInvalidArgument means a call's argument is unusable: an empty
	// transaction, order, SKU, payment, group or message id, a quantity
	// below one, a negative amount or stock, a nil function or *sql.Tx.
	ErrInvalidArgument = errors.New("orders: invalid argument")
	// ErrSchemaVersion means Open found a SQLite database a newer version
	// of this package wrote (its user_version is above the schema version
	// this one writes): it is left as it is.
	ErrSchemaVersion = errors.New("orders: database written by a newer version")
	// ErrClosed means the DB was closed.
	ErrClosed = errors.New("orders: closed")
	// ErrFenced means the transaction id was fenced by the check-back
	// resolver ([DB.Fence]) before the local transaction committed: the
	// local transaction was rolled back and its half message is (or will
	// be) rolled back too.
	ErrFenced = errors.New("orders: local transaction fenced")
	// ErrAlreadyCommitted means the local transaction of this id committed
	// before; nothing was done this time. Callers treat it as success: the
	// activity ran twice.
	ErrAlreadyCommitted = errors.New("orders: local transaction already committed")
	// ErrOutOfStock means the SKU has fewer units than the order asks for
	// (or was never stocked).
	ErrOutOfStock = errors.New("orders: out of stock")
	// ErrBadState means the order is not in the state the change needs
	// (MarkPaid and Cancel need PENDING_PAYMENT).
	ErrBadState = errors.New("orders: order in wrong state")
	// ErrBadAmount means a payment's amount differs from the order's.
	ErrBadAmount = errors.New("orders: payment amount does not match the order")
	// ErrNotFound means no order has the id.
	ErrNotFound = errors.New("orders: order not found")
	// ErrOrderExists means CreateOrder named an order id that exists
	// already, created by another local transaction.
	ErrOrderExists = errors.New("orders: order exists")
	// ErrPaymentExists means MarkPaid named a payment id already recorded
	// for another order: payment ids are unique across orders. (Paying
	// the same order again is ErrAlreadyCommitted under the same
	// transaction id, ErrBadState under another.)
	ErrPaymentExists = errors.New("orders: payment id already recorded for another order")
)
