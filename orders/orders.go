package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OrderStatus is an order's state.
type OrderStatus string

// Order states. An order is created PENDING_PAYMENT and moves once, to
// PAID or CANCELLED.
const (
	StatusPendingPayment OrderStatus = "PENDING_PAYMENT"
	StatusPaid           OrderStatus = "PAID"
	StatusCancelled      OrderStatus = "CANCELLED"
)

// Order is a row of the orders table.
type Order struct {
	ID     string
	User   string
	Amount int64 // in cents
	SKU    string
	Qty    int
	Status OrderStatus
	// PaymentID is the payment that paid the order ("" until PAID).
	PaymentID string
	// Reason is why the order was cancelled ("" unless CANCELLED).
	Reason string
	// CreatedAt and UpdatedAt have millisecond precision.
	CreatedAt, UpdatedAt time.Time
}

// The orders' statements.
const (
	insertOrderSQL = `INSERT INTO orders (id, "user", amount, sku, qty, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING`
	reserveSQL = `UPDATE inventory SET qty = qty - $1 WHERE sku = $2 AND qty >= $1`
	// restockSQL stops at the largest BIGINT rather than overflow (SQLite
	// would store the sum as a REAL, which Stock cannot read).
	restockSQL = `INSERT INTO inventory (sku, qty) VALUES ($1, $2)
		ON CONFLICT (sku) DO UPDATE SET qty = CASE
			WHEN inventory.qty > 9223372036854775807 - excluded.qty THEN 9223372036854775807
			ELSE inventory.qty + excluded.qty END`
	setStockSQL = `INSERT INTO inventory (sku, qty) VALUES ($1, $2)
		ON CONFLICT (sku) DO UPDATE SET qty = excluded.qty`
	selectStockSQL = `SELECT qty FROM inventory WHERE sku = $1`
	selectOrderSQL = `SELECT id, "user", amount, sku, qty, status, payment_id, reason, created_at, updated_at
		FROM orders WHERE id = $1`
	payOrderSQL = `UPDATE orders SET status = $1, payment_id = $2, updated_at = $3
		WHERE id = $4 AND status = $5`
	insertPaymentSQL = `INSERT INTO payments (id, order_id, amount, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`
	selectPaymentOrderSQL = `SELECT order_id FROM payments WHERE id = $1`
	cancelOrderSQL        = `UPDATE orders SET status = $1, reason = $2, updated_at = $3
		WHERE id = $4 AND status = $5`
)

// CreateOrder is the local transaction txnID: it inserts o as
// PENDING_PAYMENT (o.Status, o.PaymentID, o.Reason and the times are
// ignored) and reserves o.Qty units of o.SKU, together with txnID's
// transaction-log row. Errors: ErrOutOfStock, ErrOrderExists,
// ErrInvalidArgument, ErrFenced, ErrAlreadyCommitted; on any error
// nothing was written.
func (db *DB) CreateOrder(ctx context.Context, txnID string, o Order) error {
	switch {
	case o.ID == "" || o.User == "" || o.SKU == "":
		return invalidArg("create order", "order id, user and SKU are required")
	case o.Qty < 1:
		return invalidArg("create order", "quantity %d", o.Qty)
	case o.Amount < 0:
		return invalidArg("create order", "negative amount %d", o.Amount)
	}
	return db.local(ctx, "create order "+o.ID, txnID, func(tx *sql.Tx, at int64) error {
		res, err := tx.ExecContext(ctx, insertOrderSQL, o.ID, o.User, o.Amount, o.SKU, o.Qty, string(StatusPendingPayment), at)
		if err := oneRow(res, err); err != nil {
			return rowErr("create order", o.ID, err, ErrOrderExists)
		}
		res, err = tx.ExecContext(ctx, reserveSQL, o.Qty, o.SKU)
		if err := oneRow(res, err); err != nil {
			return rowErr("create order", o.ID, err, fmt.Errorf("%w: %d of %s", ErrOutOfStock, o.Qty, o.SKU))
		}
		return nil
	})
}

// MarkPaid is the local transaction txnID: it moves order orderID from
// PENDING_PAYMENT to PAID and records payment paymentID of amount.
// Errors: ErrNotFound, ErrBadState (not PENDING_PAYMENT), ErrBadAmount
// (amount is not the order's), ErrPaymentExists (paymentID paid another
// order), ErrInvalidArgument, ErrFenced, ErrAlreadyCommitted; on any
// error nothing was written. ErrAlreadyCommitted only when txnID recorded
// this payment and amount: the same txnID with another payment (a workflow
// reset to before its pay step, paid again) is ErrBadState naming the
// payment the order has, with another amount ErrBadAmount, so that the
// caller never takes a payment the database did not record as made.
func (db *DB) MarkPaid(ctx context.Context, txnID, orderID, paymentID string, amount int64) error {
	if orderID == "" || paymentID == "" {
		return invalidArg("mark paid", "order and payment ids are required")
	}
	op := "mark paid " + orderID
	err := db.markPaid(ctx, op, txnID, orderID, paymentID, amount)
	if !errors.Is(err, ErrAlreadyCommitted) {
		return err
	}
	o, rerr := db.Order(ctx, orderID)
	switch {
	case rerr != nil:
		return fmt.Errorf("orders: %s: transaction %s committed before; reading what it recorded: %w", op, txnID, rerr)
	case o.PaymentID != paymentID:
		return fmt.Errorf("orders: %s: %w: transaction %s recorded payment %s, not %s", op, ErrBadState, txnID, o.PaymentID, paymentID)
	case o.Amount != amount:
		return fmt.Errorf("orders: %s: %w: paid %d, order is %d", op, ErrBadAmount, amount, o.Amount)
	}
	return err
}

func (db *DB) markPaid(ctx context.Context, op, txnID, orderID, paymentID string, amount int64) error {
	return db.local(ctx, op, txnID, func(tx *sql.Tx, at int64) error {
		o, err := readOrder(ctx, tx, orderID)
		if err != nil {
			return fmt.Errorf("orders: %s: %w", op, err)
		}
		switch {
		case o.Status != StatusPendingPayment:
			return fmt.Errorf("orders: %s: %w: %s", op, ErrBadState, o.Status)
		case o.Amount != amount:
			return fmt.Errorf("orders: %s: %w: paid %d, order is %d", op, ErrBadAmount, amount, o.Amount)
		}
		res, err := tx.ExecContext(ctx, payOrderSQL, string(StatusPaid), paymentID, at, orderID, string(StatusPendingPayment))
		if err := oneRow(res, err); err != nil {
			return rowErr("mark paid", orderID, err, ErrBadState)
		}
		return insertPayment(ctx, tx, op, paymentID, orderID, amount, at)
	})
}

// insertPayment records payment paymentID of orderID, or returns
// ErrPaymentExists, naming the order it paid, if the id is taken (by
// another order: this one is still PENDING_PAYMENT, and its payment row
// is written only with its move to PAID). ON CONFLICT DO NOTHING rather
// than a failed INSERT: the conflict is told from other failures without
// parsing the driver's error, and on PostgreSQL a concurrent insert of
// the id is waited for, then reported the same way.
func insertPayment(ctx context.Context, tx *sql.Tx, op, paymentID, orderID string, amount, at int64) error {
	res, err := tx.ExecContext(ctx, insertPaymentSQL, paymentID, orderID, amount, at)
	if err := oneRow(res, err); !errors.Is(err, errNoRow) {
		if err != nil {
			return fmt.Errorf("orders: %s: payment %s: %w", op, paymentID, err)
		}
		return nil
	}
	var other string
	if err := tx.QueryRowContext(ctx, selectPaymentOrderSQL, paymentID).Scan(&other); err != nil {
		return fmt.Errorf("orders: %s: payment %s: %w", op, paymentID, err)
	}
	return fmt.Errorf("orders: %s: %w: payment %s paid order %s", op, ErrPaymentExists, paymentID, other)
}

// Cancel is the local transaction txnID: it moves order orderID from
// PENDING_PAYMENT to CANCELLED, keeping reason, and returns its units to
// stock. Errors: ErrNotFound, ErrBadState (not PENDING_PAYMENT),
// ErrInvalidArgument, ErrFenced, ErrAlreadyCommitted; on any error
// nothing was written.
func (db *DB) Cancel(ctx context.Context, txnID, orderID, reason string) error {
	if orderID == "" {
		return invalidArg("cancel", "order id is required")
	}
	op := "cancel " + orderID
	return db.local(ctx, op, txnID, func(tx *sql.Tx, at int64) error {
		o, err := readOrder(ctx, tx, orderID)
		if err != nil {
			return fmt.Errorf("orders: %s: %w", op, err)
		}
		if o.Status != StatusPendingPayment {
			return fmt.Errorf("orders: %s: %w: %s", op, ErrBadState, o.Status)
		}
		res, err := tx.ExecContext(ctx, cancelOrderSQL, string(StatusCancelled), reason, at, orderID, string(StatusPendingPayment))
		if err := oneRow(res, err); err != nil {
			return rowErr("cancel", orderID, err, ErrBadState)
		}
		if _, err := tx.ExecContext(ctx, restockSQL, o.SKU, o.Qty); err != nil {
			return fmt.Errorf("orders: %s: restock %s: %w", op, o.SKU, err)
		}
		return nil
	})
}

// Order returns order id, or ErrNotFound.
func (db *DB) Order(ctx context.Context, id string) (Order, error) {
	if err := db.usable(); err != nil {
		return Order{}, err
	}
	o, err := readOrder(ctx, db.sql, id)
	if err != nil {
		return Order{}, fmt.Errorf("orders: order %s: %w", id, err)
	}
	return o, nil
}

// SetStock sets the units of sku in stock. It is not a local
// transaction: it writes no transaction-log row.
func (db *DB) SetStock(ctx context.Context, sku string, qty int) error {
	if sku == "" || qty < 0 {
		return invalidArg("set stock", "SKU %q, quantity %d", sku, qty)
	}
	if err := db.usable(); err != nil {
		return err
	}
	if _, err := db.sql.ExecContext(ctx, setStockSQL, sku, qty); err != nil {
		return fmt.Errorf("orders: set stock of %s: %w", sku, err)
	}
	return nil
}

// Stock returns the units of sku in stock: 0 for a SKU never stocked.
func (db *DB) Stock(ctx context.Context, sku string) (int, error) {
	if err := db.usable(); err != nil {
		return 0, err
	}
	var qty int
	err := db.sql.QueryRowContext(ctx, selectStockSQL, sku).Scan(&qty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("orders: stock of %s: %w", sku, err)
	}
	return qty, nil
}

// readOrder reads order id, ErrNotFound if there is none.
func readOrder(ctx context.Context, q querier, id string) (Order, error) {
	var (
		o              Order
		status         string
		created, moved int64
	)
	err := q.QueryRowContext(ctx, selectOrderSQL, id).Scan(&o.ID, &o.User, &o.Amount, &o.SKU, &o.Qty,
		&status, &o.PaymentID, &o.Reason, &created, &moved)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, err
	}
	o.Status = OrderStatus(status)
	o.CreatedAt, o.UpdatedAt = time.UnixMilli(created), time.UnixMilli(moved)
	return o, nil
}

// errNoRow means a statement that must change one row changed none.
var errNoRow = errors.New("no row changed")

// oneRow returns err, or errNoRow unless res changed exactly one row.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errNoRow
	}
	return nil
}

// rowErr reports a oneRow failure: ifNone when no row changed, else the
// database error.
func rowErr(op, id string, err, ifNone error) error {
	if errors.Is(err, errNoRow) {
		return fmt.Errorf("orders: %s %s: %w", op, id, ifNone)
	}
	return fmt.Errorf("orders: %s %s: %w", op, id, err)
}
