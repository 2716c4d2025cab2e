package delay

import (
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/halfbackmq/halfback/message"
)

// monoClock is the rig's fake clock as the system clock reads it: each
// Now carries a monotonic reading, which only moves forward, whatever
// the wall clock (fakeClock) does. An NTP step moves the wall clock alone.
type monoClock struct {
	*fakeClock
	mu    sync.Mutex
	base  time.Time // a real reading: it has a monotonic clock
	ticks time.Duration
}

func (c *monoClock) Now() time.Time {
	wall := c.fakeClock.Now()
	c.mu.Lock()
	c.ticks += time.Microsecond
	m := c.base.Add(c.ticks)
	c.mu.Unlock()
	return withWall(m, wall)
}

// timeLayout mirrors time.Time's fields.
type timeLayout struct {
	wall uint64
	ext  int64
	loc  *time.Location
}

// withWall returns m (which has a monotonic reading) with its wall clock
// set to wall, the monotonic reading kept: what time.Now returns after
// the wall clock was stepped. time.Time offers no way to build one.
func withWall(m, wall time.Time) time.Time {
	const nsecBits = 30
	l := (*timeLayout)(unsafe.Pointer(&m))
	secs := uint64(int64(l.wall<<1>>(nsecBits+1)) + wall.Unix() - m.Unix())
	l.wall = 1<<63 | secs<<nsecBits | uint64(wall.Nanosecond())
	return m
}

func newMonoClock(t *testing.T, f *fakeClock) *monoClock {
	c := &monoClock{fakeClock: f, base: time.Now()}
	a := c.Now()
	f.Advance(-time.Hour)
	b := c.Now()
	f.Advance(time.Hour)
	if !b.Round(0).Equal(a.Round(0).Add(-time.Hour)) || !b.After(a) {
		t.Fatal("time.Time's layout is not the one withWall knows: update withWall to the new one")
	}
	return c
}

// The system clock's readings carry a monotonic clock, which Go compares
// in place of the wall clock when both times have one: the wall clock
// stepped back must still be seen as such, or the entries read ahead are
// never corrected (TestLevelMessageReadBeforeTheClockStepsBackIsDueAtOnce,
// with the readings time.Now gives).
func TestLevelStepBackSeenWithMonotonicReadings(t *testing.T) {
	r := newRig(t, "1h")
	defer r.close()
	mc := newMonoClock(t, r.clock)
	r.s.Close()
	r.opts.Clock = mc
	r.openScheduler()
	r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	if n := r.step(); n != 0 {
		t.Fatalf("delivered %d at once, want a held for its hour", n)
	}
	r.clock.Advance(-2 * time.Hour) // NTP steps the wall clock back
	r.send("b", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the wall clock stepped back 2 h delivered %v, want [a] (due later than now + its level's 1 h)", got)
	}
	r.clock.Advance(time.Hour)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("an hour later delivered %v, want [a b]", got)
	}
}
