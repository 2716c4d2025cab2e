package delay

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// TestLowestIsTheOldestUndeliveredMessage follows Lowest through a timer
// message not yet indexed, then indexed, then delivered, and two level
// messages, until nothing is pending.
func TestLowestIsTheOldestUndeliveredMessage(t *testing.T) {
	r := newRig(t, "1s 5s")
	defer r.close()
	want := func(stage string, off int64, pending bool) {
		t.Helper()
		got, ok, err := r.s.Lowest()
		if err != nil || ok != pending || pending && got != off {
			t.Fatalf("%s: Lowest = %d, %v, %v; want %d, %v", stage, got, ok, err, off, pending)
		}
	}
	want("empty", 0, false)
	timer := r.send("t-3000", message.Properties{message.PropertyTimerDelayMS: "3000"})
	r.send("lvl-1000", message.Properties{message.PropertyDelayTimeLevel: "1"})
	lvl5 := r.send("lvl-5000", message.Properties{message.PropertyDelayTimeLevel: "2"})
	want("timer not indexed yet", timer.PhysicalOffset, true)

	r.step() // indexes the timer; nothing is due
	want("timer indexed", timer.PhysicalOffset, true)
	r.clock.Advance(time.Second)
	r.step()
	want("level 1 delivered", timer.PhysicalOffset, true)
	r.clock.Advance(2 * time.Second)
	r.step()
	want("timer delivered", lvl5.PhysicalOffset, true)
	r.clock.Advance(2 * time.Second)
	r.step()
	want("all delivered", 0, false)
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"lvl-1000", "t-3000", "lvl-5000"}) {
		t.Fatalf("delivered %v", got)
	}

	// Closed, it fails (a store then keeps everything) instead of reading
	// a closed index.
	r.send("later", message.Properties{message.PropertyDelayTimeLevel: "2"})
	r.s.Close()
	if _, _, err := r.s.Lowest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lowest after Close: %v, want ErrClosed", err)
	}
}

// TestTimerWithoutRecordIsSkipped checks that a timer whose record is no
// longer in the commit log (removed by an older broker's retention) is
// skipped instead of stopping every delivery. The entry points past the
// log's end: the store answers ErrOffsetNotFound for that exactly as for
// an offset below its first segment.
func TestTimerWithoutRecordIsSkipped(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	r.send("t-1000", message.Properties{message.PropertyTimerDelayMS: "1000"})
	r.step() // indexes it
	gone := timerEntry{key: timerKey{due: r.clock.Now().Add(500 * time.Millisecond).UnixMilli(), phys: 1 << 40}, size: 200}
	if err := r.s.idx.add([]timerEntry{gone}, r.s.indexed); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Second)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"t-1000"}) {
		t.Fatalf("delivered %v, want the timer whose record is there", got)
	}
	if _, ok, err := r.s.Lowest(); ok || err != nil {
		t.Fatalf("Lowest still reports a pending message (%v, %v): the skipped timer was not passed", ok, err)
	}
}
