package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// DB is the local order database. It is safe for concurrent use.
type DB struct {
	sql    *sql.DB
	opts   Options
	closed atomic.Bool
}

// Open opens the database o names and creates the schema if it is
// missing. It fails with ErrInvalidOptions for bad options, and with the
// driver's error if the database cannot be reached.
func Open(ctx context.Context, o Options) (*DB, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	sdb, err := sql.Open(o.Driver, o.DSN)
	if err != nil {
		return nil, fmt.Errorf("orders: open %s database: %w", o.Driver, err)
	}
	sdb.SetMaxOpenConns(o.MaxOpenConns)
	db := &DB{sql: sdb, opts: o}
	if err := db.createSchema(ctx); err != nil {
		return nil, errors.Join(err, sdb.Close())
	}
	return db, nil
}

// createSchema runs the schema statements in one transaction.
func (db *DB) createSchema(ctx context.Context) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("orders: create schema: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("orders: create schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("orders: create schema: %w", err)
	}
	return nil
}

// Close closes the database. Calls after Close fail with ErrClosed; a
// second Close does nothing.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	return db.sql.Close()
}

// usable returns ErrClosed after Close.
func (db *DB) usable() error {
	if db.closed.Load() {
		return ErrClosed
	}
	return nil
}

// now returns the current time in Unix milliseconds, as the tables keep it.
func now() int64 { return time.Now().UnixMilli() }

// invalidArg returns an ErrInvalidArgument error.
func invalidArg(op, format string, args ...any) error {
	return fmt.Errorf("orders: %s: %w: %s", op, ErrInvalidArgument, fmt.Sprintf(format, args...))
}
