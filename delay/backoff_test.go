package delay

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// refusingStore is a real store whose appends fail while refuse is set,
// as a store on a full disk refuses them; it counts the refused attempts.
type refusingStore struct {
	*store.Store
	refuse   atomic.Bool
	attempts atomic.Int64
}

func (r *refusingStore) AppendBatchAsync(msgs []*message.Message) ([]store.AppendResult, *store.Pending, error) {
	if r.refuse.Load() {
		r.attempts.Add(1)
		return nil, nil, store.ErrSegmentNotReady
	}
	return r.Store.AppendBatchAsync(msgs)
}

// While the store refuses writes (a full disk) the scheduler retries with
// a growing pause, up to 5 s, and logs the error once and then at most
// every 30 s, not ten attempts and ten log lines a second; once the store
// takes writes again it delivers within the longest pause, and says so.
func TestRefusedDeliveriesBackOff(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	var logs testutil.Buffer
	r.s.Close()
	r.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r.opts.CheckpointInterval = time.Hour
	r.openScheduler()
	r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	rs := &refusingStore{Store: r.st}
	rs.refuse.Store(true)
	r.s.st = rs
	r.clock.Advance(2 * time.Second)
	r.s.Start()

	// Run waits on two channels of the clock between rounds: the
	// checkpoint's and the retry's.
	parked := func() {
		testutil.WaitFor(t, 5*time.Second, "the scheduler to wait", func() bool { return r.clock.pending() == 2 })
	}
	parked()
	for range 60 {
		r.clock.Advance(time.Second)
		parked()
	}
	failed := strings.Count(logs.String(), "delivery failed")
	t.Logf("60 s of refused writes: %d attempts, %d log lines", rs.attempts.Load(), failed)
	// 0, 0.1, 0.3, 0.7, 1.5, 3.1 s, then every 5 s: 17 attempts in steps of 1 s.
	if n := rs.attempts.Load(); n < 12 || n > 20 {
		t.Errorf("%d delivery attempts in 60 s of refused writes, want 12-20 (a pause doubling from 100 ms to 5 s)", n)
	}
	if failed < 2 || failed > 3 {
		t.Errorf("%d log lines in 60 s of refused writes, want 2-3 (the first failure, then every 30 s):\n%s", failed, logs.String())
	}

	rs.refuse.Store(false)
	r.clock.Advance(5 * time.Second)
	testutil.WaitFor(t, 5*time.Second, "the message delivered once writes are taken again", func() bool {
		return len(r.delivered()) == 1 && strings.Contains(logs.String(), "delivery resumed")
	})
}
