package store

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// faultFS wraps the OS and fails or blocks commit-log writes and syncs on
// demand: the write-path fault hook.
type faultFS struct {
	mu        sync.Mutex
	writeErr  error
	syncErr   error
	prepErr   error         // fails the writes and allocation of a segment being prepared
	prepFrom  int64         // prepErr spares the segments based below this
	syncGate  chan struct{} // when set, commit-log Sync blocks until it is closed
	syncCalls int
	reads     int // commit-log reads

	directOpenErr  error // fails opening a commit-log file for direct I/O
	directWriteErr error // fails writes through a file opened for direct I/O
	directOpens    int   // commit-log opens for direct I/O, failed or not
	directWrites   int   // writes through them, failed or not

	logOps bool      // record commit-log writes and syncs in ops
	ops    []faultOp // in the order they were called
}

// faultOp is a commit-log WriteAt or Sync call.
type faultOp struct {
	name   string // the file, as opened
	sync   bool   // a Sync; else a WriteAt of n bytes at off
	off, n int64
}

func (f *faultFS) set(fn func(*faultFS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// holdSyncs makes every commit-log Sync block from now until release is
// called, and counts syncCalls from zero. Defer release after deferring
// the store's Close: Close's last fsync would wait for it.
func (f *faultFS) holdSyncs() (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { f.set(func(f *faultFS) { f.syncGate = nil }); close(gate) }) }
	f.set(func(f *faultFS) { f.syncGate = gate; f.syncCalls = 0 })
	return release
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	direct := fsutil.DirectIO != 0 && flag&fsutil.DirectIO != 0 && strings.Contains(name, "commitlog")
	if direct {
		f.mu.Lock()
		f.directOpens++
		err := f.directOpenErr
		f.mu.Unlock()
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	inner, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(name, "commitlog") {
		return inner, nil
	}
	return &faultFile{file: inner, fs: f, name: name, direct: direct}, nil
}

type faultFile struct {
	file
	fs     *faultFS
	name   string // as opened
	direct bool   // opened for direct I/O
}

// preparing reports whether f is a segment still being prepared (opened
// under the temporary name, and not yet renamed to its segment name) that
// prepErr fails (based at prepFrom or later).
func (f *faultFile) preparing() bool {
	if !strings.HasSuffix(f.name, prepSuffix) {
		return false
	}
	f.fs.mu.Lock()
	from := f.fs.prepFrom
	f.fs.mu.Unlock()
	if base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f.name), prepSuffix), 10, 64); err == nil && base < from {
		return false
	}
	_, err := os.Stat(f.name)
	return err == nil
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	if f.fs.logOps {
		f.fs.ops = append(f.fs.ops, faultOp{name: f.name, off: off, n: int64(len(p))})
	}
	err := f.fs.writeErr
	prepErr := f.fs.prepErr
	if f.direct {
		f.fs.directWrites++
		err = cmp.Or(err, f.fs.directWriteErr)
	}
	f.fs.mu.Unlock()
	if prepErr != nil && f.preparing() {
		err = prepErr
	}
	if err != nil {
		return 0, &os.PathError{Op: "write", Path: "commitlog", Err: err}
	}
	return f.file.WriteAt(p, off)
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.reads++
	f.fs.mu.Unlock()
	return f.file.ReadAt(p, off)
}

func (f *faultFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	err := f.fs.prepErr
	f.fs.mu.Unlock()
	if err != nil && f.preparing() {
		return &os.PathError{Op: "fallocate", Path: "commitlog", Err: err}
	}
	return f.file.Allocate(size)
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	err, gate := f.fs.syncErr, f.fs.syncGate
	f.fs.syncCalls++
	if f.fs.logOps {
		f.fs.ops = append(f.fs.ops, faultOp{name: f.name, sync: true})
	}
	f.fs.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: "commitlog", Err: err}
	}
	return f.file.Sync()
}

func TestWriteFaults(t *testing.T) {
	cases := []struct {
		name  string
		flush FlushType
		arm   func(*faultFS)
		cause error
	}{
		{"sync/fsync EIO", SyncFlush, func(f *faultFS) { f.syncErr = syscall.EIO }, syscall.EIO},
		{"sync/write ENOSPC", SyncFlush, func(f *faultFS) { f.writeErr = syscall.ENOSPC }, syscall.ENOSPC},
		{"async/write ENOSPC", AsyncFlush, func(f *faultFS) { f.writeErr = syscall.ENOSPC }, syscall.ENOSPC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := &faultFS{}
			o := testOptions(t, c.flush)
			o.fs = fs
			s := openStore(t, o)
			var acked []AppendResult
			for i := 0; i < 5; i++ {
				acked = append(acked, mustAppend(t, s, testMsg("f", 0, i)))
			}
			fs.set(c.arm)
			_, err := s.Append(context.Background(), testMsg("f", 0, 5))
			if !errors.Is(err, ErrWriteFailed) || !errors.Is(err, c.cause) {
				t.Fatalf("append under fault = %v, want ErrWriteFailed wrapping %v", err, c.cause)
			}
			fs.set(func(f *faultFS) { f.writeErr, f.syncErr = nil, nil })
			if _, err := s.Append(context.Background(), testMsg("f", 0, 6)); !errors.Is(err, ErrWriteFailed) {
				t.Fatalf("append after a failure = %v, want ErrWriteFailed (read-only)", err)
			}
			// Readers keep working.
			waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() >= acked[4].PhysicalOffset+int64(acked[4].Size) })
			if got := readAll(t, s, "f", 0); len(got) != 5 {
				t.Fatalf("read %d acknowledged records after the failure, want 5", len(got))
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Stat(s.abort); err != nil {
				t.Fatalf("abort marker must stay after a write failure: %v", err)
			}
			// Restart without the fault: every acknowledged record is there
			// and the store accepts appends again.
			o.fs = nil
			s = openStore(t, o)
			defer s.Close()
			for _, a := range acked {
				if _, err := s.ReadMessage(a.PhysicalOffset); err != nil {
					t.Fatalf("acknowledged record at %d lost: %v", a.PhysicalOffset, err)
				}
			}
			mustAppend(t, s, testMsg("f", 0, 7))
		})
	}
}

// TestFailedFlushIsSticky checks that after an AsyncFlush fsync failed,
// no later fsync advances the durable offset: Linux may have dropped the
// dirty pages while the page cache still shows them, so a second fsync
// that succeeds proves nothing, and the delay and transaction checkpoints
// (which trust DurableOffset through Flush) would save progress past
// records a power loss takes.
func TestFailedFlushIsSticky(t *testing.T) {
	fs := &faultFS{}
	o := testOptions(t, AsyncFlush)
	o.FlushInterval = time.Hour // the test flushes
	o.fs = fs
	s := openStore(t, o)
	defer s.Close()
	for i := range 5 {
		mustAppend(t, s, testMsg("f", 0, i))
	}
	durable := s.DurableOffset()
	if durable >= s.MaxPhysicalOffset() {
		t.Fatalf("durable offset %d already at the end %d before any flush", durable, s.MaxPhysicalOffset())
	}
	fs.set(func(f *faultFS) { f.syncErr = syscall.EIO })
	if err := s.Flush(); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Flush under fault = %v, want ErrWriteFailed wrapping EIO", err)
	}
	fs.set(func(f *faultFS) { f.syncErr = nil; f.syncCalls = 0 })
	if err := s.Flush(); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("Flush after a failed fsync = %v, want ErrWriteFailed", err)
	}
	if err := s.checkpoint(false); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("checkpoint after a failed fsync = %v, want ErrWriteFailed", err)
	}
	fs.mu.Lock()
	calls := fs.syncCalls
	fs.mu.Unlock()
	if calls != 0 || s.DurableOffset() != durable {
		t.Fatalf("after the failure: %d fsyncs, durable offset %d; want none and %d", calls, s.DurableOffset(), durable)
	}
	if _, err := s.Append(context.Background(), testMsg("f", 0, 5)); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("append after a failed fsync = %v, want ErrWriteFailed", err)
	}
}

// TestIntervalFlushLogsErrors checks that the interval flush logs a
// failure that is not a failed fsync (it leaves the store working, and
// nothing else would report it), while a failed fsync is logged once,
// when it fails the store, and not again at every later flush.
func TestIntervalFlushLogsErrors(t *testing.T) {
	fs := &faultFS{}
	var logged testutil.Buffer
	// SyncFlush, so that moving the written end (below) changes nothing
	// readers or the dispatcher see: they go by the durable end.
	o := testOptions(t, SyncFlush)
	o.fs = fs
	o.Logger = newBufLogger(&logged)
	s := openStore(t, o)
	defer s.Close()
	mustAppend(t, s, testMsg("f", 0, 0))
	durable := s.DurableOffset()

	// A written end past the last segment: the flush cannot find the
	// segment to fsync.
	s.written.Store(s.log.limit() + 1)
	s.intervalFlush()
	s.written.Store(durable)
	if got := strings.Count(logged.String(), "commit-log flush failed"); got != 1 {
		t.Fatalf("a flush that could not find a segment logged %d warnings, want 1:\n%s", got, logged.String())
	}
	if err := s.failure(); err != nil {
		t.Fatalf("a flush that fsynced nothing failed the store: %v", err)
	}

	fs.set(func(f *faultFS) { f.syncErr = syscall.EIO })
	s.written.Store(durable + 1) // one byte to fsync
	for range 3 {
		s.intervalFlush()
	}
	s.written.Store(durable)
	out := logged.String()
	if n, m := strings.Count(out, "store write failed"), strings.Count(out, "commit-log flush failed"); n != 1 || m != 1 {
		t.Fatalf("three flushes after a failed fsync logged %d store failures and %d more flush warnings, want 1 and 0:\n%s", n, m-1, out)
	}
}

// stuckStore opens a SyncFlush store with the given flush timeout whose
// commit-log fsyncs block from now until release (called again, after
// the test, before the store is closed).
func stuckStore(t *testing.T, timeout time.Duration) (s *Store, fs *faultFS, release func()) {
	t.Helper()
	return stuckStoreOn(t, timeout, nil)
}

// stuckStoreOn is stuckStore with its flush timeouts timed by clk (the
// real clock if nil).
func stuckStoreOn(t *testing.T, timeout time.Duration, clk flushClock) (s *Store, fs *faultFS, release func()) {
	t.Helper()
	fs = &faultFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	o.SyncFlushTimeout = timeout
	o.timeouts = clk
	s = openStore(t, o)
	t.Cleanup(func() { s.Close() })
	release = fs.holdSyncs()
	t.Cleanup(release)
	return s, fs, release
}

func TestSyncFlushTimeout(t *testing.T) {
	// The timeouts run on a fake clock: the append after the release must
	// not time out however slowly a loaded machine runs its two fsyncs.
	const timeout = 50 * time.Millisecond
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	s, _, release := stuckStoreOn(t, timeout, clk)
	_, pend, err := s.AppendBatchAsync([]*message.Message{testMsg("slow", 0, 0)}) // queued, its timer armed
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(timeout) // the fsync is held: the batch cannot be answered first
	if err := pend.Wait(context.Background()); !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("append with a stuck fsync = %v, want ErrFlushTimeout", err)
	}
	if s.MaxPhysicalOffset() != 0 {
		t.Fatalf("a record whose fsync has not finished is visible (end %d)", s.MaxPhysicalOffset())
	}
	release()
	r := mustAppend(t, s, testMsg("slow", 0, 1))
	if r.QueueOffset != 1 {
		t.Fatalf("queue offset after the slow flush = %d, want 1", r.QueueOffset)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if got := readAll(t, s, "slow", 0); len(got) != 2 {
		t.Fatalf("read %d records, want 2 (the timed-out one became durable later)", len(got))
	}
}

// TestSyncFlushTimeoutIsPerAppend checks that an append which joins a
// group commit late gets its whole SyncFlushTimeout, not what is left of
// the group's first append's: while one fsync is stuck, B opens the next
// batch and C joins it most of a timeout later; the fsync comes back after
// B's timeout but well within C's. B fails with ErrFlushTimeout, C is
// stored (a false timeout would make its producer send it twice). The
// timeouts run on a fake clock, so that how late a loaded machine wakes a
// goroutine cannot change which append times out.
func TestSyncFlushTimeoutIsPerAppend(t *testing.T) {
	const timeout = 2 * time.Second
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	s, fs, release := stuckStoreOn(t, timeout, clk)

	appendAsync := func(i int) *Pending {
		_, p, err := s.AppendBatchAsync([]*message.Message{testMsg("late", 0, i)})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pendA := appendAsync(0)
	errA := make(chan error, 1)
	go func() { errA <- pendA.Wait(context.Background()) }()
	waitFor(t, "the writer to take A's batch and its fsync to be stuck", func() bool {
		s.mu.Lock()
		taken := s.cur.waiters == 0
		s.mu.Unlock()
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return taken && fs.syncCalls > 0
	})
	clk.Add(timeout / 10) // B's batch starts after A's, so their timers differ
	pendB := appendAsync(1)
	clk.Add(timeout * 9 / 10) // A's batch times out
	cStart := clk.Now()
	pendC := appendAsync(2) // joins B's batch: the writer is still in A's fsync
	clk.Add(timeout / 10)   // B's batch's timer, and B's own timeout, pass
	if err := pendB.Wait(context.Background()); !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("B = %v, want ErrFlushTimeout", err)
	}
	// C's batch has timed out; C waits on a timer of its own, for the
	// rest of its whole timeout.
	errC := make(chan error, 1)
	go func() { errC <- pendC.Wait(context.Background()) }()
	waitFor(t, "C to wait out the rest of its own timeout", func() bool {
		return len(errC) > 0 || slices.Contains(clk.pending(), cStart.Add(timeout))
	})
	release()
	if err := <-errC; err != nil {
		t.Fatalf("C, which joined B's batch %v later and whose fsync came back within its own timeout: %v", timeout*9/10, err)
	}
	if err := <-errA; !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("A, waiting since before its fsync stuck = %v, want ErrFlushTimeout", err)
	}
	// A and B timed out, but the store wrote them: Outcome says so.
	for name, p := range map[string]*Pending{"A": pendA, "B": pendB} {
		if err := p.Outcome(context.Background()); err != nil {
			t.Fatalf("%s's outcome after its fsync came back = %v, want stored", name, err)
		}
	}
}

// TestAppendWaitEndsWithContext checks the two ways an append that
// watches a context stops waiting while its fsync is stuck: its context
// ends (context.Canceled), or its flush timeout passes before the context
// ends (ErrFlushTimeout). Once the fsync comes back, both records are
// stored: neither answer undid an append.
func TestAppendWaitEndsWithContext(t *testing.T) {
	const timeout = 2 * time.Second
	s, fs, release := stuckStore(t, timeout)

	// The append is queued before its wait starts: the cancel below comes
	// long before its flush timeout however slowly the wait is scheduled.
	_, pend, err := s.AppendBatchAsync([]*message.Message{testMsg("ctx", 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- pend.Wait(ctx) }()
	waitFor(t, "the fsync to be stuck", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.syncCalls > 0
	})
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("append whose context was cancelled = %v, want context.Canceled", err)
	}

	long, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	start := time.Now()
	if _, err := s.Append(long, testMsg("ctx", 0, 1)); !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("append with a stuck fsync and a context of a minute = %v, want ErrFlushTimeout", err)
	} else if waited := time.Since(start); waited < timeout {
		t.Fatalf("timed out after %v, before its %v", waited, timeout)
	}

	release()
	if err := pend.Outcome(context.Background()); err != nil {
		t.Fatalf("outcome of the append whose wait was cancelled = %v, want stored", err)
	}
	if r := mustAppend(t, s, testMsg("ctx", 0, 2)); r.QueueOffset != 2 {
		t.Fatalf("queue offset after the two abandoned appends = %d, want 2", r.QueueOffset)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if got := readAll(t, s, "ctx", 0); len(got) != 3 {
		t.Fatalf("read %d records, want 3", len(got))
	}
}

func TestGroupCommitSharesFsync(t *testing.T) {
	fs := &faultFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	defer s.Close()
	fs.set(func(f *faultFS) { f.syncCalls = 0 }) // not the syncs that prepared the segment at Open
	// Hold the first fsync so that the other appends queue up behind it.
	release := fs.holdSyncs()
	defer release()
	var wg sync.WaitGroup
	const writers = 32
	var total int64
	for i := 0; i < writers; i++ {
		n, err := s.checkMessage(testMsg("gc", 0, i))
		if err != nil {
			t.Fatal(err)
		}
		total += int64(n)
	}
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := s.Append(context.Background(), testMsg("gc", 0, i)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	// Every append is encoded, in the held batch or queued behind it (the
	// writer may have gathered all of them before the fsync it holds).
	waitFor(t, "every append to be taken while the fsync is held", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.next == total
	})
	release()
	wg.Wait()
	fs.mu.Lock()
	calls := fs.syncCalls
	fs.mu.Unlock()
	if calls > 3 {
		t.Fatalf("%d appends took %d fsyncs; group commit should need 2", writers, calls)
	}
}
