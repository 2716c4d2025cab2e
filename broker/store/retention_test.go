package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// fillSegments appends n messages of ~9 KB to topic "ret" queue 0.
func fillSegments(t *testing.T, s *Store, n int) []AppendResult {
	t.Helper()
	var res []AppendResult
	for i := 0; i < n; i++ {
		m := testMsg("ret", 0, i)
		m.Body = append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte("r"), 9000)...)
		res = append(res, mustAppend(t, s, m))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	return res
}

// agedOptions are testOptions on a fake clock, with segments reserved for
// an hour and the disk 10% full: retention removes by age only, when the
// test moves the clock.
func agedOptions(t *testing.T) (Options, *fakeClock) {
	o := testOptions(t, SyncFlush)
	clock := &fakeClock{now: time.Now()}
	o.Now = clock.Now
	o.FileReserved = time.Hour
	o.diskUsage = func() (float64, error) { return 0.10, nil }
	return o, clock
}

func TestRetentionByAge(t *testing.T) {
	o, clock := agedOptions(t)
	s := openStore(t, o)
	defer func() { s.Close() }()   // the store reopened below, too
	res := fillSegments(t, s, 100) // ~4 segments of 256 KiB
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if s.MinPhysicalOffset() != 0 {
		t.Fatalf("young segments were removed: min offset %d", s.MinPhysicalOffset())
	}
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, o.Dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments left, want only the active one", len(segs))
	}
	minPhys := s.MinPhysicalOffset()
	if minPhys != res[len(res)-1].PhysicalOffset-res[len(res)-1].PhysicalOffset%o.SegmentSize {
		t.Fatalf("min offset %d is not the active segment's base", minPhys)
	}
	lo, hi := s.QueueBounds("ret", 0)
	var firstKept int
	for firstKept = range res {
		if res[firstKept].PhysicalOffset >= minPhys {
			break
		}
	}
	if lo != int64(firstKept) || hi != 100 {
		t.Fatalf("queue bounds [%d,%d), want [%d,100)", lo, hi, firstKept)
	}
	r, err := s.GetMessages("ret", 0, 0, GetOptions{})
	if err != nil || r.Status != OffsetTooSmall || r.NextBeginOffset != lo {
		t.Fatalf("pull from 0 after retention = %v next %d (%v), want OFFSET_TOO_SMALL next %d", r.Status, r.NextBeginOffset, err, lo)
	}
	got := readAll(t, s, "ret", 0)
	if len(got) != 100-firstKept || string(got[0].Body[:4]) != fmt.Sprintf("%04d", firstKept) {
		t.Fatalf("read %d records starting %q after retention", len(got), got[0].Body[:4])
	}
	if offs, _ := s.QueryByKey("ret", "order-1", 0, 0, 5); len(offs) != 0 {
		t.Fatalf("index still points into a removed segment: %v", offs)
	}
	if offs, _ := s.QueryByKey("ret", "order-99", 0, 0, 5); len(offs) != 1 {
		t.Fatalf("index lost a kept key: %v", offs)
	}
	if _, err := s.ReadMessage(res[0].PhysicalOffset); err == nil {
		t.Fatal("a record of a removed segment is still readable")
	}
	// The bounds survive a restart.
	s.Close()
	s = openStore(t, o)
	if lo2, hi2 := s.QueueBounds("ret", 0); lo2 != lo || hi2 != hi {
		t.Fatalf("bounds after restart [%d,%d), want [%d,%d)", lo2, hi2, lo, hi)
	}
}

func TestRetentionByDiskWatermark(t *testing.T) {
	o := testOptions(t, SyncFlush)
	var usage atomic.Value
	usage.Store(0.10)
	var st atomic.Pointer[Store]
	o.diskUsage = func() (float64, error) {
		if s := st.Load(); s != nil && s.MinPhysicalOffset() > 0 {
			return 0.80, nil // a segment removed: under the watermark again
		}
		return usage.Load().(float64), nil
	}
	s := openStore(t, o)
	st.Store(s)
	defer s.Close()
	fillSegments(t, s, 100)
	before := len(segmentFiles(t, o.Dir))
	// Above the 85% watermark: the first removal "frees" enough space.
	usage.Store(0.90)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if after := len(segmentFiles(t, o.Dir)); after != before-1 {
		t.Fatalf("segments %d -> %d; want exactly the oldest removed", before, after)
	}
	if s.MinPhysicalOffset() != o.SegmentSize {
		t.Fatalf("min offset %d, want %d", s.MinPhysicalOffset(), o.SegmentSize)
	}
}

// TestRetentionRecyclesSegments checks that retention keeps one removed
// segment file as the recycled segment; that the next preparation takes
// it (the same file, no zeros written) instead of writing a new one; that
// records written over its old ones read back exactly, through a clean
// reopen and a crash recovery, with none of the old records taken for new
// ones; and that a disk above the watermark gets the space back instead.
func TestRetentionRecyclesSegments(t *testing.T) {
	fs := &faultFS{}
	o, clock := agedOptions(t)
	o.fs = fs
	o.RetentionCheckPeriod = time.Hour // only the test runs it
	s := openStore(t, o)
	defer func() { s.Close() }()   // the store reopened below, too
	res := fillSegments(t, s, 100) // ~4 segments of 256 KiB
	active := s.MaxPhysicalOffset() / o.SegmentSize
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	recycled := filepath.Join(o.Dir, "commitlog", recycledName)
	kept, err := os.Stat(recycled)
	if err != nil {
		t.Fatalf("retention kept no recycled segment: %v", err)
	}
	if kept.Size() != o.SegmentSize {
		t.Fatalf("recycled segment is %d bytes, want %d", kept.Size(), o.SegmentSize)
	}

	// The segment after the active one was being zero-filled before
	// retention ran; the one after that takes the recycled file.
	more := func(from, upTo int) {
		for i := from; s.MaxPhysicalOffset() < int64(upTo)*o.SegmentSize+20_000; i++ {
			m := testMsg("ret", 0, i)
			m.Body = append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte("n"), 9000)...)
			res = append(res, mustAppend(t, s, m))
		}
	}
	more(len(res), int(active)+1)                   // into the zero-filled segment: the recycled one is prepared next
	fs.set(func(f *faultFS) { f.directWrites = 0 }) // the roll waited for the zero fill to end
	waitFor(t, "the recycled segment to be prepared", func() bool {
		_, err := os.Stat(recycled)
		return errors.Is(err, os.ErrNotExist)
	})
	next := filepath.Join(o.Dir, "commitlog", segmentName((active+2)*o.SegmentSize)+prepSuffix)
	waitFor(t, "the preparation to end", func() bool {
		done, err := preparationEnded(s)
		if err != nil {
			t.Fatalf("preparing from the recycled segment: %v", err)
		}
		return done
	})
	if fi, err := os.Stat(next); err != nil || !os.SameFile(fi, kept) {
		t.Fatalf("segment %d is not the recycled file (stat %v)", active+2, err)
	}
	fs.mu.Lock()
	direct := fs.directWrites
	fs.mu.Unlock()
	if direct != 0 {
		t.Fatalf("%d direct zero writes while preparing from the recycled segment, want none", direct)
	}
	more(len(res), int(active)+2) // into the recycled segment, over its old records

	check := func(when string) {
		t.Helper()
		waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
		lo, hi := s.QueueBounds("ret", 0)
		if hi != int64(len(res)) {
			t.Fatalf("%s: queue ends at %d, want %d", when, hi, len(res))
		}
		got := readAll(t, s, "ret", 0)
		if int64(len(got)) != hi-lo {
			t.Fatalf("%s: read %d records, want %d", when, len(got), hi-lo)
		}
		for j, g := range got {
			if want := fmt.Sprintf("%04d", int(lo)+j); string(g.Body[:4]) != want {
				t.Fatalf("%s: record %d is %q, want %q", when, int(lo)+j, g.Body[:4], want)
			}
		}
		last := res[len(res)-1]
		if end := last.PhysicalOffset + int64(last.Size); s.MaxPhysicalOffset() != end {
			t.Fatalf("%s: log ends at %d, want %d (old records taken for new ones?)", when, s.MaxPhysicalOffset(), end)
		}
	}
	check("running")
	// Past a page-aligned end the zero padding of the last write is absent
	// and a recycled segment's old bytes come right after the end: put an
	// old record there (a copy of the last one: valid, but not for this
	// position).
	last := res[len(res)-1]
	old, err := s.ReadRecords(last.PhysicalOffset, int(last.Size))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	writeLog(t, o, last.PhysicalOffset+int64(last.Size), old)
	var logged bytes.Buffer
	o.Logger = newBufLogger(&logged)
	s = openStore(t, o)
	check("after a clean reopen")
	if bytes.Contains(logged.Bytes(), []byte("recovering")) {
		t.Fatalf("a clean reopen over a recycled segment's old records ran recovery: %s", logged.String())
	}
	o.Logger = testLogger()
	// A crash after more records: recovery scans them from the checkpoint
	// of the clean close and must stop at the old record after them.
	for i := 0; i < 5; i++ {
		m := testMsg("ret", 0, len(res))
		m.Body = append([]byte(fmt.Sprintf("%04d", len(res))), bytes.Repeat([]byte("c"), 9000)...)
		res = append(res, mustAppend(t, s, m))
	}
	last = res[len(res)-1]
	s.halt()
	writeLog(t, o, last.PhysicalOffset+int64(last.Size), old)
	s = openStore(t, o)
	check("after a crash")
	mustAppend(t, s, testMsg("ret", 0, len(res)))

	// Above the watermark the space is given back: no file is kept.
	t.Run("full disk", func(t *testing.T) {
		o := testOptions(t, SyncFlush)
		o.Now = clock.Now
		o.FileReserved = time.Hour
		o.RetentionCheckPeriod = time.Hour
		o.diskUsage = func() (float64, error) { return 0.95, nil }
		s := openStore(t, o)
		defer s.Close()
		fillSegments(t, s, 100)
		if err := s.runRetention(); err != nil {
			t.Fatal(err)
		}
		if len(segmentFiles(t, o.Dir)) != 1 {
			t.Fatalf("segments %v, want only the active one", segmentFiles(t, o.Dir))
		}
		if _, err := os.Stat(filepath.Join(o.Dir, "commitlog", recycledName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a recycled segment was kept on a full disk (stat: %v)", err)
		}
	})
}

// TestCloseKeepsPreparedSegment checks that a finished preparation of the
// next segment is kept at Close as the recycled segment, and taken by the
// next run's preparation instead of being zero-filled again.
func TestCloseKeepsPreparedSegment(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	for i := 0; s.MaxPhysicalOffset() < o.SegmentSize*3/4+4096; i++ {
		mustAppend(t, s, bigMsg("keep", 0, i, 2000))
	}
	waitFor(t, "the next segment to be prepared", func() bool {
		done, err := preparationEnded(s)
		if err != nil {
			t.Fatalf("preparing the next segment: %v", err)
		}
		return done
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recycled := filepath.Join(o.Dir, "commitlog", recycledName)
	kept, err := os.Stat(recycled)
	if err != nil || kept.Size() != o.SegmentSize {
		t.Fatalf("Close kept no whole prepared segment: %v", err)
	}
	if p := preparedFiles(t, o.Dir); len(p) != 0 {
		t.Fatalf("Close left %v", p)
	}
	s = openStore(t, o)
	defer s.Close()
	next := filepath.Join(o.Dir, "commitlog", segmentName(o.SegmentSize)+prepSuffix)
	waitFor(t, "the next run to take the kept segment", func() bool {
		fi, err := os.Stat(next)
		return err == nil && os.SameFile(fi, kept)
	})
	b, err := os.ReadFile(next) // zero-filled once, in the first run
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, o.SegmentSize)) {
		t.Fatal("the kept segment is not all zeros")
	}
}

// TestRetentionKeepsHeldSegments checks, for each reason a segment is due
// (age, disk use), that no segment at or above a hold's lowest offset is
// removed; that the hold moving up lets retention go that far and no
// further; that a failing hold keeps everything; and that a released hold
// holds nothing.
func TestRetentionKeepsHeldSegments(t *testing.T) {
	for _, cause := range []string{"age", "disk"} {
		t.Run(cause, func(t *testing.T) {
			o := testOptions(t, SyncFlush)
			o.DeferRetention = true // only the test's runRetention calls
			clock := &fakeClock{now: time.Now()}
			o.Now = clock.Now
			o.FileReserved = time.Hour
			usage := 0.10
			if cause == "disk" {
				usage = 0.99
			}
			o.diskUsage = func() (float64, error) { return usage, nil }
			s := openStore(t, o)
			defer s.Close()
			res := fillSegments(t, s, 100) // ~4 segments of 256 KiB
			if cause == "age" {
				clock.Add(2 * time.Hour)
			}

			var lowest atomic.Int64
			var fail atomic.Bool
			lowest.Store(res[0].PhysicalOffset)
			release := s.Hold("test", HoldFunc(func() (int64, bool, error) {
				if fail.Load() {
					return 0, false, errors.New("hold broken")
				}
				return lowest.Load(), true, nil
			}))
			none := s.Hold("idle", HoldFunc(func() (int64, bool, error) { return 0, false, nil }))
			defer none()

			mustRetain(t, s)
			if s.MinPhysicalOffset() != 0 {
				t.Fatalf("a held segment was removed: min offset %d", s.MinPhysicalOffset())
			}
			if _, err := s.ReadMessage(res[0].PhysicalOffset); err != nil {
				t.Fatalf("the held record: %v", err)
			}

			// The hold moves into the third segment: the first two go.
			lowest.Store(2*o.SegmentSize + 100)
			mustRetain(t, s)
			if got := s.MinPhysicalOffset(); got != 2*o.SegmentSize {
				t.Fatalf("min offset %d, want %d: the segments below the hold removed, the held one kept", got, 2*o.SegmentSize)
			}

			fail.Store(true)
			lowest.Store(res[len(res)-1].PhysicalOffset)
			mustRetain(t, s)
			if got := s.MinPhysicalOffset(); got != 2*o.SegmentSize {
				t.Fatalf("a failing hold let retention remove segments: min offset %d", got)
			}

			release()
			mustRetain(t, s)
			if segs := segmentFiles(t, o.Dir); len(segs) != 1 {
				t.Fatalf("%d segments left after the hold was released, want only the active one", len(segs))
			}
		})
	}
}

// mover is a Mover over an offset that MoveBelow raises to the log's end.
type mover struct {
	s      *Store
	lowest atomic.Int64
	moves  atomic.Int32
	fail   bool
}

func (m *mover) Lowest() (int64, bool, error) { return m.lowest.Load(), true, nil }

func (m *mover) MoveBelow(end int64) error {
	m.moves.Add(1)
	if m.fail {
		return errors.New("cannot move")
	}
	if m.lowest.Load() < end {
		m.lowest.Store(m.s.MaxPhysicalOffset())
	}
	return nil
}

// TestRetentionMovesWhatAMoverHolds checks that a Mover holding a due
// segment is asked to move its records, and the segment goes once it did;
// that a Mover that cannot move keeps its segment; and that a plain hold
// beside a Mover keeps the segment without asking the Mover to move.
func TestRetentionMovesWhatAMoverHolds(t *testing.T) {
	open := func(t *testing.T) (*Store, []AppendResult) {
		o := testOptions(t, SyncFlush)
		o.DeferRetention = true
		o.FileReserved = time.Millisecond
		o.diskUsage = func() (float64, error) { return 0.10, nil }
		s := openStore(t, o)
		t.Cleanup(func() { s.Close() })
		res := fillSegments(t, s, 100)
		waitFor(t, "the segments to age", func() bool {
			seg, mod, ok, err := s.log.oldest()
			return err == nil && ok && seg != nil && time.Since(mod) > o.FileReserved
		})
		return s, res
	}

	t.Run("moved", func(t *testing.T) {
		s, res := open(t)
		m := &mover{s: s}
		m.lowest.Store(res[0].PhysicalOffset)
		s.Hold("mover", m)
		mustRetain(t, s)
		if m.moves.Load() != 1 || len(segmentFiles(t, s.opts.Dir)) != 1 {
			t.Fatalf("%d moves, %d segments left; want 1 move and only the active segment", m.moves.Load(), len(segmentFiles(t, s.opts.Dir)))
		}
	})
	t.Run("cannot move", func(t *testing.T) {
		s, res := open(t)
		m := &mover{s: s, fail: true}
		m.lowest.Store(res[0].PhysicalOffset)
		s.Hold("mover", m)
		mustRetain(t, s)
		if m.moves.Load() != 1 || s.MinPhysicalOffset() != 0 {
			t.Fatalf("%d moves, min offset %d; want 1 attempt and the segment kept", m.moves.Load(), s.MinPhysicalOffset())
		}
	})
	t.Run("beside a plain hold", func(t *testing.T) {
		s, res := open(t)
		m := &mover{s: s}
		m.lowest.Store(res[0].PhysicalOffset)
		s.Hold("mover", m)
		s.Hold("plain", HoldFunc(func() (int64, bool, error) { return res[0].PhysicalOffset, true, nil }))
		mustRetain(t, s)
		if m.moves.Load() != 0 || s.MinPhysicalOffset() != 0 {
			t.Fatalf("%d moves, min offset %d; want no move (it would not free the segment) and the segment kept",
				m.moves.Load(), s.MinPhysicalOffset())
		}
	})
}

func mustRetain(t *testing.T, s *Store) {
	t.Helper()
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
}

// TestStartRetention checks that a store opened with DeferRetention
// removes due segments once StartRetention is called, and that calling it
// again, or after Close, is harmless.
func TestStartRetention(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.DeferRetention = true
	o.FileReserved, o.RetentionCheckPeriod = time.Millisecond, 10*time.Millisecond
	o.diskUsage = func() (float64, error) { return 0.10, nil }
	s := openStore(t, o)
	fillSegments(t, s, 100)
	if s.MinPhysicalOffset() != 0 {
		t.Fatal("retention ran before StartRetention")
	}
	s.StartRetention()
	s.StartRetention()
	waitFor(t, "retention to remove the due segments", func() bool { return len(segmentFiles(t, o.Dir)) == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.StartRetention()
}

// asyncStoreWithUnflushedSegments opens an AsyncFlush store whose
// interval flush never comes in the test, with retention left to the test
// and a disk above the watermark, and fills three segments that are
// dispatched but not fsynced.
func asyncStoreWithUnflushedSegments(t *testing.T) *Store {
	t.Helper()
	o := testOptions(t, AsyncFlush)
	o.FlushInterval = time.Hour
	o.DeferRetention = true
	o.diskUsage = func() (float64, error) { return 0.99, nil }
	s := openStore(t, o)
	t.Cleanup(func() { s.Close() })
	for i := 0; s.written.Load() < 3*o.SegmentSize; i++ {
		m := testMsg("async", 0, i)
		m.Body = bytes.Repeat([]byte("a"), 32<<10)
		mustAppend(t, s, m)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.written.Load() })
	if d := s.durable.Load(); d >= o.SegmentSize {
		t.Fatalf("durable end %d: a segment was fsynced before the test flushed", d)
	}
	return s
}

// TestRetentionWaitsForAsyncFlush checks that retention removes no
// segment that is dispatched but not yet fsynced (AsyncFlush): a crash of
// the OS would lose its records, and the interval flush that then found it
// gone used to fail the store.
func TestRetentionWaitsForAsyncFlush(t *testing.T) {
	s := asyncStoreWithUnflushedSegments(t)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if m := s.MinPhysicalOffset(); m != 0 {
		t.Fatalf("retention removed segments below %d before they were fsynced (durable end %d)", m, s.durable.Load())
	}
	if err := s.flushCommitLog(); err != nil {
		t.Fatal(err)
	}
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if m, seg := s.MinPhysicalOffset(), s.opts.SegmentSize; m != s.written.Load()-s.written.Load()%seg {
		t.Fatalf("after the flush retention kept segments from %d, want only the active one", m)
	}
	mustAppend(t, s, testMsg("async", 0, -1))
}

// TestFlushCommitLogSkipsRemovedSegments checks that the interval flush
// starts at the oldest segment still there: one removed below the durable
// end needs no fsync, and must not fail the flush (which would make the
// store refuse every append until restarted).
func TestFlushCommitLogSkipsRemovedSegments(t *testing.T) {
	s := asyncStoreWithUnflushedSegments(t)
	base, err := s.log.removeOldest(func(*segment, time.Time) bool { return false }, false)
	if err != nil || base != 0 {
		t.Fatalf("removing the oldest segment = %d, %v", base, err)
	}
	if err := s.flushCommitLog(); err != nil {
		t.Fatalf("flush after a segment was removed: %v", err)
	}
	if d, w := s.durable.Load(), s.written.Load(); d != w {
		t.Fatalf("durable end %d after the flush, want the written end %d", d, w)
	}
}

// A retention pass asks the holds, then removes due segments one after
// another. A segment that was the active one when the holds were asked,
// and that filled up (dispatched and fsynced) while the pass went on, is
// not removed on that stale answer: the holds are asked again (a delayed
// message appended meanwhile was deleted). The disk-usage probe of each
// loop iteration stands in for the appends that run concurrently; the
// disk-full check's probes (Open's, then every second) are left out.
func TestRetentionAsksHoldsForSegmentsFilledDuringThePass(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.DeferRetention = true
	o.diskCheckPeriod = time.Hour
	var calls atomic.Int32
	var s *Store
	var heldAt atomic.Int64
	heldAt.Store(-1)
	o.diskUsage = func() (float64, error) {
		if calls.Add(1) == 2 {
			// Concurrent writers: a delayed message lands in the active
			// segment, then the segment fills and the log rolls on.
			active := s.log.bases()[len(s.log.bases())-1]
			for i := 0; ; i++ {
				m := testMsg("delayed", 0, i)
				m.Body = bytes.Repeat([]byte("d"), 9000)
				r := mustAppend(t, s, m)
				if i == 0 {
					heldAt.Store(r.PhysicalOffset) // the scheduler holds it from now on
				}
				if r.PhysicalOffset >= active+o.SegmentSize {
					break
				}
			}
			waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
		}
		return 0.99, nil // above the watermark: every full segment is due
	}
	s = openStore(t, o)
	defer s.Close()
	calls.Store(0)         // Open's disk-full check
	fillSegments(t, s, 40) // segment 0 full, segment 1 active
	s.Hold("delay", HoldFunc(func() (int64, bool, error) {
		if p := heldAt.Load(); p >= 0 {
			return p, true, nil
		}
		return 0, false, nil
	}))
	mustRetain(t, s)
	p := heldAt.Load()
	if p < 0 {
		t.Fatal("the hook did not run")
	}
	if _, err := s.ReadMessage(p); err != nil {
		t.Fatalf("held record at %d (the hold reports it) was removed by retention: %v; min offset now %d",
			p, err, s.MinPhysicalOffset())
	}
}
