package delay

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// A wall clock stepped back between two sends of one level makes the later
// message (higher queue offset) fall due first. The level is still
// delivered strictly in queue order, as RocketMQ does: the later message
// waits for the one ahead of it, and a round cut short by its limit moves
// past exactly what it delivered.
func TestLevelDeliversInQueueOrderWhenClockStepsBack(t *testing.T) {
	r := newRig(t, "1s 5s")
	r.close()
	r.opts.BatchSize = 1 // a round delivers at most 8
	r.openStore()
	r.openScheduler()
	defer func() { r.close() }() // r.s and r.st change on the restart below
	level1 := message.Properties{message.PropertyDelayTimeLevel: "1"}
	want := []string{"a", "b", "c", "d", "e", "f", "g", "h", "z"}
	for _, b := range want[:8] {
		r.send(b, maps.Clone(level1))
	}
	r.clock.Advance(-time.Millisecond) // NTP steps the clock back
	z := r.send("z", maps.Clone(level1))

	r.clock.Advance(time.Second) // z's own due time, 1 ms before a's
	if n := r.step(); n != 0 {
		t.Fatalf("delivered %d: z went before the 8 messages ahead of it in its level", n)
	}
	r.clock.Advance(2 * time.Second)
	if n := r.step(); n != 8 {
		t.Fatalf("first round delivered %d, want its limit of 8", n)
	}
	if got, ok, err := r.s.Lowest(); err != nil || !ok || got != z.PhysicalOffset {
		t.Fatalf("Lowest = %d, %v, %v after a..h; want z (%d) held", got, ok, err, z.PhysicalOffset)
	}
	for i := 0; i < 5 && r.step() > 0; i++ {
	}
	if got := bodies(r.delivered()); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want each once in queue order %v", got, want)
	}
	if _, ok, err := r.s.Lowest(); ok || err != nil {
		t.Fatalf("Lowest still holds a message (%v, %v) after all were delivered", ok, err)
	}

	// The progress moved past exactly what was delivered: a restart
	// delivers nothing again.
	r.close()
	r.openStore()
	r.openScheduler()
	r.clock.Advance(10 * time.Second)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, want) {
		t.Fatalf("after a restart delivered %v, want %v", got, want)
	}
}

// errInjected is failingStore's append error.
var errInjected = errors.New("injected append failure")

// failingStore fails its failAt-th AppendBatchAsync call (1-based) without
// storing anything.
type failingStore struct {
	Store
	calls, failAt int
}

func (f *failingStore) AppendBatchAsync(msgs []*message.Message) ([]store.AppendResult, *store.Pending, error) {
	f.calls++
	if f.calls == f.failAt {
		return nil, nil, errInjected
	}
	return f.Store.AppendBatchAsync(msgs)
}

// A batch failing mid-round (the one before it acknowledged) leaves its
// level's messages to the next round: none is skipped and none is
// delivered twice, even when the clock stepped back between two sends.
func TestLevelBatchFailingMidRoundLosesNothing(t *testing.T) {
	r := newRig(t, "1s")
	r.close()
	r.opts.BatchSize = 1
	r.openStore()
	r.openScheduler()
	defer r.close()
	level1 := message.Properties{message.PropertyDelayTimeLevel: "1"}
	r.send("a", maps.Clone(level1))
	r.send("b", maps.Clone(level1))
	r.clock.Advance(-time.Millisecond)
	r.send("z", maps.Clone(level1))
	r.clock.Advance(2 * time.Second)

	r.s.st = &failingStore{Store: r.st, failAt: 2}
	n, _, err := r.s.deliverDue(context.Background())
	if !errors.Is(err, errInjected) || n != 1 {
		t.Fatalf("round with a failing second batch: %d delivered, err %v; want 1, the injected error", n, err)
	}
	r.settle()
	r.s.st = r.st
	for i := 0; i < 5 && r.step() > 0; i++ {
	}
	if got, want := bodies(r.delivered()), []string{"a", "b", "z"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want each once in queue order %v", got, want)
	}
	if _, ok, err := r.s.Lowest(); ok || err != nil {
		t.Fatalf("Lowest still holds a message (%v, %v) after all were delivered", ok, err)
	}
}
