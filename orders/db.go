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
// missing. It fails with ErrInvalidOptions for bad options,
// ErrSchemaVersion for a SQLite file a newer version wrote, and with the
// driver's error if the database cannot be reached or (SQLite) written.
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
	if err := db.createSchemaRetrying(ctx); err != nil {
		return nil, errors.Join(err, sdb.Close())
	}
	return db, nil
}

// openBusyLimit bounds how long Open waits for another connection's lock.
const openBusyLimit = 30 * time.Second

// createSchemaRetrying runs createSchema again while SQLite answers
// SQLITE_BUSY, for up to openBusyLimit: busy_timeout does not cover a new
// connection switching the file to WAL while another process opening the
// same new file holds its lock, which is what two processes started
// together (the worker and a consumer) do.
func (db *DB) createSchemaRetrying(ctx context.Context) error {
	deadline := time.Now().Add(openBusyLimit)
	wait := 10 * time.Millisecond
	for {
		err := db.createSchema(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == sqliteBusy
}

// sqliteBusy is SQLITE_BUSY's primary result code.
const sqliteBusy = 5

// createSchema runs the schema statements in one transaction.
func (db *DB) createSchema(ctx context.Context) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("orders: create schema: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	sqlite := isSQLite(db.opts.Driver)
	if sqlite {
		// Before the statements: a newer version's tables may be ones
		// they fail on.
		if err := checkSchemaVersion(ctx, tx); err != nil {
			return err
		}
	}
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("orders: create schema: %w", err)
		}
	}
	if sqlite {
		if err := markSchemaVersion(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("orders: create schema: %w", err)
	}
	return nil
}

// checkSchemaVersion refuses a SQLite file of a newer schema version.
func checkSchemaVersion(ctx context.Context, tx *sql.Tx) error {
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("orders: create schema: reading the schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("%w: schema version %d, this version writes %d", ErrSchemaVersion, v, schemaVersion)
	}
	return nil
}

// markSchemaVersion writes schemaVersion into a SQLite file's
// user_version (checkSchemaVersion refused a newer one). The write also
// fails on a database SQLite opened read-only (a file the process may not
// write), which the schema statements, changing nothing on an existing
// file, let through: such a database would fail every local transaction
// later.
func markSchemaVersion(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("orders: create schema: writing the schema version: %w", err)
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
