package orders

import (
	"database/sql"
	"errors"
	"testing"
)

func TestConsumeDedup(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	runs := 0
	grant := func(tx *sql.Tx) error { runs++; return GrantCoupon(ctx, tx, "o1", "ann") }
	for i, want := range []bool{true, false, false} {
		first, err := db.Consume(ctx, "coupons", "msg-1", grant)
		if err != nil || first != want {
			t.Fatalf("delivery %d: first %t, %v; want %t", i+1, first, err, want)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times for one message", runs)
	}
	// Another group consumes the same message on its own.
	if first, err := db.Consume(ctx, "audit", "msg-1", grant); err != nil || !first {
		t.Fatalf("another group: %t, %v", first, err)
	}
	got, err := db.Coupons(ctx)
	if err != nil || len(got) != 1 || got["o1"] != 2 {
		t.Fatalf("coupons %v, %v", got, err)
	}
}

// A failing fn rolls back its effect and the dedup row: the redelivery
// runs fn again.
func TestConsumeFailureRollsBack(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	boom := errors.New("boom")
	first, err := db.Consume(ctx, "coupons", "msg-1", func(tx *sql.Tx) error {
		if err := GrantCoupon(ctx, tx, "o1", "ann"); err != nil {
			return err
		}
		return boom
	})
	if first || !errors.Is(err, boom) {
		t.Fatalf("failing fn: %t, %v", first, err)
	}
	if got, err := db.Coupons(ctx); err != nil || len(got) != 0 {
		t.Fatalf("coupons after a failed fn: %v, %v", got, err)
	}
	ran := false
	first, err = db.Consume(ctx, "coupons", "msg-1", func(tx *sql.Tx) error {
		ran = true
		return GrantCoupon(ctx, tx, "o1", "ann")
	})
	if !first || err != nil || !ran {
		t.Fatalf("redelivery: first %t, ran %t, %v", first, ran, err)
	}
	if got, err := db.Coupons(ctx); err != nil || got["o1"] != 1 {
		t.Fatalf("coupons %v, %v", got, err)
	}
}

func TestConsumeInvalid(t *testing.T) {
	db := openTest(t, nil)
	ctx := ctxT(t)
	nop := func(*sql.Tx) error { return nil }
	for name, call := range map[string]func() error{
		"no group":   func() error { _, err := db.Consume(ctx, "", "m", nop); return err },
		"no message": func() error { _, err := db.Consume(ctx, "g", "", nop); return err },
		"nil fn":     func() error { _, err := db.Consume(ctx, "g", "m", nil); return err },
		"nil tx":     func() error { return GrantCoupon(ctx, nil, "o1", "ann") },
		"no order": func() error {
			_, err := db.Consume(ctx, "g", "m", func(tx *sql.Tx) error { return GrantCoupon(ctx, tx, "", "ann") })
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}
