package testutil

import (
	"testing"
	"time"
)

func TestWithWallKeepsTheMonotonicReading(t *testing.T) {
	m := time.Now()
	back := WithWall(t, m, m.Add(-2*time.Hour))
	if got := back.Round(0).Sub(m.Round(0)); got != -2*time.Hour {
		t.Fatalf("wall clock moved %v, want -2h", got)
	}
	if back.Sub(m) != 0 || back.Before(m) {
		t.Fatalf("monotonic reading moved: %v", back.Sub(m))
	}
	later := time.Now()
	if !later.After(back) {
		t.Fatal("a later reading is not after it by the monotonic clock")
	}
}
