package orders

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenWaitsOutAnotherOpener checks that Open succeeds when another
// connection holds the fresh database's lock for a while (as a second
// process opening the same new file at the same moment does): it retries
// while SQLite answers SQLITE_BUSY, which busy_timeout does not cover when
// the connection switches the file to WAL.
func TestOpenWaitsOutAnotherOpener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	other, err := sql.Open(DefaultDriver, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("CREATE TABLE held (x INTEGER)"); err != nil { // takes the write lock
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, pragmas, _ := strings.Cut(DefaultDSN, "?")
		db, err := Open(context.Background(), Options{DSN: "file:" + path + "?" + pragmas})
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Open returned while the other connection held the lock: %v", err)
	case <-time.After(300 * time.Millisecond): // the other opener's transaction lasts this long
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
}

// busyCommit opens a database in SQLite's rollback-journal mode (a DSN
// without WAL, which Options.DSN accepts) and runs write, which must fail
// at COMMIT with SQLITE_BUSY: a reader of another connection holds its
// SHARED lock past busy_timeout. It returns the database, its DSN and a
// function that ends the reader.
func busyCommit(t *testing.T, ctx context.Context, write func(*DB) error) (*DB, string, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "orders.db")
	dsn := "file:" + path + "?_pragma=busy_timeout(200)&_txlock=immediate"
	db, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SetStock(ctx, "sku-1", 3); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open(DefaultDriver, "file:"+path+"?_pragma=busy_timeout(200)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	rtx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := write(db); !isBusy(err) {
		t.Fatalf("a write while a reader holds its lock: %v, want SQLITE_BUSY at commit", err)
	}
	return db, dsn, func() { _ = rtx.Rollback() }
}

// createO1 creates order o1 (transaction o1/create).
func createO1(db *DB) error {
	return db.CreateOrder(context.Background(), "o1/create", Order{ID: "o1", User: "u", SKU: "sku-1", Qty: 1, Amount: 5})
}

// A local transaction whose COMMIT failed (SQLITE_BUSY) stays open in
// SQLite; were its connection put back in the pool, the check-back's fence
// would run inside it, read its uncommitted row and answer COMMIT for an
// order that never commits. The connection is dropped instead: the fence
// answers FENCED, and after a reopen the order does not exist.
func TestFenceAfterABusyCommitSeesItRolledBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, dsn, release := busyCommit(t, ctx, createO1)
	release() // the reader is done; the check-back comes
	if state, err := db.Fence(ctx, "o1/create"); err != nil || state != TxnFenced {
		t.Fatalf("Fence after the busy commit: %q, %v; want FENCED (the local transaction did not commit)", state, err)
	}
	db.Close()
	db2, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if s, err := db2.TxnState(ctx, "o1/create"); err != nil || s != TxnFenced {
		t.Fatalf("after a reopen o1/create is %q, %v; want FENCED", s, err)
	}
	if _, err := db2.Order(ctx, "o1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("order o1 after the busy commit and a reopen: %v, want not found", err)
	}
}

// Nor does that open transaction swallow other fences: a fence answered
// FENCED is committed, so the fenced local transaction can never commit
// afterwards (the broker rolled its message back).
func TestFenceAfterABusyCommitIsDurable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, dsn, release := busyCommit(t, ctx, createO1)
	release()
	if state, err := db.Fence(ctx, "o2/create"); err != nil || state != TxnFenced {
		t.Fatalf("Fence of o2: %q, %v; want FENCED", state, err)
	}
	db.Close()
	db2, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	err = db2.CreateOrder(ctx, "o2/create", Order{ID: "o2", User: "u", SKU: "sku-1", Qty: 1, Amount: 5})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("CreateOrder of the fenced o2 after a reopen: %v, want ErrFenced", err)
	}
}

// A consumer's effect whose COMMIT failed is not taken for consumed: the
// redelivery runs it again, and it is there after a reopen.
func TestConsumeAfterABusyCommitRunsAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	grant := func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, insertCouponSQL, "o1", "u", now())
		return err
	}
	db, dsn, release := busyCommit(t, ctx, func(db *DB) error {
		_, err := db.Consume(ctx, "coupons", "msg-1", grant)
		return err
	})
	release()
	if first, err := db.Consume(ctx, "coupons", "msg-1", grant); err != nil || !first {
		t.Fatalf("redelivery after the busy commit: first %v, %v; want the effect run", first, err)
	}
	db.Close()
	db2, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if first, err := db2.Consume(ctx, "coupons", "msg-1", grant); err != nil || first {
		t.Fatalf("after a reopen msg-1 is not recorded as consumed: first %v, %v", first, err)
	}
}
