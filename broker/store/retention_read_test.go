package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPullRacingRetention: a pull reads its queue entries, then retention
// removes the segment they point into before the pull reads the records
// (here from the tag filter, which runs between the two). The pull must
// get retention's answer (OFFSET_TOO_SMALL to the new min, or the records
// still stored), not an error: the broker answers an error with
// SYSTEM_ERROR, and the clients back off (1 to 3 s) and log a failure.
func TestPullRacingRetention(t *testing.T) {
	o, clock := agedOptions(t)
	o.RetentionCheckPeriod = time.Hour // only the test runs it
	s := openStore(t, o)
	defer s.Close()
	fillSegments(t, s, 100) // ~4 segments of 256 KiB
	ran := false
	match := func(int64) bool {
		if !ran {
			ran = true
			clock.Add(2 * time.Hour)
			mustRetain(t, s)
		}
		return true
	}
	r, err := s.GetMessages("ret", 0, 0, GetOptions{Match: match})
	if !ran {
		t.Fatal("the filter did not run")
	}
	if err != nil {
		t.Fatalf("pull while retention removed its segment: %v (min offset now %d)", err, s.MinPhysicalOffset())
	}
	lo, _ := s.QueueBounds("ret", 0)
	if lo == 0 {
		t.Fatal("retention removed nothing; the test proves nothing")
	}
	switch r.Status {
	case OffsetTooSmall, MessageWasRemoving:
		if r.NextBeginOffset != lo {
			t.Fatalf("pull = %v next %d, want next %d (the new min)", r.Status, r.NextBeginOffset, lo)
		}
	default:
		t.Fatalf("pull = %v next %d, want OFFSET_TOO_SMALL next %d", r.Status, r.NextBeginOffset, lo)
	}
}

// TestSearchOffsetRacingRetention: between removing a segment and raising
// the queues' min offsets past it, retention leaves queue entries that
// point into the removed segment. A search by timestamp then must skip
// them (their records were older than any still stored), not fail.
func TestSearchOffsetRacingRetention(t *testing.T) {
	o, _ := agedOptions(t)
	o.RetentionCheckPeriod = time.Hour
	s := openStore(t, o)
	defer s.Close()
	res := fillSegments(t, s, 100)
	// The first step of a retention pass: the segment goes.
	base, err := s.log.removeOldest(func(*segment, time.Time) bool { return false }, false)
	if err != nil || base != 0 {
		t.Fatalf("removing the oldest segment = %d, %v", base, err)
	}
	first := 0
	for res[first].PhysicalOffset < s.MinPhysicalOffset() {
		first++
	}
	off, err := s.OffsetForTimestamp("ret", 0, 0)
	if err != nil {
		t.Fatalf("search by timestamp while retention runs: %v", err)
	}
	if off != int64(first) {
		t.Fatalf("search by timestamp 0 = %d, want %d (the first record still stored)", off, first)
	}
}

// TestSegmentRemovalDoesNotStallTheLog: removing a segment unlinks (or
// renames) its file and fsyncs the commit-log directory. Neither must
// happen under the log's lock, which every read and every append takes:
// an unlink of a whole cached segment takes a good part of a second, and
// a directory fsync waits for a journal commit. Here the directory fsync
// of the removal is held; a pull and an append must still complete.
func TestSegmentRemovalDoesNotStallTheLog(t *testing.T) {
	o, clock := agedOptions(t)
	o.RetentionCheckPeriod = time.Hour // only the test runs it
	logDir := filepath.Join(o.Dir, "commitlog")
	entered, gate := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(dir string) error {
		if dir == logDir && armed.CompareAndSwap(true, false) {
			close(entered)
			<-gate
		}
		return orig(dir)
	}
	s := openStore(t, o) // after the hook is in: its goroutines read it
	defer s.Close()
	var wg sync.WaitGroup
	defer wg.Wait() // after release, below
	fillSegments(t, s, 100)
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	defer release()
	clock.Add(2 * time.Hour)
	armed.Store(true)
	retained := make(chan error, 1)
	go func() { retained <- s.runRetention() }()
	<-entered // the removal is syncing the directory

	var pulled, appended atomic.Bool
	wg.Go(func() {
		lo, _ := s.QueueBounds("ret", 0)
		if _, err := s.GetMessages("ret", 0, lo+50, GetOptions{MaxMessages: 1}); err != nil {
			t.Error(err)
		}
		pulled.Store(true)
	})
	wg.Go(func() {
		if _, err := s.Append(context.Background(), testMsg("ret", 1, 0)); err != nil {
			t.Error(err)
		}
		appended.Store(true)
	})
	waitFor(t, "a pull and an append while retention syncs the directory", func() bool {
		return pulled.Load() && appended.Load()
	})
	release()
	if err := <-retained; err != nil {
		t.Fatal(err)
	}
	if s.MinPhysicalOffset() == 0 {
		t.Fatal("retention removed nothing")
	}
}

// TestRecoveryKeepsSegmentAges: a recovery without a usable checkpoint
// writes the whole retained log back (see recover). Retention goes by a
// segment's modification time, so that write must not make every
// segment look new: segments due for removal before the crash are still
// due after it, not FileReserved later (72 h by default, with the disk
// filling meanwhile).
func TestRecoveryKeepsSegmentAges(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.FileReserved = time.Hour
	o.RetentionCheckPeriod = time.Hour // only the test runs it
	o.diskUsage = func() (float64, error) { return 0.10, nil }
	s := openStore(t, o)
	defer func() { s.Close() }()
	fillSegments(t, s, 100)
	s.halt()
	segs := segmentFiles(t, o.Dir)
	old := time.Now().Add(-2 * time.Hour) // the full segments were written two hours ago
	for _, p := range segs[:len(segs)-1] {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(o.Dir, "checkpoint")); err != nil && !os.IsNotExist(err) { // recover from the start
		t.Fatal(err)
	}
	s = openStore(t, o)
	mustRetain(t, s)
	if left := segmentFiles(t, o.Dir); len(left) != 1 {
		t.Fatalf("after the recovery retention kept %d of %d segments, want only the active one (due before the crash)", len(left), len(segs))
	}
}

// TestRetentionFinishesAnInterruptedRemoval: a removal that fails after
// the segment left the log (here the commit-log directory's fsync fails
// once) must still have the queues' min offsets and the index catch up
// with the log, on the next pass at the latest, even when that pass has
// no segment to remove. Left behind, the queues keep entries into the
// removed segment for as long as no other segment is due (hours, at
// fileReservedHours): their min offset is wrong, and a pull from a
// consumer's old offset gets MESSAGE_WAS_REMOVING, 800 entries at a time,
// instead of OFFSET_TOO_SMALL to the new min.
func TestRetentionFinishesAnInterruptedRemoval(t *testing.T) {
	o, clock := agedOptions(t)
	o.RetentionCheckPeriod = time.Hour // only the test runs it
	logDir := filepath.Join(o.Dir, "commitlog")
	var fail atomic.Bool
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(dir string) error {
		if dir == logDir && fail.CompareAndSwap(true, false) {
			return errors.New("injected: directory fsync failed")
		}
		return orig(dir)
	}
	s := openStore(t, o) // after the hook is in: its goroutines read it
	defer s.Close()
	res := fillSegments(t, s, 40) // one full segment and the active one
	if n := len(segmentFiles(t, o.Dir)); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	clock.Add(2 * time.Hour)
	fail.Store(true)
	if err := s.runRetention(); err == nil {
		t.Fatal("the injected failure was not reported")
	}
	minPhys := s.MinPhysicalOffset()
	if minPhys == 0 {
		t.Fatal("the segment is still in the log; the test proves nothing")
	}
	// The next pass has nothing to remove: only the active segment is left.
	mustRetain(t, s)
	first := 0
	for res[first].PhysicalOffset < minPhys {
		first++
	}
	if lo, _ := s.QueueBounds("ret", 0); lo != int64(first) {
		t.Errorf("queue min offset %d after the next pass, want %d (the first message still stored)", lo, first)
	}
	r, err := s.GetMessages("ret", 0, 0, GetOptions{})
	if err != nil || r.Status != OffsetTooSmall || r.NextBeginOffset != int64(first) {
		t.Errorf("pull from 0 = %v next %d (%v), want OFFSET_TOO_SMALL next %d", r.Status, r.NextBeginOffset, err, first)
	}
	if _, err := os.Stat(s.idx.path(0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed segment's index file is still there (%v)", err)
	}
}
