package txn

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/store/storetest"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// Writes whose caller stops waiting (its context ends, or the store's sync
// flush times out) before the store answers: the state follows the record
// when, and only when, the store has it.

// status is h's transaction status now (0 when unknown).
func (r *rig) status(h store.AppendResult) Status {
	tx, ok := r.svc.Get(strconv.FormatInt(h.PhysicalOffset, 10), h.PhysicalOffset)
	if !ok {
		return 0
	}
	return tx.Status
}

func (r *rig) waitStatus(h store.AppendResult, want Status) {
	r.t.Helper()
	testutil.WaitFor(r.t, 5*time.Second, "transaction "+want.String(), func() bool { return r.status(h) == want })
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// An END_TRANSACTION whose connection closed as it arrived (a oneway
// commit from a producer shutting down): the outcome is recorded all the
// same, so the producer's answer to a later check-back (or its retry) is a
// duplicate, and the message is delivered once, also after a restart.
func TestEndWithCancelledContextRecordsTheOutcome(t *testing.T) {
	for _, o := range []Outcome{Commit, Rollback} {
		t.Run(o.String(), func(t *testing.T) {
			r := newRig(t)
			h := r.half("a")
			_, err := r.svc.End(cancelled(), EndRequest{Group: "pg", HalfOffset: h.PhysicalOffset,
				QueueOffset: h.QueueOffset, Outcome: o})
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("End with a cancelled context: %v", err)
			}
			r.waitStatus(h, o.status())
			if err := r.svc.checkpoint(); err != nil {
				t.Fatal(err)
			}
			r.clock.Advance(testOpts.Timeout)
			r.svc.checkRound()
			if n := r.check.count(); n != 0 {
				t.Fatalf("%d check-backs of a resolved transaction", n)
			}
			res, err := r.end(h, o)
			if err != nil || !res.Duplicate {
				t.Fatalf("the same outcome again: %+v, %v; want a duplicate", res, err)
			}
			var want []string
			if o == Commit {
				want = []string{"a"}
				r.waitDelivered(1)
			}
			if got := r.delivered(); !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			r.reopen()
			if got, st := r.delivered(), r.status(h); !slices.Equal(got, want) || st != o.status() {
				t.Fatalf("after a restart: delivered %v, status %v; want %v, %v", got, st, want, o.status())
			}
		})
	}
}

// A half send whose connection closed: the half message is stored and
// known, and a retry with the same id answers with it.
func TestSendHalfWithCancelledContextKeepsTheHalf(t *testing.T) {
	r := newRig(t)
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("b"), Properties: message.Properties{
		message.PropertyUniqKey: "a", message.PropertyProducerGroup: "pg"}.Encode()}
	if _, err := r.svc.SendHalf(cancelled(), m, ""); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("SendHalf with a cancelled context: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the half message known", func() bool { return len(r.svc.List(Pending, 0)) == 1 })
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	again, err := r.svc.SendHalf(context.Background(), m, "")
	if err != nil || again.PhysicalOffset != r.svc.List(Pending, 0)[0].HalfOffset {
		t.Fatalf("retried half send: %+v, %v; want the stored one", again, err)
	}
	r.reopen()
	if l := r.svc.List(0, 0); len(l) != 1 || l[0].TransactionID != "a" || l[0].Status != Pending {
		t.Fatalf("after a restart: %+v, want the one half message pending", l)
	}
}

// An admin resume whose connection closed: the transaction is pending
// again, as the resume record the log holds says.
func TestResumeWithCancelledContextRecordsTheResume(t *testing.T) {
	r := newRig(t)
	h := r.half("a")
	r.useUpChecks()
	if st := r.status(h); st != Parked {
		t.Fatalf("status %v, want parked", st)
	}
	if _, err := r.svc.Resume(cancelled(), "a"); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Resume with a cancelled context: %v", err)
	}
	r.waitStatus(h, Pending)
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	r.reopen()
	if st := r.status(h); st != Pending {
		t.Fatalf("after a restart: %v, want pending", st)
	}
}

// snapshot copies dir as a kill -9 would leave it: what the process wrote
// to its files, nothing it held in memory.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	if err := os.CopyFS(to, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return to
}

// A commit whose sync flush times out while the store's writer is stuck
// in an earlier fsync: the commit record exists only in memory, so the
// transaction must stay pending until it is durable. A crash then leaves
// it pending, and the producer's retry delivers the message; without the
// crash, it is committed once the record is durable.
func TestCommitFlushTimeoutRecordsOnlyWhatIsDurable(t *testing.T) {
	g := storetest.NewFlushGate()
	r := newRigWith(t, g.Tune)
	h := r.half("a")
	open := g.Hold(t, r.st)
	if _, err := r.end(h, Commit); !errors.Is(err, store.ErrFlushTimeout) {
		t.Fatalf("commit with a stuck fsync: %v, want ErrFlushTimeout", err)
	}
	if st := r.status(h); st != Pending {
		t.Fatalf("status %v before the commit record is durable, want pending", st)
	}
	// The producer retries (FLUSH_DISK_TIMEOUT): it waits for the commit
	// under way instead of writing a second one.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if res, err := r.svc.End(ctx, EndRequest{Group: "pg", HalfOffset: h.PhysicalOffset, QueueOffset: h.QueueOffset,
		Outcome: Commit}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("retried commit while the first is unanswered: %+v, %v; want to wait", res, err)
	}
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	crashed := snapshot(t, r.dir)

	open()
	r.waitStatus(h, Committed)
	if got := r.waitDelivered(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v, want [a]", got)
	}
	if res, err := r.end(h, Commit); err != nil || !res.Duplicate {
		t.Fatalf("commit again: %+v, %v; want a duplicate", res, err)
	}

	c := &rig{t: t, dir: crashed, clock: r.clock, check: &recorder{reached: true}}
	c.open()
	t.Cleanup(c.close)
	if st, got := c.status(h), c.delivered(); st != Pending || len(got) != 0 {
		t.Fatalf("after a crash with the commit unwritten: status %v, delivered %v; want pending, nothing", st, got)
	}
	if res, err := c.end(h, Commit); err != nil || res.Duplicate {
		t.Fatalf("the producer's retry after the crash: %+v, %v; want a commit", res, err)
	}
	if got := c.waitDelivered(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the crash delivered %v, want [a]", got)
	}
}

// A move whose sync flush times out: Lowest keeps holding the old record
// until the copy is durable, so retention cannot remove the only copy.
func TestMoveBelowFlushTimeoutKeepsTheOldRecord(t *testing.T) {
	g := storetest.NewFlushGate()
	r := newRigWith(t, g.Tune)
	h := r.half("a")
	open := g.Hold(t, r.st)
	moved := make(chan error, 1)
	go func() { moved <- r.svc.MoveBelow(r.st.MaxPhysicalOffset()) }()
	testutil.WaitFor(t, 5*time.Second, "the move to queue its copy", func() bool {
		r.svc.mu.Lock()
		defer r.svc.mu.Unlock()
		return len(r.svc.inflight) > 0
	})
	// An append queued with the copy times out: so has the copy's flush.
	if _, err := r.st.Append(context.Background(), &message.Message{Topic: "other", Body: []byte("probe")}); !errors.Is(err, store.ErrFlushTimeout) {
		t.Fatalf("probe append with the writer held: %v, want ErrFlushTimeout", err)
	}
	if low, ok, err := r.svc.Lowest(); err != nil || !ok || low != h.PhysicalOffset {
		t.Fatalf("Lowest before the copy is durable: %d, %v, %v; want %d", low, ok, err, h.PhysicalOffset)
	}
	select {
	case err := <-moved:
		t.Fatalf("MoveBelow returned %v before the store answered for its copy", err)
	default:
	}
	open()
	if err := <-moved; err != nil {
		t.Fatalf("MoveBelow once the copy is stored: %v", err)
	}
	if low, ok, err := r.svc.Lowest(); err != nil || !ok || low <= h.PhysicalOffset {
		t.Fatalf("Lowest after the move: %d, %v, %v; want past %d", low, ok, err, h.PhysicalOffset)
	}
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	if got := r.waitDelivered(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v, want [a]", got)
	}
}

// A half message whose write is under way (stored, not yet applied to the
// state: here its fsync is stuck) is held by Lowest from the log end when
// the write began: retention asking the holds in that window would
// otherwise see nothing to keep.
func TestLowestHoldsAWriteUnderWay(t *testing.T) {
	g := storetest.NewFlushGate()
	r := newRigWith(t, g.Tune)
	open := g.Hold(t, r.st)
	type result struct {
		res store.AppendResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("body-w"), SysFlag: message.TransactionPreparedType,
			Properties: message.Properties{message.PropertyUniqKey: "w", message.PropertyTransactionPrepared: "true",
				message.PropertyProducerGroup: "pg"}.Encode()}
		res, err := r.svc.SendHalf(context.Background(), m, "")
		done <- result{res, err}
	}()
	testutil.WaitFor(t, 5*time.Second, "the half message's write under way", func() bool {
		r.svc.mu.Lock()
		defer r.svc.mu.Unlock()
		return len(r.svc.inflight) == 1
	})
	during, held, err := r.svc.Lowest()
	open()
	w := <-done
	if w.err != nil {
		t.Fatal(w.err)
	}
	if err != nil || !held || during > w.res.PhysicalOffset {
		t.Fatalf("Lowest while the half message's write was under way: %d, %v, %v; want held at or below its offset %d",
			during, held, err, w.res.PhysicalOffset)
	}
	if low, ok, err := r.svc.Lowest(); err != nil || !ok || low != w.res.PhysicalOffset {
		t.Fatalf("Lowest once the half message is open: %d, %v, %v; want its offset %d", low, ok, err, w.res.PhysicalOffset)
	}
}
