package txn

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

func TestCheckBackAfterTimeoutThenEveryInterval(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	r.clock.Advance(testOpts.Timeout - time.Millisecond)
	r.svc.checkRound()
	if n := r.check.count(); n != 0 {
		t.Fatalf("checked %d times before the timeout", n)
	}
	r.clock.Advance(time.Millisecond)
	r.svc.checkRound()
	if n := r.check.count(); n != 1 {
		t.Fatalf("checks after the timeout = %d, want 1", n)
	}
	c := r.check.last()
	if c.Group != "pg" || c.HalfOffset != res.PhysicalOffset || c.QueueOffset != res.QueueOffset || c.TransactionID != "a" ||
		c.Check != 1 || c.Message.Topic != "orders" || c.Message.QueueID != 1 || string(c.Message.Body) != "body-a" ||
		c.Message.CommitLogOffset != res.PhysicalOffset || c.MsgID != res.MsgID {
		t.Fatalf("check request %+v", c)
	}
	r.svc.checkRound() // not due again yet
	r.clock.Advance(testOpts.CheckInterval)
	r.svc.checkRound()
	if n := r.check.count(); n != 2 || r.check.last().Check != 2 {
		t.Fatalf("checks after one interval = %d", n)
	}
	// The producer answers the check: resolved, never checked again.
	if _, err := r.svc.End(context.Background(), EndRequest{Group: "pg", HalfOffset: res.PhysicalOffset,
		QueueOffset: res.QueueOffset, Outcome: Commit, FromCheck: true}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(10 * testOpts.CheckInterval)
	r.svc.checkRound()
	if n := r.check.count(); n != 2 {
		t.Fatalf("resolved transaction checked again (%d checks)", n)
	}
	if s := r.svc.Stats(); s.CheckCommits != 1 || s.Checks != 2 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	r.waitDelivered(1)
}

func TestChecksThatReachNobodyAreNotCounted(t *testing.T) {
	r := newRig(t)
	r.check.reached = false
	r.half("a")
	for range 10 {
		r.clock.Advance(testOpts.CheckInterval)
		r.svc.checkRound()
	}
	l := r.svc.List(0, 0)
	if len(l) != 1 || l[0].Status != Pending || l[0].Checks != 0 {
		t.Fatalf("after checks with no producer online: %+v", l)
	}
	if s := r.svc.Stats(); s.Unreached != 10 || s.Checks != 0 {
		t.Fatalf("stats %+v", s)
	}
	r.check.reached = true // a producer of the group appears
	r.clock.Advance(testOpts.CheckInterval)
	r.svc.checkRound()
	if l := r.svc.List(0, 0); l[0].Checks != 1 {
		t.Fatalf("check after a producer appeared not counted: %+v", l)
	}
}

func TestImmunityDelaysTheFirstCheckWithoutBurningChecks(t *testing.T) {
	r := newRig(t)
	r.half("a", message.PropertyCheckImmunityTimeInSecs, "60")
	for range 11 {
		r.clock.Advance(5 * time.Second)
		r.svc.checkRound()
	}
	if n := r.check.count(); n != 0 {
		t.Fatalf("checked %d times during immunity", n)
	}
	if l := r.svc.List(0, 0); l[0].Checks != 0 {
		t.Fatalf("checks burned during immunity: %+v", l)
	}
	r.clock.Advance(5 * time.Second)
	r.svc.checkRound()
	if n := r.check.count(); n != 1 {
		t.Fatalf("checks after immunity = %d, want 1", n)
	}
}

func TestMaxChecksParksThenResumeAndCommit(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	r.useUpChecks()
	l := r.svc.List(Parked, 0)
	if len(l) != 1 || l[0].Checks != testOpts.CheckMax {
		t.Fatalf("parked: %+v (all: %+v)", l, r.svc.List(0, 0))
	}
	testutil.WaitFor(t, 5*time.Second, "parked copy in "+CheckMaxTopic, func() bool {
		_, maxOff := r.st.QueueBounds(CheckMaxTopic, 0)
		return maxOff == 1
	})
	for range 5 {
		r.clock.Advance(testOpts.CheckInterval)
		r.svc.checkRound()
	}
	if n := r.check.count(); n != testOpts.CheckMax {
		t.Fatalf("parked transaction checked: %d checks", n)
	}
	if _, err := r.svc.Resume(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Resume(context.Background(), "a"); !errors.Is(err, ErrNotParked) {
		t.Fatalf("resume of a pending transaction: %v", err)
	}
	r.svc.checkRound()
	if c := r.check.last(); r.check.count() != testOpts.CheckMax+1 || c.Check != 1 || string(c.Message.Body) != "body-a" ||
		c.Message.Property(PropertyHalfOffset) != "" {
		t.Fatalf("check after resume: %d checks, last %+v", r.check.count(), c)
	}
	if _, err := r.end(res, Commit); err != nil {
		t.Fatal(err)
	}
	got := r.waitDelivered(1)
	m, err := r.st.ReadMessage(mustFind(t, r, "a"))
	if err != nil || !slices.Equal(got, []string{"a"}) || m.Property(PropertyHalfOffset) != "" || m.PreparedTransactionOffset != res.PhysicalOffset {
		t.Fatalf("delivered %v, record %+v %v", got, m, err)
	}
}

func TestParkedTransactionCanStillBeEnded(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	r.useUpChecks()
	if out, err := r.end(res, Rollback); err != nil || out.Txn.Status != RolledBack {
		t.Fatalf("rollback of a parked transaction: %+v %v", out, err)
	}
	if _, err := r.svc.Resume(context.Background(), strconv.FormatInt(res.PhysicalOffset, 10)); !errors.Is(err, ErrUnknownTransaction) {
		t.Fatalf("resume of a resolved transaction: %v", err)
	}
}

func TestChecksCostNoCommitLogBytes(t *testing.T) {
	r := newRig(t)
	r.check.reached = false // producers down for hours: checks never end
	for _, id := range ids(200) {
		r.half(id)
	}
	end := r.st.MaxPhysicalOffset()
	for range 100 {
		r.clock.Advance(testOpts.CheckInterval)
		r.svc.checkRound()
	}
	if got := r.st.MaxPhysicalOffset(); got != end {
		t.Fatalf("20000 due checks grew the commit log by %d bytes", got-end)
	}
	if s := r.svc.Stats(); s.Unreached != 200*100 || s.Pending != 200 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMaxChecksPerRoundTakesTheMostOverdueFirst(t *testing.T) {
	r := newRig(t)
	r.svc.opts.MaxChecksPerRound = 2
	for _, id := range ids(5) {
		r.half(id)
		r.clock.Advance(time.Millisecond)
	}
	r.clock.Advance(testOpts.Timeout)
	r.svc.checkRound()
	if r.check.count() != 2 || r.check.got[0].TransactionID != "tx-0" || r.check.got[1].TransactionID != "tx-1" {
		t.Fatalf("first round checked %+v", r.check.got)
	}
	r.svc.checkRound()
	r.svc.checkRound()
	if r.check.count() != 5 {
		t.Fatalf("three rounds checked %d", r.check.count())
	}
}

// mustFind returns the physical offset of the record with UNIQ_KEY id in orders queue 1.
func mustFind(t *testing.T, r *rig, id string) int64 {
	t.Helper()
	var offs []int64
	testutil.WaitFor(t, 5*time.Second, "index entry of "+id, func() bool {
		var err error
		offs, err = r.st.QueryByKey("orders", id, 0, 0, 4)
		return err == nil && len(offs) == 1
	})
	return offs[0]
}

// A producer that answers a check before the check's send returns (the
// broker's connection writes the request, the answer arrives on another
// goroutine) resolves the transaction with that check counted: its
// outcome names check 1, and Stats counts the check.
func TestCheckAnsweredBeforeItReturnsIsCounted(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	var out EndResult
	var endErr error
	r.svc.SetChecker(CheckerFunc(func(req CheckRequest) bool {
		out, endErr = r.svc.End(context.Background(), EndRequest{Group: "pg", HalfOffset: req.HalfOffset,
			QueueOffset: req.QueueOffset, Outcome: Commit, FromCheck: true})
		return true
	}))
	r.clock.Advance(testOpts.Timeout)
	r.svc.checkRound()
	if endErr != nil {
		t.Fatal(endErr)
	}
	if out.Txn.Checks != 1 || out.Txn.HalfOffset != res.PhysicalOffset {
		t.Fatalf("outcome decided by check 1 reports %d checks (%+v)", out.Txn.Checks, out.Txn)
	}
	if s := r.svc.Stats(); s.Checks != 1 || s.CheckCommits != 1 {
		t.Fatalf("stats %+v, want 1 check and 1 commit from it", s)
	}
	r.waitDelivered(1)
}
