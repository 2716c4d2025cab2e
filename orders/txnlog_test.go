package orders

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// The local transaction commits first: the fence reports it, and a second
// run of the local transaction changes nothing.
func TestLocalTxnBeforeFence(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 10); err != nil {
		t.Fatal(err)
	}
	if s := txnState(t, db, "t1"); s != TxnNone {
		t.Fatalf("state before anything %q", s)
	}
	wantErr(t, "CreateOrder", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 3)), nil)
	for range 2 {
		s, err := db.Fence(ctx, "t1")
		if err != nil || s != TxnCommitted {
			t.Fatalf("Fence after commit: %q, %v", s, err)
		}
	}
	wantErr(t, "CreateOrder again", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 3)), ErrAlreadyCommitted)
	if n := stock(t, db, "sku"); n != 7 {
		t.Fatalf("stock %d after one order of 3 created twice, want 7", n)
	}
}

// The fence comes first: the local transaction can never commit.
func TestFenceBeforeLocalTxn(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	if err := db.SetStock(ctx, "sku", 10); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err := db.Fence(ctx, "t1")
		if err != nil || s != TxnFenced {
			t.Fatalf("Fence: %q, %v", s, err)
		}
	}
	wantErr(t, "CreateOrder", db.CreateOrder(ctx, "t1", newOrder("o1", "sku", 3)), ErrFenced)
	if _, err := db.Order(ctx, "o1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("order of a fenced transaction: %v", err)
	}
	if n := stock(t, db, "sku"); n != 10 {
		t.Fatalf("a fenced transaction reserved stock: %d", n)
	}
	if s := txnState(t, db, "t1"); s != TxnFenced {
		t.Fatalf("state %q", s)
	}
	// Every local transaction obeys the fence.
	wantErr(t, "CreateOrder o2", db.CreateOrder(ctx, "t2", newOrder("o2", "sku", 1)), nil)
	if _, err := db.Fence(ctx, "t3"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "MarkPaid", db.MarkPaid(ctx, "t3", "o2", "p1", 1999), ErrFenced)
	if _, err := db.Fence(ctx, "t4"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Cancel", db.Cancel(ctx, "t4", "o2", "timeout"), ErrFenced)
	if o := mustOrder(t, db, "o2"); o.Status != StatusPendingPayment {
		t.Fatalf("fenced changes applied: %+v", o)
	}
	if _, err := db.Fence(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Fence of an empty id: %v", err)
	}
}

// raceResult is what the racers of one transaction id saw.
type raceResult struct {
	mu      sync.Mutex
	creates []error
	fences  []TxnState
}

// Local transactions and fences race on the same ids: for each id exactly
// one side wins, every fence reports the winner, and the order exists iff
// the winner is the local transaction.
func TestFenceRace(t *testing.T) {
	for _, conns := range []int{1, 4} {
		t.Run(fmt.Sprintf("conns=%d", conns), func(t *testing.T) {
			db := openTest(t, func(o *Options) { o.MaxOpenConns = conns })
			const ids, creators, fencers, qty = 30, 3, 3, 2
			ctx := ctxT(t)
			if err := db.SetStock(ctx, "sku", ids*qty); err != nil {
				t.Fatal(err)
			}
			results := make([]raceResult, ids)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range ids {
				txnID, r := fmt.Sprintf("race-%d", i), &results[i]
				for range creators {
					wg.Go(func() {
						<-start
						err := db.CreateOrder(ctx, txnID, newOrder("order-"+txnID, "sku", qty))
						r.mu.Lock()
						defer r.mu.Unlock()
						r.creates = append(r.creates, err)
					})
				}
				for range fencers {
					wg.Go(func() {
						<-start
						s, err := db.Fence(ctx, txnID)
						if err != nil {
							t.Errorf("Fence %s: %v", txnID, err)
						}
						r.mu.Lock()
						defer r.mu.Unlock()
						r.fences = append(r.fences, s)
					})
				}
			}
			close(start)
			wg.Wait()
			committed := 0
			for i := range results {
				if checkRace(t, db, fmt.Sprintf("race-%d", i), &results[i]) {
					committed++
				}
			}
			t.Logf("%d of %d ids committed, %d fenced", committed, ids, ids-committed)
			if n := stock(t, db, "sku"); n != (ids-committed)*qty {
				t.Fatalf("stock %d, want %d", n, (ids-committed)*qty)
			}
		})
	}
}

// checkRace checks one id's race and reports whether the local
// transaction won.
func checkRace(t *testing.T, db *DB, txnID string, r *raceResult) bool {
	t.Helper()
	final := txnState(t, db, txnID)
	for _, s := range r.fences {
		if s != final {
			t.Fatalf("%s: a fence saw %q, the log holds %q", txnID, s, final)
		}
	}
	wins, again, fenced := 0, 0, 0
	for _, err := range r.creates {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrAlreadyCommitted):
			again++
		case errors.Is(err, ErrFenced):
			fenced++
		default:
			t.Fatalf("%s: CreateOrder: %v", txnID, err)
		}
	}
	_, err := db.Order(ctxT(t), "order-"+txnID)
	switch final {
	case TxnCommitted:
		if wins != 1 || fenced != 0 || err != nil {
			t.Fatalf("%s committed: %d wins, %d fenced, order: %v", txnID, wins, fenced, err)
		}
		return true
	case TxnFenced:
		if wins != 0 || again != 0 || !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s fenced: %d wins, %d already committed, order: %v", txnID, wins, again, err)
		}
		return false
	}
	t.Fatalf("%s: state %q after the race", txnID, final)
	return false
}
