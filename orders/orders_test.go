package orders

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestCreateOrder(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	in := Order{ID: "o1", User: "ann", Amount: 2500, SKU: "sku", Qty: 2, Status: StatusPaid, PaymentID: "ignored"}
	wantErr(t, "CreateOrder", db.CreateOrder(ctx, "t1", in), nil)
	o := mustOrder(t, db, "o1")
	if o.ID != "o1" || o.User != "ann" || o.Amount != 2500 || o.SKU != "sku" || o.Qty != 2 ||
		o.Status != StatusPendingPayment || o.PaymentID != "" || o.Reason != "" ||
		o.CreatedAt.Before(before) || !o.UpdatedAt.Equal(o.CreatedAt) {
		t.Fatalf("created %+v", o)
	}
	if n := stock(t, db, "sku"); n != 3 {
		t.Fatalf("stock %d, want 3", n)
	}
	if s := txnState(t, db, "t1"); s != TxnCommitted {
		t.Fatalf("txn state %q", s)
	}
}

// A failing CreateOrder writes nothing: no order, no stock change, no
// transaction-log row (so the id can still be fenced).
func TestCreateOrderErrors(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 2); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "too many", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 3)), ErrOutOfStock)
	wantErr(t, "unknown SKU", db.CreateOrder(ctx, "t2", newOrder("o2", "nosuch", 1)), ErrOutOfStock)
	for _, id := range []string{"o1", "o2"} {
		if _, err := db.Order(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("order %s after out of stock: %v", id, err)
		}
	}
	if s := txnState(t, db, "t1"); s != TxnNone {
		t.Fatalf("txn state %q after out of stock", s)
	}
	wantErr(t, "create", db.CreateOrder(ctx, "t3", newOrder("o3", "sku", 1)), nil)
	wantErr(t, "existing order", db.CreateOrder(ctx, "t4", newOrder("o3", "sku", 1)), ErrOrderExists)
	if n := stock(t, db, "sku"); n != 1 {
		t.Fatalf("stock %d, want 1", n)
	}
	if s := txnState(t, db, "t4"); s != TxnNone {
		t.Fatalf("txn state %q after a duplicate order", s)
	}
	for name, o := range map[string]Order{
		"no id": {User: "u", SKU: "s", Qty: 1}, "no user": {ID: "x", SKU: "s", Qty: 1},
		"no sku": {ID: "x", User: "u", Qty: 1}, "zero qty": {ID: "x", User: "u", SKU: "s"},
		"negative amount": {ID: "x", User: "u", SKU: "s", Qty: 1, Amount: -1},
	} {
		wantErr(t, name, db.CreateOrder(ctx, "t5", o), ErrInvalidArgument)
	}
	wantErr(t, "no txn id", db.CreateOrder(ctx, "", newOrder("o6", "sku", 1)), ErrInvalidArgument)
}

func TestMarkPaid(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 1)), nil)
	// A wrong amount writes nothing, so the same transaction id may try again.
	wantErr(t, "wrong amount", db.MarkPaid(ctx, "t2", "o1", "p1", 1), ErrBadAmount)
	if s := txnState(t, db, "t2"); s != TxnNone {
		t.Fatalf("txn state %q after a wrong amount", s)
	}
	wantErr(t, "pay", db.MarkPaid(ctx, "t2", "o1", "p1", 1999), nil)
	o := mustOrder(t, db, "o1")
	if o.Status != StatusPaid || o.PaymentID != "p1" || o.UpdatedAt.Before(o.CreatedAt) {
		t.Fatalf("paid order %+v", o)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM payments WHERE id = $1 AND order_id = $2 AND amount = $3`,
		"p1", "o1", 1999).Scan(&n); err != nil || n != 1 {
		t.Fatalf("payment rows %d, %v", n, err)
	}
	wantErr(t, "pay again, same txn", db.MarkPaid(ctx, "t2", "o1", "p1", 1999), ErrAlreadyCommitted)
	// The same transaction id with another payment (a workflow reset to
	// before its pay step, then paid again) did not record that payment:
	// not success, or the workflow would report a payment the database
	// does not have, and never refund it.
	wantErr(t, "pay again, same txn, another payment", db.MarkPaid(ctx, "t2", "o1", "p9", 1999), ErrBadState)
	if err := db.MarkPaid(ctx, "t2", "o1", "p9", 1999); errors.Is(err, ErrAlreadyCommitted) || !strings.Contains(err.Error(), "p1") {
		t.Fatalf("pay again with another payment: %v; want the recorded payment named, not ErrAlreadyCommitted", err)
	}
	wantErr(t, "pay again, same txn, another amount", db.MarkPaid(ctx, "t2", "o1", "p1", 2999), ErrBadAmount)
	wantErr(t, "pay again, new txn", db.MarkPaid(ctx, "t3", "o1", "p2", 1999), ErrBadState)
	wantErr(t, "cancel paid", db.Cancel(ctx, "t4", "o1", "late"), ErrBadState)
	wantErr(t, "unknown order", db.MarkPaid(ctx, "t5", "nosuch", "p3", 1999), ErrNotFound)
	wantErr(t, "no payment id", db.MarkPaid(ctx, "t6", "o1", "", 1999), ErrInvalidArgument)
	for _, id := range []string{"t3", "t4", "t5"} {
		if s := txnState(t, db, id); s != TxnNone {
			t.Fatalf("txn %s state %q after a failed change", id, s)
		}
	}
}

// A payment id is recorded once: paying another order with it is
// ErrPaymentExists, which writes nothing (the order stays payable with
// another id under the same transaction id), while paying the same order
// again keeps its old answers.
func TestMarkPaidPaymentIDTaken(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create o1", db.CreateOrder(ctx, "o1/create", newOrder("o1", "sku", 1)), nil)
	wantErr(t, "create o2", db.CreateOrder(ctx, "o2/create", newOrder("o2", "sku", 1)), nil)
	wantErr(t, "pay o1", db.MarkPaid(ctx, "o1/pay", "o1", "p1", 1999), nil)

	err := db.MarkPaid(ctx, "o2/pay", "o2", "p1", 1999)
	wantErr(t, "pay o2 with o1's payment", err, ErrPaymentExists)
	if !strings.Contains(err.Error(), "payment p1 paid order o1") {
		t.Fatalf("error %q does not name the order the payment paid", err)
	}
	wantErr(t, "again", db.MarkPaid(ctx, "o2/pay", "o2", "p1", 1999), ErrPaymentExists)
	if o := mustOrder(t, db, "o2"); o.Status != StatusPendingPayment || o.PaymentID != "" {
		t.Fatalf("o2 after a taken payment id: %+v", o)
	}
	if s := txnState(t, db, "o2/pay"); s != TxnNone {
		t.Fatalf("txn state %q after a taken payment id", s)
	}
	var owner string
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT MIN(order_id), COUNT(*) FROM payments WHERE id = $1`, "p1").Scan(&owner, &n); err != nil ||
		owner != "o1" || n != 1 {
		t.Fatalf("payment p1: order %q, %d rows, %v", owner, n, err)
	}
	wantErr(t, "pay o2 with its own payment", db.MarkPaid(ctx, "o2/pay", "o2", "p2", 1999), nil)

	// The same order paid again with the same id: as before.
	wantErr(t, "pay o1 again, same txn", db.MarkPaid(ctx, "o1/pay", "o1", "p1", 1999), ErrAlreadyCommitted)
	wantErr(t, "pay o1 again, new txn", db.MarkPaid(ctx, "o1/pay-2", "o1", "p1", 1999), ErrBadState)
}

func TestCancel(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 5); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 2)), nil)
	wantErr(t, "cancel", db.Cancel(ctx, "t2", "o1", "payment timeout"), nil)
	if o := mustOrder(t, db, "o1"); o.Status != StatusCancelled || o.Reason != "payment timeout" {
		t.Fatalf("cancelled order %+v", o)
	}
	if n := stock(t, db, "sku"); n != 5 {
		t.Fatalf("stock %d after cancel, want 5", n)
	}
	wantErr(t, "cancel again, same txn", db.Cancel(ctx, "t2", "o1", "again"), ErrAlreadyCommitted)
	wantErr(t, "cancel again, new txn", db.Cancel(ctx, "t3", "o1", "again"), ErrBadState)
	wantErr(t, "pay cancelled", db.MarkPaid(ctx, "t4", "o1", "p1", 1999), ErrBadState)
	wantErr(t, "unknown order", db.Cancel(ctx, "t5", "nosuch", "x"), ErrNotFound)
	wantErr(t, "no order id", db.Cancel(ctx, "t6", "", "x"), ErrInvalidArgument)
	if n := stock(t, db, "sku"); n != 5 {
		t.Fatalf("stock %d after failed cancels, want 5", n)
	}
	// Cancelling restocks a SKU whose inventory row is gone.
	wantErr(t, "create o2", db.CreateOrder(ctx, "t7", newOrder("o2", "sku", 1)), nil)
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM inventory WHERE sku = $1`, "sku"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "cancel o2", db.Cancel(ctx, "t8", "o2", "x"), nil)
	if n := stock(t, db, "sku"); n != 1 {
		t.Fatalf("stock %d after restocking a deleted SKU, want 1", n)
	}
}

// Units a cancel returns to a SKU stocked at the most an int64 holds
// ("unlimited", set again while the order held its units) keep the stock
// an integer. SQLite turned the sum that overflowed into a REAL
// (9.223372036854776e+18): Stock failed on it from then on, and the
// stock no longer went down (a REAL that large minus a unit is itself).
func TestCancelRestocksUnlimitedStock(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 5)), nil)
	if err := db.SetStock(ctx, "sku", math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "cancel", db.Cancel(ctx, "t2", "o1", "payment timeout"), nil)
	n, err := db.Stock(ctx, "sku")
	if err != nil || n != math.MaxInt64 {
		t.Fatalf("stock after the cancel: %d, %v; want %d", n, err, int64(math.MaxInt64))
	}
	wantErr(t, "create after", db.CreateOrder(ctx, "t3", newOrder("o2", "sku", 1)), nil)
	if n := stock(t, db, "sku"); n != math.MaxInt64-1 {
		t.Fatalf("stock %d after one more unit was reserved, want %d", n, int64(math.MaxInt64-1))
	}
}

func TestStock(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if n := stock(t, db, "never"); n != 0 {
		t.Fatalf("stock of a SKU never stocked %d", n)
	}
	for _, q := range []int{7, 0, 3} {
		if err := db.SetStock(ctx, "sku", q); err != nil {
			t.Fatal(err)
		}
		if n := stock(t, db, "sku"); n != q {
			t.Fatalf("stock %d, want %d", n, q)
		}
	}
	wantErr(t, "negative", db.SetStock(ctx, "sku", -1), ErrInvalidArgument)
	wantErr(t, "no SKU", db.SetStock(ctx, "", 1), ErrInvalidArgument)
	if _, err := db.Order(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Order of an unknown id: %v", err)
	}
}
