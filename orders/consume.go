package orders

import (
	"context"
	"database/sql"
	"fmt"
)

// The consumers' statements.
const (
	insertDedupSQL = `INSERT INTO consumer_dedup (grp, msg_id) VALUES ($1, $2)
		ON CONFLICT (grp, msg_id) DO NOTHING`
	insertCouponSQL = `INSERT INTO coupons (order_id, "user", granted_at) VALUES ($1, $2, $3)`
	countCouponsSQL = `SELECT order_id, COUNT(*) FROM coupons GROUP BY order_id`
)

// Consume makes a consumer's effect idempotent: in one SQL transaction it
// records that group consumed msgID and runs fn, which makes the effect
// through tx (and only through tx: with SQLite's single connection, using
// the DB inside fn would wait for fn's own transaction). If group consumed
// msgID before, fn is not run and Consume returns (false, nil). If fn
// fails, everything rolls back, the record included, and Consume returns
// (false, fn's error) so that a redelivery runs fn again.
func (db *DB) Consume(ctx context.Context, group, msgID string, fn func(tx *sql.Tx) error) (first bool, err error) {
	if group == "" || msgID == "" || fn == nil {
		return false, invalidArg("consume", "group %q, message %q, fn nil %t", group, msgID, fn == nil)
	}
	if err := db.usable(); err != nil {
		return false, err
	}
	conn, err := db.sql.Conn(ctx) // dropped if COMMIT fails, see DB.local
	if err != nil {
		return false, fmt.Errorf("orders: consume %s/%s: connection: %w", group, msgID, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("orders: consume %s/%s: begin: %w", group, msgID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, insertDedupSQL, group, msgID)
	if err != nil {
		return false, fmt.Errorf("orders: consume %s/%s: %w", group, msgID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("orders: consume %s/%s: %w", group, msgID, err)
	} else if n == 0 {
		return false, nil // consumed before
	}
	if err := fn(tx); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		dropConn(conn)
		return false, fmt.Errorf("orders: consume %s/%s: commit: %w", group, msgID, err)
	}
	return true, nil
}

// GrantCoupon grants user a coupon for order orderID through tx: the
// sample downstream consumer's effect, made inside [DB.Consume]'s fn.
func GrantCoupon(ctx context.Context, tx *sql.Tx, orderID, user string) error {
	if tx == nil || orderID == "" {
		return invalidArg("grant coupon", "a transaction and an order id are required")
	}
	if _, err := tx.ExecContext(ctx, insertCouponSQL, orderID, user, now()); err != nil {
		return fmt.Errorf("orders: grant coupon for %s: %w", orderID, err)
	}
	return nil
}

// Coupons returns how many coupons each order got (a consumer that is
// exactly-once in effect grants one per order).
func (db *DB) Coupons(ctx context.Context) (map[string]int, error) {
	if err := db.usable(); err != nil {
		return nil, err
	}
	rows, err := db.sql.QueryContext(ctx, countCouponsSQL)
	if err != nil {
		return nil, fmt.Errorf("orders: coupons: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("orders: coupons: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("orders: coupons: %w", err)
	}
	return out, nil
}
