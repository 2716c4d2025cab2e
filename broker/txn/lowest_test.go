package txn

import "testing"

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
}
