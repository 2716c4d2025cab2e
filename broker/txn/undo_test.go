package txn

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// asyncFlush makes the store ASYNC_FLUSH with no flush or checkpoint of
// its own during a test: a record is durable only when something flushes.
func asyncFlush(o *store.Options) {
	o.FlushType, o.FlushInterval, o.CheckpointInterval = store.AsyncFlush, time.Hour, time.Hour
}

// snapshotStore copies the store's directory as it is now, once what was
// appended is dispatched, and returns the copy: the store an OS crash at
// this moment leaves, when the commit log is fsynced this far (the tests
// flush it first).
func (r *rig) snapshotStore() string {
	r.t.Helper()
	testutil.WaitFor(r.t, 5*time.Second, "the store's dispatcher to catch up", func() bool {
		return r.st.DispatchedOffset() >= r.st.MaxPhysicalOffset()
	})
	dst := filepath.Join(r.t.TempDir(), "store")
	if err := os.CopyFS(dst, os.DirFS(r.st.Dir())); err != nil {
		r.t.Fatal(err)
	}
	return dst
}

// osCrash reopens the rig as an OS crash leaves it when Pebble's writes
// reached the disk and the commit log's tail did not: the state database
// keeps every write made to it, synced or not, with no final checkpoint,
// and the store's directory is snap (see snapshotStore). before, if set,
// runs on the recovered store before the service opens (the broker opens
// other services first, which may append).
func (r *rig) osCrash(snap string, before func(st *store.Store)) {
	r.t.Helper()
	s := r.svc
	s.closed.Store(true)
	s.cancel()
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.st.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.svc, r.st = nil, nil
	if err := os.RemoveAll(r.dir + "/store"); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(snap, r.dir+"/store"); err != nil {
		r.t.Fatal(err)
	}
	if before != nil {
		st, err := store.Open(r.storeOptions())
		if err != nil {
			r.t.Fatal(err)
		}
		before(st)
		if err := st.Close(); err != nil {
			r.t.Fatal(err)
		}
	}
	r.open()
}

// appendOther stores an unrelated message: after a crash it takes the
// offset of the first record the crash lost.
func appendOther(t *testing.T) func(st *store.Store) {
	return func(st *store.Store) {
		if _, err := st.Append(context.Background(), &message.Message{Topic: "other", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitQuiet waits until the store's consume queues hold every record
// appended, so that what delivered reports is final.
func (r *rig) waitQuiet() {
	r.t.Helper()
	testutil.WaitFor(r.t, 5*time.Second, "the store's dispatcher to catch up", func() bool {
		return r.st.DispatchedOffset() >= r.st.MaxPhysicalOffset()
	})
}

// TestLostOutcomeIsCheckedAgain: under ASYNC_FLUSH an OS crash loses the
// record of a commit or rollback (the message in its real topic, the op
// record) while Pebble kept the state it led to. After the restart the
// transaction is pending again, check-back asks the producer, and its
// answer is recorded once: a commit delivers the message exactly once.
func TestLostOutcomeIsCheckedAgain(t *testing.T) {
	for _, o := range []Outcome{Commit, Rollback} {
		for _, reused := range []bool{false, true} {
			name := o.String() + "/log-ends-before-it"
			if reused {
				name = o.String() + "/offset-reused"
			}
			t.Run(name, func(t *testing.T) {
				r := newRigWith(t, asyncFlush)
				h := r.half("a")
				if err := r.svc.checkpoint(); err != nil { // the half durable and covered
					t.Fatal(err)
				}
				snap := r.snapshotStore()
				if _, err := r.end(h, o); err != nil {
					t.Fatal(err)
				}
				var before func(*store.Store)
				if reused {
					before = appendOther(t)
				}
				r.osCrash(snap, before)

				if st := r.status(h); st != Pending {
					t.Fatalf("after the crash the transaction is %v; the log holds no %s", st, o)
				}
				r.svc.checkRound()
				if n := r.check.count(); n != 1 || r.check.last().HalfOffset != h.PhysicalOffset {
					t.Fatalf("%d check-backs after the crash, want 1 for the half message at %d", n, h.PhysicalOffset)
				}
				res, err := r.svc.End(context.Background(), EndRequest{Group: "pg", HalfOffset: h.PhysicalOffset,
					QueueOffset: h.QueueOffset, Outcome: o, FromCheck: true})
				if err != nil || res.Duplicate || res.Txn.Status != o.status() {
					t.Fatalf("answer to the check: %+v, %v", res, err)
				}
				want := []string(nil)
				if o == Commit {
					want = []string{"a"}
				}
				for range 2 {
					r.waitQuiet()
					if got := r.delivered(); !slices.Equal(got, want) {
						t.Fatalf("delivered %v, want %v", got, want)
					}
					r.reopen()
				}
			})
		}
	}
}

// TestSurvivingOutcomeStands: a commit whose record the crash kept stays
// committed, with no check-back and no second message.
func TestSurvivingOutcomeStands(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	h := r.half("a")
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Flush(); err != nil { // the commit durable, its state not checkpointed
		t.Fatal(err)
	}
	r.osCrash(r.snapshotStore(), nil)

	if st := r.status(h); st != Committed {
		t.Fatalf("after the crash the transaction is %v, want committed", st)
	}
	r.clock.Advance(testOpts.Timeout + testOpts.CheckInterval)
	r.svc.checkRound()
	if n := r.check.count(); n != 0 {
		t.Fatalf("%d check-backs for a committed transaction", n)
	}
	res, err := r.end(h, Commit)
	if err != nil || !res.Duplicate {
		t.Fatalf("repeated commit: %+v, %v", res, err)
	}
	r.waitQuiet()
	if got := r.delivered(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v, want [a]", got)
	}
}

// TestLostHalfIsForgotten: a half message the crash lost, its offset
// taken by another record since, is no transaction at all.
func TestLostHalfIsForgotten(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	snap := r.snapshotStore()
	h := r.half("a")
	r.osCrash(snap, appendOther(t))
	if x, ok := r.svc.Get("", h.PhysicalOffset); ok {
		t.Fatalf("lost half message known after the crash: %+v", x)
	}
	if got := r.svc.List(0, 0); len(got) != 0 {
		t.Fatalf("live after the crash: %+v", got)
	}
}

// TestCopiesAreDurableBeforeTheirState: parking and moving write a copy of
// the message and read it there from then on; under ASYNC_FLUSH the copy
// is fsynced before the state points at it, so no crash can leave a
// transaction whose message is gone.
func TestCopiesAreDurableBeforeTheirState(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	r.half("parked")
	r.useUpChecks()
	if got := liveState(r); got["parked"] != "parked/3" {
		t.Fatalf("state %v", got)
	}
	if d, end := r.st.DurableOffset(), r.st.MaxPhysicalOffset(); d < end {
		t.Fatalf("parked on a copy not yet durable (durable end %d, written %d)", d, end)
	}
	h := r.half("moved")
	if err := r.svc.MoveBelow(r.st.MaxPhysicalOffset()); err != nil {
		t.Fatal(err)
	}
	x, _ := r.svc.Get("", h.PhysicalOffset)
	if d, end := r.st.DurableOffset(), r.st.MaxPhysicalOffset(); d < end || x.Status != Pending {
		t.Fatalf("moved to a copy not yet durable (durable end %d, written %d), status %v", d, end, x.Status)
	}
}

// TestCheckpointDropsNotes: the notes of records a checkpoint covers go
// with it, so they cost Pebble one checkpoint interval's worth at most.
func TestCheckpointDropsNotes(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	for _, id := range ids(3) {
		if _, err := r.end(r.half(id), Commit); err != nil {
			t.Fatal(err)
		}
	}
	notes, err := r.svc.notesFrom(0)
	if err != nil || len(notes) != 6 {
		t.Fatalf("notes before the checkpoint: %v, %v; want 3 halves and 3 commits", notes, err)
	}
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if notes, err := r.svc.notesFrom(0); err != nil || len(notes) != 0 {
		t.Fatalf("notes after the checkpoint: %v, %v; want none", notes, err)
	}
}

// TestLostCommitOfParkedIsCheckedAgain: a parked transaction whose message
// was moved, then committed by a late END_TRANSACTION whose record the
// crash lost, is pending again with its checks reset (not parked again
// unasked), and its check carries the message from the moved copy.
func TestLostCommitOfParkedIsCheckedAgain(t *testing.T) {
	r := newRigWith(t, asyncFlush)
	h := r.half("a")
	r.useUpChecks()
	if err := r.svc.MoveBelow(r.st.MaxPhysicalOffset()); err != nil {
		t.Fatal(err)
	}
	if x, _ := r.svc.Get("a", -1); x.Status != Parked {
		t.Fatalf("status %v, want parked", x.Status)
	}
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	snap := r.snapshotStore()
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	r.osCrash(snap, nil)

	if x, _ := r.svc.Get("", h.PhysicalOffset); x.Status != Pending || x.Checks != 0 {
		t.Fatalf("after the crash: %v with %d checks, want pending with none", x.Status, x.Checks)
	}
	if low, ok, err := r.svc.Lowest(); err != nil || !ok || low <= h.PhysicalOffset {
		t.Fatalf("Lowest after the crash: %d, %v, %v; want the moved copy, past %d", low, ok, err, h.PhysicalOffset)
	}
	checks := r.check.count()
	r.svc.checkRound()
	if r.check.count() != checks+1 {
		t.Fatal("no check-back after the crash")
	}
	if req := r.check.last(); req.HalfOffset != h.PhysicalOffset || string(req.Message.Body) != "body-a" {
		t.Fatalf("check-back for %d with body %q", req.HalfOffset, req.Message.Body)
	}
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	r.waitQuiet()
	if got := r.delivered(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v, want [a]", got)
	}
}
