package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// cqFS wraps the OS and hooks consume-queue fsyncs: it counts them, can
// fail the next one, and can run a function just before one.
type cqFS struct {
	mu         sync.Mutex
	syncs      int
	failNext   error               // the next consume-queue Sync fails with it
	beforeSync func(f *cqHookFile) // runs (once) before a consume-queue Sync
}

func (c *cqFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil || !strings.Contains(name, "consumequeue") {
		return f, err
	}
	return &cqHookFile{file: f, fs: c}, nil
}

type cqHookFile struct {
	file
	fs *cqFS
}

func (f *cqHookFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs++
	err, hook := f.fs.failNext, f.fs.beforeSync
	f.fs.failNext, f.fs.beforeSync = nil, nil
	f.fs.mu.Unlock()
	if hook != nil {
		hook(f)
	}
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return f.file.Sync()
}

func (c *cqFS) syncCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs
}

// TestFailedQueueSyncIsSticky checks that a consume queue whose fsync
// failed fails the store: Linux may drop the dirty pages of a failed
// fsync while the page cache still shows them, so a later fsync that
// succeeds proves nothing, and a checkpoint after it would record a
// dispatch position whose entries a power loss can take and recovery would
// never rebuild. The store keeps its last good checkpoint, refuses
// appends, and the next Open rebuilds the queue from the commit log.
func TestFailedQueueSyncIsSticky(t *testing.T) {
	fs := &cqFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	defer s.Close()
	appendSome := func(from int) {
		for i := from; i < from+10; i++ {
			mustAppend(t, s, testMsg("t", 0, i))
		}
		waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	}
	appendSome(0)
	if err := s.checkpoint(false); err != nil { // the queue's file and directories are synced
		t.Fatal(err)
	}
	synced := s.DispatchedOffset()
	appendSome(10) // into the same file
	fs.set(func(c *cqFS) { c.failNext = syscall.EIO })
	if err := s.checkpoint(false); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("checkpoint whose consume-queue fsync failed = %v, want ErrWriteFailed wrapping EIO", err)
	}
	before := fs.syncCount()
	if err := s.checkpoint(false); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("checkpoint after a failed consume-queue fsync = %v, want ErrWriteFailed", err)
	}
	if n := fs.syncCount(); n != before {
		t.Fatalf("a checkpoint after the failure synced the queue again (%d fsyncs)", n-before)
	}
	if cp, ok, err := readCheckpoint(s.checkpointPath()); err != nil || !ok || cp.Dispatched != synced {
		t.Fatalf("checkpoint after the failure = %+v, %v, %v; want the one before it, at %d", cp, ok, err, synced)
	}
	if _, err := s.Append(context.Background(), testMsg("t", 0, 20)); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("append after a failed consume-queue fsync = %v, want ErrWriteFailed", err)
	}
	if got := readAll(t, s, "t", 0); len(got) != 20 { // readers keep working
		t.Fatalf("read %d records after the failure, want 20", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(s.abort); err != nil {
		t.Fatalf("abort marker must stay after a failed fsync: %v", err)
	}
	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	if got := readAll(t, s, "t", 0); len(got) != 20 {
		t.Fatalf("read %d records after recovery, want 20", len(got))
	}
	mustAppend(t, s, testMsg("t", 0, 20))
}

// TestCheckpointWhileRetentionDropsQueueFile checks that a checkpoint
// does not fail when retention drops (closes and removes) a queue file
// the checkpoint is about to sync: a removed file needs no fsync.
func TestCheckpointWhileRetentionDropsQueueFile(t *testing.T) {
	fs := &cqFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	defer s.Close()
	for i := range 3 * o.QueueEntriesPerFile { // three files
		mustAppend(t, s, testMsg("t", 0, i))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	q := s.cqs.get("t", 0, false)
	q.mu.RLock()
	first := q.files[0]
	q.mu.RUnlock()
	fs.set(func(c *cqFS) {
		c.beforeSync = func(f *cqHookFile) {
			if f != first.f {
				t.Errorf("first consume-queue file synced is %s, want %s", f.Name(), first.path)
			}
			// What runRetention does after removing a segment, between
			// the checkpoint's listing of the files and its fsync.
			if err := q.dropBefore(int64(o.QueueEntriesPerFile)); err != nil {
				t.Error(err)
			}
		}
	})
	if err := s.checkpoint(false); err != nil {
		t.Fatalf("checkpoint while retention dropped a queue file: %v", err)
	}
	if _, err := os.Stat(first.path); !os.IsNotExist(err) {
		t.Fatalf("dropped file still there: %v", err)
	}
	if lo, _ := s.QueueBounds("t", 0); lo != int64(o.QueueEntriesPerFile) {
		t.Fatalf("queue min %d, want %d", lo, o.QueueEntriesPerFile)
	}
}

// TestCheckpointSyncsNewQueueDirectories checks that a checkpoint fsyncs
// the directory of every consume-queue file created since the last one
// (and the parents of directories created for it) before it records the
// position, and that the dispatcher that created them did not.
func TestCheckpointSyncsNewQueueDirectories(t *testing.T) {
	o := testOptions(t, SyncFlush)
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := events
		events = nil
		return out
	}
	origSync, origWrite := syncDir, writeFileAtomic
	t.Cleanup(func() { syncDir, writeFileAtomic = origSync, origWrite })
	syncDir = func(dir string) error { record("sync " + dir); return origSync(dir) }
	writeFileAtomic = func(path string, data []byte) error {
		record("write " + filepath.Base(path))
		return origWrite(path, data)
	}
	s := openStore(t, o) // after the hooks are in: its goroutines read them
	defer s.Close()

	root := filepath.Join(o.Dir, "consumequeue")
	topicDir := filepath.Join(root, "t")
	qDir := filepath.Join(topicDir, "0")
	checkpoint := func(want ...string) {
		t.Helper()
		waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
		for _, e := range taken() {
			if strings.Contains(e, root) {
				t.Errorf("the dispatcher synced a consume-queue directory itself (%s): that is the checkpoint's job", e)
			}
		}
		if err := s.checkpoint(false); err != nil {
			t.Fatal(err)
		}
		got := taken()
		end := slices.Index(got, "write checkpoint")
		if end < 0 {
			t.Fatalf("checkpoint wrote no checkpoint file: %q", got)
		}
		for _, w := range want {
			if !slices.Contains(got[:end], "sync "+w) {
				t.Errorf("checkpoint did not sync %s before recording its position: %q", w, got)
			}
		}
	}

	mustAppend(t, s, testMsg("t", 0, 0)) // new topic and queue directories, first file
	checkpoint(qDir, topicDir, root)
	for i := 1; i <= o.QueueEntriesPerFile; i++ { // the queue's second file
		mustAppend(t, s, testMsg("t", 0, i))
	}
	checkpoint(qDir)
}

func (c *cqFS) set(fn func(*cqFS)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c)
}

// newTestQueue writes entries 0..n-1 (entry i at commit-log offset
// 100*(i+1), size 100) to a queue of 64 entries per file in dir.
func newTestQueue(t *testing.T, dir string, n int) *consumeQueue {
	t.Helper()
	q, err := openConsumeQueue(dir, 64, osFS{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := q.put(int64(i), QueueEntry{PhysicalOffset: 100 * int64(i+1), Size: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.flush(); err != nil {
		t.Fatal(err)
	}
	return q
}

// TestOpenConsumeQueueEndsAtShortFile: a power loss can keep a queue's
// later file while the unsynced end of the file before it is lost. The
// queue then ends where that file does, and the later files go (recovery
// writes their entries again from the commit log); taking the end from
// the last file would leave a hole of zero entries inside the queue.
func TestOpenConsumeQueueEndsAtShortFile(t *testing.T) {
	dir := t.TempDir()
	q := newTestQueue(t, dir, 100) // files 0 (0..63) and 1 (64..99)
	first, second := q.files[0].path, q.files[1].path
	if err := q.close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(first, 40*QueueEntrySize); err != nil { // entries 40..63 lost
		t.Fatal(err)
	}
	q, err := openConsumeQueue(dir, 64, osFS{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if lo, hi := q.bounds(); lo != 0 || hi != 40 {
		t.Fatalf("queue is [%d, %d), want [0, 40)", lo, hi)
	}
	if _, err := os.Stat(second); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file after the short one is still there (%v)", err)
	}
}

// TestQueueReadNeverServesBytesAShortReadMissed: a read spanning two
// files reuses one buffer; where the second file is short the entries
// must read as zero (invalid), never as the first file's bytes left in
// the buffer, which are other offsets' entries.
func TestQueueReadNeverServesBytesAShortReadMissed(t *testing.T) {
	q := newTestQueue(t, t.TempDir(), 100)
	defer q.close()
	if err := os.Truncate(q.files[1].path, 10*QueueEntrySize); err != nil { // 74..99 gone
		t.Fatal(err)
	}
	es, err := q.read(30, 70)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 70 {
		t.Fatalf("read %d entries, want 70", len(es))
	}
	for j, e := range es {
		off := 30 + int64(j)
		want := QueueEntry{PhysicalOffset: 100 * (off + 1), Size: 100}
		if off >= 74 {
			want = QueueEntry{}
		}
		if e != want {
			t.Fatalf("entry %d = %+v, want %+v", off, e, want)
		}
	}
}
