package delay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/store/storetest"
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
	end := deliverNotDurable(t, r, "any checkpoint")
	if err := r.s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if d := r.st.DurableOffset(); d < end {
		t.Fatalf("checkpoint saved progress past a delivered copy that is not durable (durable end %d, copy ends at %d)", d, end)
	}
}

// queuedStore tells when a batch has been queued.
type queuedStore struct {
	Store
	queued chan struct{}
}

func (q *queuedStore) AppendBatchAsync(msgs []*message.Message) ([]store.AppendResult, *store.Pending, error) {
	res, p, err := q.Store.AppendBatchAsync(msgs)
	q.queued <- struct{}{}
	return res, p, err
}

// A delivery batch whose sync flush times out may still be stored. The
// round waits for the store's answer instead of giving the batch up, so
// the next round does not deliver it again.
func TestDeliveryPastFlushTimeoutIsNotRepeated(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	gate := storetest.NewFlushGate()
	o := store.Options{Dir: dir + "/store", FlushType: store.SyncFlush, SegmentSize: 8 << 20,
		MaxMessageSize: 64 << 10, Now: clock.Now, Logger: quiet}
	gate.Tune(&o)
	st, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := ParseLevels("1s")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: dir, clock: clock, st: st}
	r.opts = Options{Dir: dir + "/delay", Levels: lv, Clock: clock, Logger: quiet, BatchSize: 64}
	r.openScheduler()
	defer r.close()
	r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	clock.Advance(2 * time.Second)

	open := gate.Hold(t, st) // the writer is held after another append's fsync
	qs := &queuedStore{Store: st, queued: make(chan struct{}, 1)}
	r.s.st = qs
	type round struct {
		n   int
		err error
	}
	first := make(chan round, 1)
	go func() {
		n, _, err := r.s.deliverDue(context.Background())
		first <- round{n, err}
	}()
	<-qs.queued
	// An append queued after the delivery times out; the delivery, queued
	// before it, has timed out too.
	if _, err := st.Append(context.Background(), &message.Message{Topic: "other", Body: []byte("probe")}); !errors.Is(err, store.ErrFlushTimeout) {
		t.Fatalf("probe append with the writer held = %v, want ErrFlushTimeout", err)
	}
	open()
	got := <-first
	if got.err != nil || got.n != 1 {
		t.Fatalf("first round: %d delivered, %v; want 1, nil once the store answered", got.n, got.err)
	}
	r.s.st = st
	if n := r.step(); n != 0 {
		t.Fatalf("second round delivered %d again", n)
	}
	if b := bodies(r.delivered()); len(b) != 1 {
		t.Fatalf("delivered %v, want a once", b)
	}
}

// osCrash models an OS crash under ASYNC_FLUSH the way broker/txn's
// undo tests do: Pebble's (unsynced) writes reached the disk, the commit
// log's unflushed tail did not. It snapshots the store before fn appends,
// runs fn, then "crashes": the timer index is closed without a checkpoint
// and the store's directory is put back to the snapshot.
func osCrash(t *testing.T, r *rig, fn func()) {
	t.Helper()
	if err := r.st.Flush(); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(snap, os.DirFS(r.st.Dir())); err != nil {
		t.Fatal(err)
	}
	fn()
	r.s.idx.close() // no checkpoint: Pebble keeps what it was given
	r.st.Close()
	if err := os.RemoveAll(r.dir + "/store"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(snap, r.dir+"/store"); err != nil {
		t.Fatal(err)
	}
	r.openStore()
	r.openScheduler()
}

// A timer message indexed but lost from the commit log in an OS crash
// (ASYNC_FLUSH) leaves its index entry behind; the next timer message
// takes the lost one's commit-log offset and TimerTopic queue offset. New
// drops the stale entry: the next message is delivered at its own time
// (not the lost one's), and a record of another size does not stop
// delivery.
func TestOSCrashDropsTimerIndexAheadOfTheLog(t *testing.T) {
	for _, tc := range []struct {
		name, lostBody, nextBody string
	}{
		{"same size", "lost-A", "next-B"},
		{"other size", "lost-A", "next-B-with-a-longer-body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigFlush(t, "1s", true)
			osCrash(t, r, func() {
				r.send(tc.lostBody, message.Properties{message.PropertyTimerDelaySec: "600"})
				if n := r.step(); n != 0 { // indexes it
					t.Fatalf("delivered %d", n)
				}
			})
			defer r.close()
			r.send(tc.nextBody, message.Properties{message.PropertyTimerDelaySec: "3600"})
			r.send("level", message.Properties{message.PropertyDelayTimeLevel: "1"}) // due in 1 s
			r.step()
			r.clock.Advance(601 * time.Second) // the lost message's due time; nothing is due
			if _, _, err := r.s.deliverDue(context.Background()); err != nil {
				t.Fatalf("at the lost message's due time, delivery fails: %v", err)
			}
			r.settle()
			if got := bodies(r.delivered()); len(got) != 1 || got[0] != "level" {
				t.Fatalf("at 601 s delivered %v, want only [level] (%s is due at 3600 s)", got, tc.nextBody)
			}
			r.clock.Advance(3000 * time.Second) // now next is due
			if _, _, err := r.s.deliverDue(context.Background()); err != nil {
				t.Fatalf("delivery fails: %v", err)
			}
			r.settle()
			if got := bodies(r.delivered()); len(got) != 2 || got[1] != tc.nextBody {
				t.Fatalf("at its due time delivered %v, want [level %s]", got, tc.nextBody)
			}
		})
	}
}

// Lowest lets the store's retention remove a scheduled message once it
// is delivered. Under AsyncFlush the delivered copy may not be fsynced
// yet: removed then, an OS crash would lose the copy while the scheduled
// message is gone too (the restart's progress is before the delivery,
// and finds its record removed). So Lowest releases a message only once
// its copy is durable.
func TestLowestReleasesOnlyDurableDeliveries(t *testing.T) {
	r := newRigFlush(t, "1s", true)
	defer r.close()
	scheduled := r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	end := deliverNotDurable(t, r, "Lowest")
	lowest, ok, err := r.s.Lowest()
	if err != nil {
		t.Fatal(err)
	}
	if ok && lowest <= scheduled.PhysicalOffset {
		return // still held: nothing released
	}
	if d := r.st.DurableOffset(); d < end {
		t.Fatalf("Lowest released the scheduled message (%d, %v) while its delivered copy is not durable (durable end %d, copy ends at %d)",
			lowest, ok, d, end)
	}
}

// deliverNotDurable delivers the one level-1 message sent to r (its due
// time passed on the fake clock) and returns where its copy ends, which
// the store (never flushing on its own) has not made durable before what
// the test calls next, named by before.
func deliverNotDurable(t *testing.T, r *rig, before string) int64 {
	t.Helper()
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
		t.Fatalf("the delivered copy is durable (%d >= %d) before %s: the test shows nothing", d, end, before)
	}
	return end
}
