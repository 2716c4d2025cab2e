package orders_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halfbackmq/halfback/orders"
)

func Example() {
	dir, _ := os.MkdirTemp("", "orders-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := orders.Open(ctx, orders.Options{DSN: "file:" + filepath.Join(dir, "orders.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	_ = db.SetStock(ctx, "sku-1", 5)

	// Order 1's local transaction commits before the check-back.
	err = db.CreateOrder(ctx, "wf-1/create", orders.Order{ID: "1", User: "ann", Amount: 1999, SKU: "sku-1", Qty: 2})
	fmt.Println("create 1:", err)
	state, _ := db.Fence(ctx, "wf-1/create")
	fmt.Println("check-back 1:", state)

	// Order 2's check-back comes first: its local transaction is fenced.
	state, _ = db.Fence(ctx, "wf-2/create")
	fmt.Println("check-back 2:", state)
	err = db.CreateOrder(ctx, "wf-2/create", orders.Order{ID: "2", User: "bob", Amount: 500, SKU: "sku-1", Qty: 1})
	fmt.Println("create 2 fenced:", errors.Is(err, orders.ErrFenced))

	n, _ := db.Stock(ctx, "sku-1")
	fmt.Println("stock:", n)
	// Output:
	// create 1: <nil>
	// check-back 1: COMMITTED
	// check-back 2: FENCED
	// create 2 fenced: true
	// stock: 3
}

func ExampleDB_Consume() {
	dir, _ := os.MkdirTemp("", "orders-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := orders.Open(ctx, orders.Options{DSN: "file:" + filepath.Join(dir, "orders.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	for range 2 { // the broker delivers the message twice
		first, err := db.Consume(ctx, "coupons", "msg-1", func(tx *sql.Tx) error {
			return orders.GrantCoupon(ctx, tx, "order-1", "ann")
		})
		fmt.Println(first, err)
	}
	coupons, _ := db.Coupons(ctx)
	fmt.Println(coupons)
	// Output:
	// true <nil>
	// false <nil>
	// map[order-1:1]
}
