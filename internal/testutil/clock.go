package testutil

import (
	"testing"
	"time"
	"unsafe"
)

// timeLayout mirrors time.Time's fields.
type timeLayout struct {
	wall uint64
	ext  int64
	loc  *time.Location
}

// WithWall returns m, a reading of time.Now (it has a monotonic clock),
// with its wall clock set to wall and its monotonic reading kept: what
// time.Now returns after the wall clock was stepped, or after the machine
// slept (the monotonic clock stops, the wall clock does not). time.Time
// offers no way to build one. It fails the test if time.Time's layout is
// no longer the one it knows.
func WithWall(t testing.TB, m, wall time.Time) time.Time {
	t.Helper()
	const nsecBits = 30
	got := m
	l := (*timeLayout)(unsafe.Pointer(&got))
	if l.wall&(1<<63) == 0 {
		t.Fatal("WithWall: m has no monotonic reading (take it from time.Now)")
	}
	secs := uint64(int64(l.wall<<1>>(nsecBits+1)) + wall.Unix() - m.Unix())
	l.wall = 1<<63 | secs<<nsecBits | uint64(wall.Nanosecond())
	if !got.Round(0).Equal(wall.Round(0)) || got.Sub(m) != 0 {
		t.Fatal("WithWall: time.Time's layout is not the one it knows: update timeLayout and WithWall")
	}
	return got
}
