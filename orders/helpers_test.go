package orders

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// fileDSN returns a DSN like DefaultDSN's for a database file in dir.
func fileDSN(dir string) string {
	return "file:" + filepath.Join(dir, "orders.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// openTest opens a database in a temporary directory, closed when the test
// ends. mod adjusts the options.
func openTest(t testing.TB, mod func(*Options)) *DB {
	t.Helper()
	o := Options{DSN: fileDSN(t.TempDir())}
	if mod != nil {
		mod(&o)
	}
	db, err := Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ctxT returns a context that ends after 30 s or with the test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stock returns sku's stock, failing the test on error.
func stock(t testing.TB, db *DB, sku string) int {
	t.Helper()
	n, err := db.Stock(ctxT(t), sku)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// txnState returns txnID's state, failing the test on error.
func txnState(t testing.TB, db *DB, txnID string) TxnState {
	t.Helper()
	s, err := db.TxnState(ctxT(t), txnID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustOrder returns order id, failing the test on error.
func mustOrder(t testing.TB, db *DB, id string) Order {
	t.Helper()
	o, err := db.Order(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// wantErr fails the test unless errors.Is(err, want) (want nil: err nil).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// newOrder returns a valid order of qty units of sku.
func newOrder(id, sku string, qty int) Order {
	return Order{ID: id, User: "user-" + id, Amount: 1999, SKU: sku, Qty: qty}
}
