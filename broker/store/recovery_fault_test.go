package store

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// TestRecoveryFsyncsTheScannedLog checks that recovery after a crash
// fsyncs the records it finds before it takes them as durable: a process
// killed between a write and its fsync leaves records only in the page
// cache, and an OS crash after the restart would take them from
// consumers who read them and checkpoints that counted them. A store that
// cannot fsync them does not open.
func TestRecoveryFsyncsTheScannedLog(t *testing.T) {
	fs := &faultFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	var acked []AppendResult
	for i := range 5 {
		acked = append(acked, mustAppend(t, s, testMsg("f", 0, i)))
	}
	s.halt()
	fs.set(func(f *faultFS) { f.syncErr = syscall.EIO })
	if s, err := Open(o); !errors.Is(err, syscall.EIO) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open after a crash whose log cannot be fsynced = %v, want an error wrapping EIO", err)
	}
	fs.set(func(f *faultFS) { f.syncErr = nil; f.syncCalls = 0 })
	s = openStore(t, o)
	defer s.Close()
	fs.mu.Lock()
	calls := fs.syncCalls
	fs.mu.Unlock()
	if calls == 0 {
		t.Fatal("recovery fsynced no commit-log segment")
	}
	for _, a := range acked {
		if _, err := s.ReadMessage(a.PhysicalOffset); err != nil {
			t.Fatalf("record at %d lost: %v", a.PhysicalOffset, err)
		}
	}
}

// TestRecoveryWritesBackBeforeFsync checks that recovery after a crash
// writes back every byte of the log it scanned before it fsyncs it. After
// a failed fsync earlier in the same boot, Linux keeps the pages it could
// not write in the page cache but marks them clean: the scan finds their
// records intact and an fsync alone writes nothing and succeeds, so the
// records would be taken as durable, later appends acknowledged after
// them, and a power loss would leave a hole before those.
func TestRecoveryWritesBackBeforeFsync(t *testing.T) {
	fs := &faultFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	fillSegments(t, s, 40) // into the second segment
	end := s.MaxPhysicalOffset()
	if end <= o.SegmentSize {
		t.Fatalf("the log ends at %d, in its first segment", end)
	}
	s.halt()
	fs.set(func(f *faultFS) { f.logOps, f.ops = true, nil })
	s = openStore(t, o)
	defer s.Close()
	fs.mu.Lock()
	ops := slices.Clone(fs.ops)
	fs.logOps = false
	fs.mu.Unlock()

	for base := int64(0); base < end; base += o.SegmentSize {
		seg := filepath.Join(o.Dir, "commitlog", segmentName(base))
		want := min(end-base, o.SegmentSize)
		var written [][2]int64 // [from, to) in the file, before its first fsync
		synced := false
		for _, op := range ops {
			if op.name != seg {
				continue
			}
			if op.sync {
				synced = true
				break
			}
			written = append(written, [2]int64{op.off, op.off + op.n})
		}
		if !synced {
			t.Fatalf("recovery did not fsync segment %d, which it scanned", base)
		}
		slices.SortFunc(written, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
		covered := int64(0)
		for _, w := range written {
			if w[0] > covered {
				break
			}
			covered = max(covered, w[1])
		}
		if covered < want {
			t.Fatalf("before its fsync, recovery wrote back [0, %d) of segment %d's scanned [0, %d) (writes %v)", covered, base, want, written)
		}
	}
}

// TestRecoveryLogsALargeRewrite checks that recovery warns, once, with
// its size and range, when it is to write back more than a segment of
// the log: from a checkpoint far behind the end, and from the start
// without one. A rewrite of a few records is not logged.
func TestRecoveryLogsALargeRewrite(t *testing.T) {
	const msg = "recovery writes back and fsyncs a large part of the commit log"
	logged := new(testutil.Buffer) // what the last Open logged
	o := testOptions(t, SyncFlush)
	reopen := func(s *Store) *Store {
		t.Helper()
		s.halt()
		logged = new(testutil.Buffer)
		o.Logger = newBufLogger(logged)
		return openStore(t, o)
	}
	s := openStore(t, o)
	if err := s.checkpoint(false); err != nil { // at 0
		t.Fatal(err)
	}
	fillSegments(t, s, 40) // into the second segment
	end := s.MaxPhysicalOffset()
	if end <= o.SegmentSize {
		t.Fatalf("the log ends at %d, in its first segment", end)
	}
	want := fmt.Sprintf("bytes=%d from=0 to=%d", end, end)
	for _, c := range []struct{ name, why string }{
		{"checkpoint far behind", "far behind"},
		{"no checkpoint", "no usable checkpoint"},
	} {
		if c.why == "no usable checkpoint" {
			if err := os.Remove(s.checkpointPath()); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen(s)
		out := logged.String()
		if n := strings.Count(out, msg); n != 1 || !strings.Contains(out, want) || !strings.Contains(out, c.why) {
			t.Fatalf("%s: recovery of [0, %d) logged %d warnings, want 1 with %q and %q:\n%s", c.name, end, n, want, c.why, out)
		}
	}
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustAppend(t, s, testMsg("small", 0, i))
	}
	s = reopen(s)
	defer s.Close()
	if out := logged.String(); strings.Contains(out, msg) {
		t.Fatalf("recovery of 3 records warned of a large rewrite:\n%s", out)
	}
}
