package txn

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// TestLowestIsTheOldestOpenHalf follows Lowest (what the broker holds the
// store's retention below) as transactions open, end, and survive a
// restart.
func TestLowestIsTheOldestOpenHalf(t *testing.T) {
	r := newRig(t)
	want := func(stage string, off int64, open bool) {
		t.Helper()
		got, ok, err := r.svc.Lowest()
		if err != nil || ok != open || open && got != off {
			t.Fatalf("%s: Lowest = %d, %v, %v; want %d, %v", stage, got, ok, err, off, open)
		}
	}
	want("none open", 0, false)
	a, b := r.half("a"), r.half("b")
	want("two open", a.PhysicalOffset, true)
	if _, err := r.end(a, Commit); err != nil {
		t.Fatal(err)
	}
	want("the oldest committed", b.PhysicalOffset, true)
	r.reopen()
	want("after a restart", b.PhysicalOffset, true)
	if _, err := r.end(b, Rollback); err != nil {
		t.Fatal(err)
	}
	want("all ended", 0, false)

	// Closed, both fail (a store then keeps everything) instead of using
	// the closed state database.
	r.half("c")
	if err := r.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.Lowest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lowest after Close: %v, want ErrClosed", err)
	}
	if err := r.svc.MoveBelow(r.st.MaxPhysicalOffset()); !errors.Is(err, ErrClosed) {
		t.Fatalf("MoveBelow after Close: %v, want ErrClosed", err)
	}
}

// TestMoveBelowKeepsStatusAndOutcome moves a pending and a parked
// transaction's messages to the end of the log: Lowest rises past the old
// ones, the statuses stay (also when the state is rebuilt from the log
// alone), a check-back still carries the message without the move's
// property, and a commit delivers the original message.
func TestMoveBelowKeepsStatusAndOutcome(t *testing.T) {
	r := newRig(t)
	parked := r.half("p")
	r.useUpChecks()
	pending := r.half("a")
	if l := r.svc.List(Parked, 0); len(l) != 1 {
		t.Fatalf("parked: %+v", l)
	}
	end := r.st.MaxPhysicalOffset()
	if err := r.svc.MoveBelow(end); err != nil {
		t.Fatal(err)
	}
	if low, ok, err := r.svc.Lowest(); err != nil || !ok || low < end {
		t.Fatalf("Lowest after the move = %d, %v, %v; want at or above %d", low, ok, err, end)
	}
	status := func(stage string) {
		t.Helper()
		for id, want := range map[string]Status{"p": Parked, "a": Pending} {
			if tx, ok := r.svc.Get(id, -1); !ok || tx.Status != want {
				t.Fatalf("%s: %s is %+v (found %v), want %v", stage, id, tx, ok, want)
			}
		}
	}
	status("after the move")

	// Rebuilt from the log alone: the moved copies must not park "a".
	r.close()
	if err := os.RemoveAll(r.dir + "/txn"); err != nil {
		t.Fatal(err)
	}
	r.open()
	status("rebuilt from the log")
	if low, ok, _ := r.svc.Lowest(); !ok || low < end {
		t.Fatalf("Lowest after the rebuild = %d, want the moved copies' (at or above %d)", low, end)
	}

	r.clock.Advance(testOpts.Timeout + testOpts.CheckInterval)
	r.svc.checkRound()
	if c := r.check.last(); string(c.Message.Body) != "body-a" || c.Message.Property(PropertyMoved) != "" ||
		c.Message.Property(PropertyHalfOffset) != "" {
		t.Fatalf("check-back of the moved transaction: %+v", c.Message)
	}
	if _, err := r.end(pending, Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := r.end(parked, Commit); err != nil {
		t.Fatal(err)
	}
	if got := r.waitDelivered(2); !slices.Equal(got, []string{"a", "p"}) {
		t.Fatalf("delivered %v", got)
	}
	for _, id := range []string{"a", "p"} {
		m, err := r.st.ReadMessage(mustFind(t, r, id))
		if err != nil || m.Property(PropertyMoved) != "" || m.Property(PropertyHalfOffset) != "" || string(m.Body) != "body-"+id {
			t.Fatalf("committed %s: %+v %v", id, m, err)
		}
	}
	if _, ok, _ := r.svc.Lowest(); ok {
		t.Fatal("Lowest still reports an open transaction after both ended")
	}
}

// Lowest lets the store's retention remove an ended transaction's half
// message. Under AsyncFlush the commit's record may not be fsynced yet:
// removed then, an OS crash would lose the commit, the restart would make
// the transaction pending again to ask the producer (undoLost), and the
// producer's commit would find the half message gone. So Lowest releases
// a half message only once the outcome that ended it is durable.
func TestLowestReleasesOnlyDurableOutcomes(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	h := r.half("a")
	if err := r.st.Flush(); err != nil { // the half message is durable
		t.Fatal(err)
	}
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	end := r.st.MaxPhysicalOffset() // past the commit's message
	if d := r.st.DurableOffset(); d >= end {
		t.Fatalf("the commit is durable (%d >= %d) before Lowest: the test shows nothing", d, end)
	}
	lowest, ok, err := r.svc.Lowest()
	if err != nil {
		t.Fatal(err)
	}
	if ok && lowest <= h.PhysicalOffset {
		return // still held: nothing released
	}
	if d := r.st.DurableOffset(); d < end {
		t.Fatalf("Lowest released the committed half message (%d, %v) while the commit is not durable (durable end %d, written %d)",
			lowest, ok, d, end)
	}
}
