package delay

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// monoClock is the rig's fake clock as the system clock reads it: each
// Now carries a monotonic reading, which only moves forward, whatever
// the wall clock (fakeClock) does. An NTP step moves the wall clock alone.
type monoClock struct {
	*fakeClock
	t     testing.TB
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
	return testutil.WithWall(c.t, m, wall)
}

func newMonoClock(t *testing.T, f *fakeClock) *monoClock {
	c := &monoClock{fakeClock: f, t: t, base: time.Now()}
	c.Now() // WithWall's layout check fails here, on the test's goroutine
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
