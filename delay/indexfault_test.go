package delay

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// A round whose timer-index write fails is retried (Run calls deliverDue
// again after a pause). The retry indexes the timer messages the failed
// write did not: skipped, they would never be delivered while the broker
// runs, and the next write that succeeds would save the index's cursor
// past them, so not after a restart either.
func TestTimerIndexFailureRetried(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	r.send("t", message.Properties{message.PropertyTimerDelayMS: "1000"})
	failed := false
	r.s.idx.failAdd = func() error {
		if failed {
			return nil
		}
		failed = true
		return errors.New("injected timer-index write failure")
	}
	if _, _, err := r.s.deliverDue(t.Context()); err == nil {
		t.Fatal("the round whose timer-index write failed reported success")
	}
	r.clock.Advance(time.Second)
	r.step() // the retry
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"t"}) {
		t.Fatalf("after the retry delivered %v, want [t]", got)
	}
}
