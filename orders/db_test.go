package orders

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

// Opening an existing database keeps its data; creating the schema again
// changes nothing.
func TestSchemaCreatedTwice(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	db := openStocked(ctx, t, dir)
	if err := db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 2)); err != nil {
		t.Fatal(err)
	}
	if err := db.createSchema(ctx); err != nil {
		t.Fatalf("schema again on an open database: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, func(o *Options) { o.DSN = fileDSN(dir) })
	if o := mustOrder(t, db, "o1"); o.Status != StatusPendingPayment || o.Qty != 2 {
		t.Fatalf("order after reopening: %+v", o)
	}
	if n := stock(t, db, "sku"); n != 3 {
		t.Fatalf("stock after reopening %d, want 3", n)
	}
	if s := txnState(t, db, "t1"); s != TxnCommitted {
		t.Fatalf("txn state after reopening %q", s)
	}
}

// Every method of a closed DB fails with ErrClosed; Close again is a no-op.
func TestClosedDB(t *testing.T) {
	db := openTest(t, nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"CreateOrder": func() error { return db.CreateOrder(ctx, "t", newOrder("o", "s", 1)) },
		"MarkPaid":    func() error { return db.MarkPaid(ctx, "t", "o", "p", 1) },
		"Cancel":      func() error { return db.Cancel(ctx, "t", "o", "r") },
		"Order":       func() error { _, err := db.Order(ctx, "o"); return err },
		"SetStock":    func() error { return db.SetStock(ctx, "s", 1) },
		"Stock":       func() error { _, err := db.Stock(ctx, "s"); return err },
		"TxnState":    func() error { _, err := db.TxnState(ctx, "t"); return err },
		"Fence":       func() error { _, err := db.Fence(ctx, "t"); return err },
		"Coupons":     func() error { _, err := db.Coupons(ctx); return err },
		"Consume": func() error {
			_, err := db.Consume(ctx, "g", "m", func(*sql.Tx) error { return nil })
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed DB: %v, want ErrClosed", name, err)
		}
	}
}

// A done context fails a call without writing anything.
func TestCanceledContext(t *testing.T) {
	db := openTest(t, nil)
	if err := db.SetStock(ctxT(t), "sku", 5); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateOrder with a canceled context: %v", err)
	}
	if _, err := db.Fence(ctx, "t1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fence with a canceled context: %v", err)
	}
	if s := txnState(t, db, "t1"); s != TxnNone {
		t.Fatalf("txn state %q after canceled calls", s)
	}
	if n := stock(t, db, "sku"); n != 5 {
		t.Fatalf("stock %d after a canceled CreateOrder", n)
	}
}
