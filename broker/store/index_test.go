package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// indexRec is a record as the index sees it.
type indexRec struct {
	phys  int64
	topic string
	keys  []string // the first is the UNIQ_KEY
	ts    int64
}

func (r indexRec) record() *dispatchRecord {
	p := message.Properties{message.PropertyUniqKey: r.keys[0]}
	if len(r.keys) > 1 {
		p[message.PropertyKeys] = strings.Join(r.keys[1:], " ")
	}
	return &dispatchRecord{topic: r.topic, props: p.Encode(), phys: r.phys, size: 100, storeTs: r.ts}
}

// testIndex is an index over fake records 100 bytes apart, in segments of
// 1000 bytes, and what a lookup checks candidates against.
type testIndex struct {
	t    *testing.T
	dir  string
	x    *index
	recs map[int64]indexRec
}

const testIndexSeg = 1000

func newTestIndex(t *testing.T, dir string, fs fileSystem, slots uint32) *testIndex {
	t.Helper()
	x, err := openIndex(dir, testIndexSeg, fs)
	if err != nil {
		t.Fatal(err)
	}
	if slots > 0 {
		x.slots = slots
	}
	return &testIndex{t: t, dir: dir, x: x, recs: make(map[int64]indexRec)}
}

// closedIndex is a test index in a new directory holding records [0, to),
// closed.
func closedIndex(t *testing.T, to int64) *testIndex {
	t.Helper()
	ti := newTestIndex(t, t.TempDir(), osFS{}, 0)
	ti.add(0, to)
	if err := ti.x.close(); err != nil {
		t.Fatal(err)
	}
	return ti
}

// add adds records at phys = from, from+100, ... < to, record i carrying
// UNIQ_KEY "u<phys>", and KEYS "k<phys%300>" and "all".
func (ti *testIndex) add(from, to int64) {
	ti.t.Helper()
	for phys := from; phys < to; phys += 100 {
		r := indexRec{phys: phys, topic: "t", keys: []string{fmt.Sprintf("u%d", phys), fmt.Sprintf("k%d", phys%300), "all"}, ts: 1000 + phys}
		ti.recs[phys] = r
		if err := ti.x.add(r.record(), phys-phys%testIndexSeg); err != nil {
			ti.t.Fatal(err)
		}
	}
	if err := ti.x.commit(to); err != nil {
		ti.t.Fatal(err)
	}
}

// rebuild rebuilds the files of the missing segments from the records
// below start, as the store's recovery does, and activates the index.
func (ti *testIndex) rebuild(missing []int64, start int64) {
	ti.t.Helper()
	for _, base := range missing {
		if err := ti.x.beginRebuild(base); err != nil {
			ti.t.Fatal(err)
		}
		end := min(base+testIndexSeg, start)
		for phys := base; phys < end; phys += 100 {
			if err := ti.x.add(ti.recs[phys].record(), base); err != nil {
				ti.t.Fatal(err)
			}
		}
		if err := ti.x.commit(end); err != nil {
			ti.t.Fatal(err)
		}
		if err := ti.x.endRebuild(start); err != nil {
			ti.t.Fatal(err)
		}
	}
	if err := ti.x.activate(); err != nil {
		ti.t.Fatal(err)
	}
}

func (ti *testIndex) match(topic, key string) func(int64) (bool, error) {
	return func(phys int64) (bool, error) {
		r, ok := ti.recs[phys]
		return ok && r.topic == topic && slices.Contains(r.keys, key), nil
	}
}

// lookup searches segments [0, end) newest first.
func (ti *testIndex) lookup(topic, key string, begin, end int64, max int, logEnd int64) []int64 {
	ti.t.Helper()
	var bases []int64
	for b := (logEnd - 1) / testIndexSeg * testIndexSeg; b >= 0; b -= testIndexSeg {
		bases = append(bases, b)
	}
	got, err := ti.x.lookup(bases, topic, key, begin, end, max, ti.match(topic, key))
	if err != nil {
		ti.t.Fatalf("lookup %s/%s: %v", topic, key, err)
	}
	return got
}

func TestIndexLookup(t *testing.T) {
	// One slot: every key shares one chain, so every lookup walks past
	// entries of other keys, and hashes of other keys that are equal are
	// told apart by the record check.
	for _, slots := range []uint32{1, 0} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			ti := newTestIndex(t, t.TempDir(), osFS{}, slots)
			defer ti.x.close()
			ti.add(0, 2500)
			all := math.MaxInt64
			if got := ti.lookup("t", "u1200", 0, int64(all), 10, 2500); !slices.Equal(got, []int64{1200}) {
				t.Fatalf("u1200 = %v", got)
			}
			// k100 is on 100, 400, 700, ...: newest first, across all three segments.
			if got := ti.lookup("t", "k100", 0, int64(all), 10, 2500); !slices.Equal(got, []int64{2200, 1900, 1600, 1300, 1000, 700, 400, 100}) {
				t.Fatalf("k100 = %v", got)
			}
			if got := ti.lookup("t", "all", 0, int64(all), 3, 2500); !slices.Equal(got, []int64{2400, 2300, 2200}) {
				t.Fatalf("all, max 3 = %v", got)
			}
			if got := ti.lookup("t", "k100", 1000+400, 1000+1300, 10, 2500); !slices.Equal(got, []int64{1300, 1000, 700, 400}) {
				t.Fatalf("k100 in a time range = %v", got)
			}
			if got := ti.lookup("other", "u1200", 0, int64(all), 10, 2500); len(got) != 0 {
				t.Fatalf("another topic = %v", got)
			}
			if got := ti.lookup("t", "missing", 0, int64(all), 10, 2500); len(got) != 0 {
				t.Fatalf("unknown key = %v", got)
			}
			// A hash collision without the key in the record is not a match.
			ti.recs[2400] = indexRec{phys: 2400, topic: "t", keys: []string{"changed"}}
			if got := ti.lookup("t", "all", 0, int64(all), 1, 2500); !slices.Equal(got, []int64{2300}) {
				t.Fatalf("all after the newest record stopped matching = %v", got)
			}
		})
	}
}

func TestIndexReopen(t *testing.T) {
	ti := closedIndex(t, 1500)
	dir := ti.dir
	// A clean reopen: nothing to redo from 1500. Segment 0 is finished
	// (its file is read as it is); segment 1000 continues.
	before, err := os.ReadFile(filepath.Join(dir, segmentName(0)))
	if err != nil {
		t.Fatal(err)
	}
	ti2 := newTestIndex(t, dir, osFS{}, 0)
	ti2.recs = ti.recs
	defer ti2.x.close()
	if missing, err := ti2.x.recover([]int64{0, 1000}, 1500); err != nil || len(missing) != 0 {
		t.Fatalf("recover = %v, %v", missing, err)
	}
	if err := ti2.x.activate(); err != nil {
		t.Fatal(err)
	}
	ti2.add(1500, 2100)
	if got := ti2.lookup("t", "k100", 0, math.MaxInt64, 10, 2100); !slices.Equal(got, []int64{1900, 1600, 1300, 1000, 700, 400, 100}) {
		t.Fatalf("k100 after reopen = %v", got)
	}
	after, err := os.ReadFile(filepath.Join(dir, segmentName(0)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a finished segment's index file changed")
	}
}

// TestIndexLookupDamagedChain: an entry that links forward (a damaged
// file) is an error, not an endless walk.
func TestIndexLookupDamagedChain(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIndex(t, dir, osFS{}, 1)
	ti.add(0, 1100) // finishes segment 0's file
	defer ti.x.close()
	path := filepath.Join(dir, segmentName(0))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 0 (the chain's last) links to entry 5.
	var prev [4]byte
	prev[3] = 6
	if _, err := f.WriteAt(prev[:], indexHeader{slots: 1}.entriesAt()+4); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ti.x.lookup([]int64{0}, "t", "u0", 0, math.MaxInt64, 10, ti.match("t", "u0")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lookup over a forward link = %v, want ErrCorrupt", err)
	}
}

func TestIndexRecoverCutsAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   int64 // written, not synced, after the checkpoint at 1300
	}{
		{"file being written", 1900},                // segment 1000's file has no valid header
		{"file finished past the checkpoint", 2200}, // it was finished when segment 2000 began
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ti := newTestIndex(t, dir, osFS{}, 0)
			ti.add(0, 1300)
			if err := ti.x.sync(); err != nil { // the checkpoint at 1300
				t.Fatal(err)
			}
			ti.add(1300, tc.to)
			ti.x.abandon()
			// As after a power loss: segment 1000's file ends with a torn entry.
			f, err := os.OpenFile(filepath.Join(dir, segmentName(1000)), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(bytes.Repeat([]byte{0xab}, indexEntrySize/2))
			f.Close()

			ti2 := newTestIndex(t, dir, osFS{}, 0)
			ti2.recs = ti.recs
			defer ti2.x.close()
			missing, err := ti2.x.recover([]int64{0, 1000, 2000}, 1300)
			if err != nil || len(missing) != 0 {
				t.Fatalf("recover = %v, %v", missing, err)
			}
			if _, err := os.Stat(filepath.Join(dir, segmentName(2000))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the file of a segment wholly past the start is still there: %v", err)
			}
			if err := ti2.x.activate(); err != nil {
				t.Fatal(err)
			}
			if got := ti2.lookup("t", "all", 0, math.MaxInt64, 100, 2200); !slices.Equal(got, []int64{1200, 1100, 1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0}) {
				t.Fatalf("after recovery to 1300: %v", got)
			}
			// Dispatching again from the start adds each record once.
			ti2.add(1300, 2200)
			if got := ti2.lookup("t", "all", 0, math.MaxInt64, 100, 2200); len(got) != 22 || got[0] != 2100 || got[21] != 0 {
				t.Fatalf("after re-dispatch: %v", got)
			}
			if got := ti2.lookup("t", "u1500", 0, math.MaxInt64, 100, 2200); !slices.Equal(got, []int64{1500}) {
				t.Fatalf("u1500 after re-dispatch: %v", got)
			}
		})
	}
}

func TestIndexRecoverFiles(t *testing.T) {
	ti := closedIndex(t, 3500)
	dir := ti.dir
	// Segment 0 was removed by retention before its index file; segment
	// 1000's file lost its header; segment 2000's file is gone; a stray
	// file is not the index's.
	if err := os.WriteFile(filepath.Join(dir, segmentName(1000)), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, segmentName(2000))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ti2 := newTestIndex(t, dir, osFS{}, 0)
	ti2.recs = ti.recs
	defer ti2.x.close()
	missing, err := ti2.x.recover([]int64{1000, 2000, 3000}, 3500)
	if err != nil || !slices.Equal(missing, []int64{1000, 2000}) {
		t.Fatalf("recover = %v, %v; want [1000 2000] missing", missing, err)
	}
	for name, want := range map[string]bool{segmentName(0): false, segmentName(1000): false, segmentName(3000): true, "notes.txt": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Fatalf("%s exists = %v, want %v", name, err == nil, want)
		}
	}
	ti2.rebuild(missing, 3500)
	if got := ti2.lookup("t", "k100", 1000, math.MaxInt64, 100, 3500); !slices.Equal(got, []int64{3400, 3100, 2800, 2500, 2200, 1900, 1600, 1300, 1000}) {
		t.Fatalf("k100 after rebuild = %v", got)
	}
}

// TestIndexCrashDuringRebuild: a rebuild cut short (the process killed
// while Open rebuilds a missing file) leaves nothing that passes for a
// complete file; the next recovery rebuilds the segment again, including
// the one the recovery start lies in.
func TestIndexCrashDuringRebuild(t *testing.T) {
	ti := closedIndex(t, 2500)
	dir := ti.dir
	for _, b := range []int64{0, 2000} {
		if err := os.Remove(filepath.Join(dir, segmentName(b))); err != nil {
			t.Fatal(err)
		}
	}
	bases := []int64{0, 1000, 2000}
	for _, cut := range []int64{0, 2000} { // killed while rebuilding this one
		ti2 := newTestIndex(t, dir, osFS{}, 0)
		missing, err := ti2.x.recover(bases, 2500)
		if err != nil || !slices.Equal(missing, []int64{0, 2000}) {
			t.Fatalf("recover = %v, %v; want [0 2000] missing", missing, err)
		}
		if err := ti2.x.beginRebuild(cut); err != nil {
			t.Fatal(err)
		}
		for phys := cut; phys < cut+300; phys += 100 {
			if err := ti2.x.add(ti.recs[phys].record(), cut); err != nil {
				t.Fatal(err)
			}
		}
		if err := ti2.x.commit(cut + 300); err != nil {
			t.Fatal(err)
		}
		ti2.x.abandon()
	}
	ti3 := newTestIndex(t, dir, osFS{}, 0)
	ti3.recs = ti.recs
	defer ti3.x.close()
	missing, err := ti3.x.recover(bases, 2500)
	if err != nil || !slices.Equal(missing, []int64{0, 2000}) {
		t.Fatalf("recover after the cut rebuilds = %v, %v; want [0 2000] missing", missing, err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*"+rebuildSuffix)); len(names) != 0 {
		t.Fatalf("half-rebuilt files left: %v", names)
	}
	ti3.rebuild(missing, 2500)
	if got := ti3.lookup("t", "all", 0, math.MaxInt64, 100, 2500); len(got) != 25 || got[0] != 2400 || got[24] != 0 {
		t.Fatalf("after the rebuild: %v", got)
	}
	ti3.add(2500, 2700) // the rebuilt file of the start's segment goes on
	if got := ti3.lookup("t", "u2600", 0, math.MaxInt64, 100, 2700); !slices.Equal(got, []int64{2600}) {
		t.Fatalf("u2600 = %v", got)
	}
}

// wrapFS opens files through the operating system and wraps those whose
// name contains match.
type wrapFS struct {
	match string
	wrap  func(file) file
}

func (w wrapFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	inner, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil || !strings.Contains(name, w.match) {
		return inner, err
	}
	return w.wrap(inner), nil
}

// readFailFS cuts the next commit-log read of at least 4 KiB short and
// fails the read after it, once armed.
type readFailFS struct {
	mu    sync.Mutex
	armed int // 2: cut the next big read short; 1: fail the next read
}

func (f *readFailFS) fs() fileSystem {
	return wrapFS{"commitlog", func(inner file) file { return &hookedFile{file: inner, readAt: f.readAt} }}
}

func (f *readFailFS) readAt(inner file, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.armed == 2 && len(p) >= 4096:
		f.armed = 1
		return inner.ReadAt(p[:len(p)/2], off)
	case f.armed == 1:
		f.armed = 0
		return 0, errors.New("injected EIO")
	}
	return inner.ReadAt(p, off)
}

// hookedFile is a file whose ReadAt or WriteAt, where set, a test's
// fault injection takes over (inner is the real file).
type hookedFile struct {
	file
	readAt, writeAt func(inner file, p []byte, off int64) (int, error)
}

func (h *hookedFile) ReadAt(p []byte, off int64) (int, error) {
	if h.readAt == nil {
		return h.file.ReadAt(p, off)
	}
	return h.readAt(h.file, p, off)
}

func (h *hookedFile) WriteAt(p []byte, off int64) (int, error) {
	if h.writeAt == nil {
		return h.file.WriteAt(p, off)
	}
	return h.writeAt(h.file, p, off)
}

// TestOpenFailsDuringIndexRebuild: a read error while Open rebuilds a
// missing index file fails Open and leaves nothing half built that the
// next Open would trust.
func TestOpenFailsDuringIndexRebuild(t *testing.T) {
	rfs := &readFailFS{}
	o := testOptions(t, SyncFlush)
	o.SegmentSize = 128 << 10
	o.fs = rfs.fs()
	s := openStore(t, o)
	offs := appendBig(t, s, "rb", 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(o.Dir, "keyindex", segmentName(0))); err != nil {
		t.Fatal(err)
	}
	rfs.mu.Lock()
	rfs.armed = 2
	rfs.mu.Unlock()
	if s, err := Open(o); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want the injected read error", err)
	}
	s = openStore(t, o)
	defer s.Close()
	checkKeys(t, s, "rb", offs)
}

// appendBig appends n messages of about 1.2 KiB to queue 0 of topic (KEYS
// "order-<i> k<i%5>") and returns their offsets.
func appendBig(t *testing.T, s *Store, topic string, n int) []int64 {
	t.Helper()
	offs := make([]int64, n)
	for i := range n {
		m := testMsg(topic, 0, i)
		m.Body = bytes.Repeat([]byte{'x'}, 1000)
		offs[i] = mustAppend(t, s, m).PhysicalOffset
	}
	return offs
}

// checkKeys looks up each message appendBig appended by its unique key.
func checkKeys(t *testing.T, s *Store, topic string, offs []int64) {
	t.Helper()
	for i, off := range offs {
		got, err := s.QueryByKey(topic, fmt.Sprintf("order-%d", i), 0, 0, 5)
		if err != nil || !slices.Equal(got, []int64{off}) {
			t.Fatalf("order-%d = %v, %v; want [%d]", i, got, err, off)
		}
	}
}

// failingIndexFS fails writes to index files while fail is set.
type failingIndexFS struct {
	mu       sync.Mutex
	fail     bool
	failures int // writes refused
}

func (f *failingIndexFS) fs() fileSystem {
	return wrapFS{"keyindex", func(inner file) file { return &hookedFile{file: inner, writeAt: f.writeAt} }}
}

func (f *failingIndexFS) writeAt(inner file, p []byte, off int64) (int, error) {
	f.mu.Lock()
	fail := f.fail
	if fail {
		f.failures++
	}
	f.mu.Unlock()
	if fail {
		return 0, errors.New("injected index write error")
	}
	return inner.WriteAt(p, off)
}

// TestIndexWriteFailureRetried: a failed index write stops the dispatch
// there (consume queues hold the records, the dispatch position does not
// move past them); the dispatcher tries again by itself, without another
// append, and writes the index entries once.
func TestIndexWriteFailureRetried(t *testing.T) {
	ffs := &failingIndexFS{}
	o := testOptions(t, SyncFlush)
	o.fs = ffs.fs()
	s := openStore(t, o)
	defer s.Close()
	mustAppend(t, s, testMsg("ix", 0, 1))
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	ffs.mu.Lock()
	ffs.fail = true
	ffs.mu.Unlock()
	for i := 2; i < 5; i++ {
		mustAppend(t, s, testMsg("ix", 0, i))
	}
	waitFor(t, "the dispatch to run", func() bool { lo, hi := s.QueueBounds("ix", 0); return lo == 0 && hi == 4 })
	if s.DispatchedOffset() == s.MaxPhysicalOffset() {
		t.Fatal("the dispatch position moved past records whose index write failed")
	}
	ffs.mu.Lock()
	ffs.fail = false
	ffs.mu.Unlock()
	// No further append: the dispatcher tries again by itself, after up to
	// dispatchRetryMax (the failures above doubled its backoff), so the
	// wait allows a loaded machine several of those.
	testutil.WaitFor(t, 6*dispatchRetryMax, "the retried dispatch", func() bool {
		return s.DispatchedOffset() == s.MaxPhysicalOffset()
	})
	mustAppend(t, s, testMsg("ix", 0, 5))
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	for i := 1; i <= 5; i++ {
		if offs, err := s.QueryByKey("ix", fmt.Sprintf("UNIQ%08d", i), 0, 0, 10); err != nil || len(offs) != 1 {
			t.Fatalf("UNIQ %d: %v, %v; want one offset", i, offs, err)
		}
	}
	if offs, _ := s.QueryByKey("ix", "k1", 0, 0, 10); len(offs) != 1 {
		t.Fatalf("k1 = %v, want one offset (records 1 and 6 carry it, 6 was never sent)", offs)
	}
}

// TestDispatchRetryOutlivesASpareSignal: a dispatch signal that finds
// nothing handed over (the records it announced were taken, and lost, by
// the dispatch that failed) does not cancel the retry of that failure.
func TestDispatchRetryOutlivesASpareSignal(t *testing.T) {
	ffs := &failingIndexFS{fail: true}
	o := testOptions(t, SyncFlush)
	o.fs = ffs.fs()
	s := openStore(t, o)
	defer s.Close()
	mustAppend(t, s, testMsg("ix", 0, 1))
	waitFor(t, "a failed dispatch", func() bool {
		ffs.mu.Lock()
		defer ffs.mu.Unlock()
		return ffs.failures > 0
	})
	s.signalDispatch() // as a writer's second signal for records already taken
	waitFor(t, "the signal to be taken", func() bool { return len(s.dispatchSignal) == 0 })
	ffs.mu.Lock()
	ffs.fail = false
	ffs.mu.Unlock()
	testutil.WaitFor(t, 6*dispatchRetryMax, "the retried dispatch", func() bool {
		return s.DispatchedOffset() == s.MaxPhysicalOffset()
	})
	if offs, err := s.QueryByKey("ix", "UNIQ00000001", 0, 0, 10); err != nil || len(offs) != 1 {
		t.Fatalf("UNIQ 1: %v, %v; want one offset", offs, err)
	}
}

// TestKeyIndexRebuiltAtOpen: a store whose index files are damaged or
// missing, or that has a Pebble index from an earlier version, rebuilds
// them from the log at Open.
func TestKeyIndexRebuiltAtOpen(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.SegmentSize = 128 << 10
	s := openStore(t, o)
	const n = 300
	offs := appendBig(t, s, "rb", n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if offs[n-1] < 2*o.SegmentSize {
		t.Fatalf("the log ends at %d: want at least three segments", offs[n-1])
	}
	idx := filepath.Join(o.Dir, "keyindex")
	if err := os.WriteFile(filepath.Join(idx, segmentName(0)), []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(idx, segmentName(o.SegmentSize))); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(o.Dir, "index")
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, "CURRENT"), []byte("MANIFEST-000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	o.Logger = newBufLogger(&logged)
	s = openStore(t, o)
	defer s.Close()
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the earlier version's index is still there: %v", err)
	}
	if c := strings.Count(logged.String(), "rebuilding the key index"); c != 2 {
		t.Fatalf("rebuilt %d segments' index, want 2:\n%s", c, logged.String())
	}
	checkKeys(t, s, "rb", offs)
	if got, _ := s.QueryByKey("rb", "k3", 0, 0, 1000); len(got) != n/5 {
		t.Fatalf("k3 found %d times, want %d", len(got), n/5)
	}
}

// TestQueryByKeyWhileAppending looks keys up while they are being appended
// and dispatched across segment rolls (run with -race).
func TestQueryByKeyWhileAppending(t *testing.T) {
	o := testOptions(t, AsyncFlush)
	o.SegmentSize, o.MaxMessageSize = 64<<10, 4<<10
	s := openStore(t, o)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for ctx.Err() == nil {
			offs, err := s.QueryByKey("live", "k2", 0, 0, 64)
			if err == nil {
				for _, off := range offs {
					e, rerr := s.ReadMessage(off)
					if rerr != nil || !slices.Contains(message.Keys(e.Properties), "k2") {
						err = fmt.Errorf("offset %d: %v, keys %v", off, rerr, message.Keys(e.Properties))
						break
					}
				}
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	appendFrom(t, s, 4, 200, func(w, i int) *message.Message { return testMsg("live", int32(w), w*1000+i) })
	cancel()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if got, _ := s.QueryByKey("live", "k2", 0, 0, 1000); len(got) != 160 {
		t.Fatalf("k2 found %d times, want 160", len(got))
	}
}
