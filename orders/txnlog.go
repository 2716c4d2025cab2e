package orders

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// TxnState is a local transaction's row in the transaction log.
type TxnState string

// Transaction log states.
const (
	// TxnNone means the log has no row for the id: the local transaction
	// has not committed and nobody fenced it.
	TxnNone TxnState = ""
	// TxnCommitted means the local transaction committed.
	TxnCommitted TxnState = "COMMITTED"
	// TxnFenced means the check-back resolver fenced the id first: its
	// local transaction can never commit.
	TxnFenced TxnState = "FENCED"
)

// The transaction log's statements. A row is inserted once and never
// changed: whichever of the local transaction and the fence inserts first
// owns the id, and the other's insert conflicts on the primary key.
const (
	insertTxnSQL = `INSERT INTO txn_log (txn_id, state, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (txn_id) DO NOTHING`
	selectTxnSQL = `SELECT state FROM txn_log WHERE txn_id = $1`
)

// TxnState returns the transaction log's state for txnID: TxnNone if it
// has no row.
func (db *DB) TxnState(ctx context.Context, txnID string) (TxnState, error) {
	if err := db.usable(); err != nil {
		return TxnNone, err
	}
	s, err := readTxnState(ctx, db.sql, txnID)
	if err != nil {
		return TxnNone, fmt.Errorf("orders: transaction %s: %w", txnID, err)
	}
	return s, nil
}

// Fence decides the local transaction txnID for the check-back resolver.
// It inserts a FENCED row unless the log has one for txnID (one
// insert-if-absent statement), then reads the row: TxnCommitted if the
// local transaction committed first, TxnFenced otherwise. After Fence
// returns TxnFenced, the local transaction of txnID fails with ErrFenced.
// On an error (the database unreachable, ctx done) the outcome is
// unknown.
func (db *DB) Fence(ctx context.Context, txnID string) (TxnState, error) {
	if txnID == "" {
		return TxnNone, invalidArg("fence", "empty transaction id")
	}
	if err := db.usable(); err != nil {
		return TxnNone, err
	}
	conn, err := db.sql.Conn(ctx) // dropped if the insert fails, as in DB.local
	if err != nil {
		return TxnNone, fmt.Errorf("orders: fence %s: connection: %w", txnID, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, insertTxnSQL, txnID, string(TxnFenced), now()); err != nil {
		dropConn(conn)
		return TxnNone, fmt.Errorf("orders: fence %s: %w", txnID, err)
	}
	s, err := readTxnState(ctx, conn, txnID)
	if err != nil {
		return TxnNone, fmt.Errorf("orders: fence %s: %w", txnID, err)
	}
	if s == TxnNone { // impossible: rows are never deleted
		return TxnNone, fmt.Errorf("orders: fence %s: the transaction log lost the row", txnID)
	}
	return s, nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readTxnState reads txnID's state, TxnNone if it has no row.
func readTxnState(ctx context.Context, q querier, txnID string) (TxnState, error) {
	var s string
	err := q.QueryRowContext(ctx, selectTxnSQL, txnID).Scan(&s)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return TxnNone, nil
	case err != nil:
		return TxnNone, err
	}
	switch st := TxnState(s); st {
	case TxnCommitted, TxnFenced:
		return st, nil
	}
	return TxnNone, fmt.Errorf("unknown transaction state %q", s)
}

// local runs body in one SQL transaction that first claims txnID in the
// transaction log as COMMITTED, and commits both or neither. If the log
// has a row for txnID already, body is not run: ErrFenced for a FENCED
// row, ErrAlreadyCommitted for a COMMITTED one. An error from body rolls
// everything back, the claim included, and is returned as it is.
//
// The claim is the transaction's first statement, so SQLite takes its
// write lock before anything is read, and PostgreSQL makes a racing
// Fence's insert wait for this transaction's end.
func (db *DB) local(ctx context.Context, op, txnID string, body func(tx *sql.Tx, at int64) error) error {
	if txnID == "" {
		return invalidArg(op, "empty transaction id")
	}
	if err := db.usable(); err != nil {
		return err
	}
	// A connection of its own, dropped if COMMIT fails: SQLite keeps a
	// transaction whose COMMIT was busy (rollback-journal mode, a reader of
	// another process holding its lock), and database/sql would put the
	// connection back in the pool inside it, where the fence would read
	// its uncommitted row as COMMITTED and its own FENCED rows would never
	// commit.
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("orders: %s: connection: %w", op, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("orders: %s: begin: %w", op, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	at := now()
	if err := claim(ctx, tx, op, txnID, at); err != nil {
		return err
	}
	if err := body(tx, at); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		dropConn(conn)
		return fmt.Errorf("orders: %s: commit %s: %w", op, txnID, err)
	}
	return nil
}

// claim inserts txnID's COMMITTED row, or reports the row that is there.
func claim(ctx context.Context, tx *sql.Tx, op, txnID string, at int64) error {
	res, err := tx.ExecContext(ctx, insertTxnSQL, txnID, string(TxnCommitted), at)
	if err != nil {
		return fmt.Errorf("orders: %s: transaction log %s: %w", op, txnID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("orders: %s: transaction log %s: %w", op, txnID, err)
	} else if n == 1 {
		return nil
	}
	s, err := readTxnState(ctx, tx, txnID)
	if err != nil {
		return fmt.Errorf("orders: %s: transaction log %s: %w", op, txnID, err)
	}
	switch s {
	case TxnFenced:
		return fmt.Errorf("orders: %s: transaction %s: %w", op, txnID, ErrFenced)
	case TxnCommitted:
		return fmt.Errorf("orders: %s: transaction %s: %w", op, txnID, ErrAlreadyCommitted)
	}
	return fmt.Errorf("orders: %s: transaction %s: insert conflicted but no row is there", op, txnID)
}

// dropConn closes conn instead of returning it to the pool; closing an
// SQLite connection rolls back a transaction still open on it.
func dropConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
