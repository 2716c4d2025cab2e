package delay

import (
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// Under AsyncFlush the store fsyncs on its own interval. A checkpoint
// saves progress past what was delivered, so it first makes the delivered
// copies durable: otherwise an OS crash could keep the progress and lose
// the copy, and with it the message.
func TestCheckpointMakesDeliveriesDurable(t *testing.T) {
	r := newRigFlush(t, "1s", true)
	defer r.close()
	r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.clock.Advance(2 * time.Second)
	if n := r.step(); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	got := r.delivered()
	if len(got) != 1 {
		t.Fatalf("real topic holds %d messages, want 1", len(got))
	}
	end := got[0].CommitLogOffset + int64(got[0].StoreSize)
	if d := r.st.DurableOffset(); d >= end {
		t.Fatalf("the delivered copy is durable (%d >= %d) before any checkpoint: the test shows nothing", d, end)
	}
	if err := r.s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if d := r.st.DurableOffset(); d < end {
		t.Fatalf("checkpoint saved progress past a delivered copy that is not durable (durable end %d, copy ends at %d)", d, end)
	}
}
