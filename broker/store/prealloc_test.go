package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// checkSegmentSizes fails unless every segment file in dir is a whole
// segment long with its blocks allocated.
func checkSegmentSizes(t testing.TB, dir string, segSize int64) {
	t.Helper()
	for _, p := range segmentFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != segSize {
			t.Fatalf("segment %s is %d bytes, want %d (preallocated)", filepath.Base(p), fi.Size(), segSize)
		}
		if n, ok := allocatedBytes(fi); ok && n < segSize {
			t.Fatalf("segment %s has %d bytes of blocks allocated, want %d", filepath.Base(p), n, segSize)
		}
	}
}

// checkZeroFrom fails unless the commit log's files hold only zeros from
// physical offset off to the end of its segment.
func checkZeroFrom(t testing.TB, o Options, off int64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(o.Dir, "commitlog", segmentName(off-off%o.SegmentSize)))
	if err != nil {
		t.Fatal(err)
	}
	if rest := b[min(int64(len(b)), off%o.SegmentSize):]; !bytes.Equal(rest, make([]byte, len(rest))) {
		i := bytes.IndexFunc(rest, func(r rune) bool { return r != 0 })
		t.Fatalf("non-zero byte at %d, past the log end %d", off+int64(i), off)
	}
}

// preparedFiles lists the segment files being prepared.
func preparedFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "commitlog", "*"+prepSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bigMsg is a message of about n bytes of body.
func bigMsg(topic string, qid int32, i, n int) *message.Message {
	m := testMsg(topic, qid, i)
	m.Body = append([]byte(fmt.Sprintf("%06d-", i)), bytes.Repeat([]byte{'b'}, n)...)
	return m
}

func bothFlushTypes(t *testing.T, f func(t *testing.T, ft FlushType)) {
	for _, ft := range []FlushType{SyncFlush, AsyncFlush} {
		t.Run(ft.String(), func(t *testing.T) { f(t, ft) })
	}
}

// TestSegmentsPreallocated checks that a segment file is a whole segment
// long from its creation, that the next one is prepared before the active
// one fills, and that nothing half prepared is left behind.
func TestSegmentsPreallocated(t *testing.T) {
	bothFlushTypes(t, func(t *testing.T, ft FlushType) {
		o := testOptions(t, ft)
		// A half-made segment left by a crash during its preparation.
		if err := os.MkdirAll(filepath.Join(o.Dir, "commitlog"), 0o755); err != nil {
			t.Fatal(err)
		}
		stray := filepath.Join(o.Dir, "commitlog", segmentName(o.SegmentSize)+prepSuffix)
		if err := os.WriteFile(stray, []byte("half made"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, o)
		if segs := segmentFiles(t, o.Dir); len(segs) != 1 {
			t.Fatalf("fresh store has segments %v, want the first one", segs)
		}
		checkSegmentSizes(t, o.Dir, o.SegmentSize)
		checkZeroFrom(t, o, 0)
		if b, err := os.ReadFile(stray); err == nil && string(b) == "half made" {
			t.Fatal("Open kept a half-prepared segment")
		}
		var acked []AppendResult
		for i := 0; s.MaxPhysicalOffset() < o.SegmentSize*3/4+4096; i++ {
			acked = append(acked, mustAppend(t, s, bigMsg("pre", 0, i, 2000)))
		}
		// Three quarters into the active segment, the next one is ready.
		waitFor(t, "the next segment to be prepared", func() bool {
			done, err := preparationEnded(s)
			return done && err == nil
		})
		if p := preparedFiles(t, o.Dir); len(p) != 1 || filepath.Base(p[0]) != segmentName(o.SegmentSize)+prepSuffix {
			t.Fatalf("prepared files %v, want the second segment's", p)
		}
		for i := len(acked); s.MaxPhysicalOffset() < 2*o.SegmentSize+4096; i++ {
			acked = append(acked, mustAppend(t, s, bigMsg("pre", 0, i, 2000)))
		}
		if segs := segmentFiles(t, o.Dir); len(segs) != 3 {
			t.Fatalf("segments %v, want 3", segs)
		}
		checkSegmentSizes(t, o.Dir, o.SegmentSize)
		checkZeroFrom(t, o, s.MaxPhysicalOffset())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if p := preparedFiles(t, o.Dir); len(p) != 0 {
			t.Fatalf("Close left %v", p)
		}
		var logged bytes.Buffer
		o.Logger = newBufLogger(&logged)
		s = openStore(t, o)
		defer s.Close()
		if bytes.Contains(logged.Bytes(), []byte("recovering")) {
			t.Fatalf("clean reopen of preallocated segments ran recovery: %s", logged.String())
		}
		if got := readAll(t, s, "pre", 0); len(got) != len(acked) {
			t.Fatalf("read %d records, want %d", len(got), len(acked))
		}
		if r := mustAppend(t, s, testMsg("pre", 0, 0)); r.QueueOffset != int64(len(acked)) {
			t.Fatalf("queue offset after reopen %d, want %d", r.QueueOffset, len(acked))
		}
	})
}

// TestRecoveryIgnoresBytesPastEnd crashes a store and leaves zeros,
// garbage, or valid-looking stale records past the end of its log, and
// checks that recovery finds the end where the acknowledged records stop,
// clears what lies past it, and that a later recovery cannot bring stale
// records back.
func TestRecoveryIgnoresBytesPastEnd(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, o Options, end int64)
	}{
		{"zeros", func(*testing.T, Options, int64) {}},
		{"garbage", func(t *testing.T, o Options, end int64) {
			rng := rand.New(rand.NewPCG(1, 2))
			junk := make([]byte, 5000)
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			writeLog(t, o, end, junk)
			writeLog(t, o, end-end%o.SegmentSize+o.SegmentSize-len64(junk), junk)
		}},
		{"record with its size word zeroed", func(t *testing.T, o Options, end int64) {
			rec, _ := message.AppendSealableRecord(nil, testMsg("tail", 0, 10))
			message.SetOffsets(rec, 10, end, 1)
			message.Seal(rec)
			writeLog(t, o, end+4, rec[4:])
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bothFlushTypes(t, func(t *testing.T, ft FlushType) {
				o := testOptions(t, ft)
				s := openStore(t, o)
				for i := 0; i < 10; i++ {
					mustAppend(t, s, testMsg("tail", 0, i))
				}
				waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
				end := s.written.Load()
				s.halt()
				c.tamper(t, o, end)
				s = openStore(t, o)
				if s.MaxPhysicalOffset() != end {
					t.Fatalf("recovered log ends at %d, want %d", s.MaxPhysicalOffset(), end)
				}
				checkZeroFrom(t, o, end)
				checkSegmentSizes(t, o.Dir, o.SegmentSize)
				if got := readAll(t, s, "tail", 0); len(got) != 10 {
					t.Fatalf("read %d records, want 10", len(got))
				}
				if r := mustAppend(t, s, testMsg("tail", 0, 10)); r.PhysicalOffset != end || r.QueueOffset != 10 {
					t.Fatalf("append after recovery at %d/%d, want %d/10", r.PhysicalOffset, r.QueueOffset, end)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestStaleRecordsNotResurrected is the case zeroing after the end is
// for: records 6..9 reached the disk but record 5 did not, so recovery
// ends the log at 5. A new record 5 of the same size then ends exactly
// where the stale record 6 starts; if the stale records were left in
// place, the next recovery would take them back as valid.
func TestStaleRecordsNotResurrected(t *testing.T) {
	bothFlushTypes(t, func(t *testing.T, ft FlushType) {
		o := testOptions(t, ft)
		s := openStore(t, o)
		var acked []AppendResult
		for i := 0; i < 10; i++ {
			acked = append(acked, mustAppend(t, s, testMsg("stale", 0, i)))
		}
		waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
		s.halt()
		writeLog(t, o, acked[5].PhysicalOffset, make([]byte, 8)) // record 5 never reached the disk
		s = openStore(t, o)
		if got := readAll(t, s, "stale", 0); len(got) != 5 {
			t.Fatalf("first recovery: %d records, want 5", len(got))
		}
		r := mustAppend(t, s, testMsg("stale", 0, 5))
		if r.PhysicalOffset != acked[5].PhysicalOffset || r.Size != acked[5].Size {
			t.Fatalf("new record 5 at %d (%d bytes), want %d (%d bytes)", r.PhysicalOffset, r.Size, acked[5].PhysicalOffset, acked[5].Size)
		}
		end := r.PhysicalOffset + int64(r.Size)
		waitFor(t, "flush", func() bool { return s.durable.Load() == end })
		s.halt()
		s = openStore(t, o)
		defer s.Close()
		if s.MaxPhysicalOffset() != end {
			t.Fatalf("second recovery: log ends at %d, want %d (stale records after it came back)", s.MaxPhysicalOffset(), end)
		}
		if got := readAll(t, s, "stale", 0); len(got) != 6 {
			t.Fatalf("second recovery: %d records, want 6", len(got))
		}
		if _, hi := s.QueueBounds("stale", 0); hi != 6 {
			t.Fatalf("queue max offset %d, want 6", hi)
		}
	})
}

// TestTruncateRemovesLaterSegments ends the log inside the first of three
// segments: the later ones, full of valid records, must go.
func TestTruncateRemovesLaterSegments(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	var acked []AppendResult
	for i := 0; s.MaxPhysicalOffset() < 2*o.SegmentSize+1000; i++ {
		acked = append(acked, mustAppend(t, s, bigMsg("later", 0, i, 2000)))
	}
	s.halt()
	os.Remove(filepath.Join(o.Dir, "checkpoint")) // recover from the start
	writeLog(t, o, acked[3].PhysicalOffset+100, []byte("torn"))
	s = openStore(t, o)
	defer s.Close()
	if end := acked[3].PhysicalOffset; s.MaxPhysicalOffset() != end {
		t.Fatalf("log ends at %d, want %d", s.MaxPhysicalOffset(), end)
	}
	if segs := segmentFiles(t, o.Dir); len(segs) != 1 {
		t.Fatalf("segments %v after truncation into the first, want only it", segs)
	}
	checkZeroFrom(t, o, acked[3].PhysicalOffset)
	if got := readAll(t, s, "later", 0); len(got) != 3 {
		t.Fatalf("read %d records, want 3", len(got))
	}
}

// oldFormat rewrites the commit log as the version before preallocation
// left it: every segment file only as long as what was written to it (a
// full one ends with a blank record's 8-byte header). It returns the
// lengths.
func oldFormat(t *testing.T, o Options) []int64 {
	t.Helper()
	var lens []int64
	for _, p := range segmentFiles(t, o.Dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pos := 0
		for pos+message.BlankHeaderSize <= len(b) {
			size, magic, _ := message.PeekHeader(b[pos:])
			if magic == message.BlankMagicCode {
				pos += message.BlankHeaderSize
				break
			}
			if size <= 0 {
				break
			}
			pos += int(size)
		}
		if err := os.Truncate(p, int64(pos)); err != nil {
			t.Fatal(err)
		}
		lens = append(lens, int64(pos))
	}
	return lens
}

// TestOldFormatSegments opens a log written before segments were
// preallocated, after a clean shutdown and after a crash with a torn tail.
func TestOldFormatSegments(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "clean"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			bothFlushTypes(t, func(t *testing.T, ft FlushType) {
				o := testOptions(t, ft)
				s := openStore(t, o)
				var n int
				for ; s.MaxPhysicalOffset() < 2*o.SegmentSize+o.SegmentSize/3; n++ {
					mustAppend(t, s, bigMsg("old", int32(n%2), n, 1500))
				}
				waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
				end := s.MaxPhysicalOffset()
				if crash {
					s.halt()
				} else if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				lens := oldFormat(t, o)
				if len(lens) != 3 || lens[2] != end-2*o.SegmentSize {
					t.Fatalf("old-format lengths %v, want 3 segments, the last %d long", lens, end-2*o.SegmentSize)
				}
				if crash { // a torn record at the end of the short file
					rec, _ := message.AppendSealableRecord(nil, bigMsg("old", 0, n, 1500))
					message.SetOffsets(rec, 0, end, 1)
					writeLog(t, o, end, rec[:len(rec)/3])
				}
				var logged bytes.Buffer
				o.Logger = newBufLogger(&logged)
				s = openStore(t, o)
				if got := bytes.Contains(logged.Bytes(), []byte("recovering")); got != crash {
					t.Fatalf("recovery ran: %v, want %v: %s", got, crash, logged.String())
				}
				if s.MaxPhysicalOffset() != end {
					t.Fatalf("log ends at %d, want %d", s.MaxPhysicalOffset(), end)
				}
				// The active segment is now a whole one, zeros past the end;
				// the full old ones stay as they were.
				segs := segmentFiles(t, o.Dir)
				for i, p := range segs[:2] {
					if fi, err := os.Stat(p); err != nil || fi.Size() != lens[i] {
						t.Fatalf("old full segment %s changed: %v, %v", p, fi.Size(), err)
					}
				}
				if fi, err := os.Stat(segs[2]); err != nil || fi.Size() != o.SegmentSize {
					t.Fatalf("active old segment not made whole: %v, %v", fi.Size(), err)
				}
				checkZeroFrom(t, o, end)
				waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == end })
				check := func(s *Store) {
					t.Helper()
					for q := int32(0); q < 2; q++ {
						got := readAll(t, s, "old", q)
						if len(got) != (n+1-int(q))/2 {
							t.Fatalf("queue %d: %d records, want %d", q, len(got), (n+1-int(q))/2)
						}
						for j, e := range got {
							if want := bigMsg("old", q, 2*j+int(q), 1500).Body; !bytes.Equal(e.Body, want) {
								t.Fatalf("queue %d record %d: body %q…", q, j, e.Body[:8])
							}
						}
					}
				}
				check(s)
				if r := mustAppend(t, s, bigMsg("old", int32(n%2), n, 1500)); r.PhysicalOffset != end {
					t.Fatalf("append after opening the old log at %d, want %d", r.PhysicalOffset, end)
				}
				n++
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openStore(t, o)
				defer s.Close()
				check(s)
			})
		})
	}
}

// len64 is len as an int64.
func len64(b []byte) int64 { return int64(len(b)) }

// TestRolloverUnderLoad appends from several goroutines across many small
// segments, so that rolls happen while appends queue and while the next
// segment is still being prepared.
func TestRolloverUnderLoad(t *testing.T) {
	bothFlushTypes(t, func(t *testing.T, ft FlushType) {
		o := testOptions(t, ft)
		s := openStore(t, o)
		const writers, each = 8, 150
		appendFrom(t, s, writers, each, func(w, i int) *message.Message {
			return bigMsg("roll", int32(w), i, 1000+(i*37)%4000)
		})
		if n := len(segmentFiles(t, o.Dir)); n < 10 {
			t.Fatalf("only %d segments; the test wants many rolls", n)
		}
		checkSegmentSizes(t, o.Dir, o.SegmentSize)
		check := func(s *Store) {
			t.Helper()
			waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
			for w := int32(0); w < writers; w++ {
				got := readAll(t, s, "roll", w)
				if len(got) != each {
					t.Fatalf("writer %d: %d records, want %d", w, len(got), each)
				}
				for i, e := range got {
					if want := bigMsg("roll", w, i, 1000+(i*37)%4000).Body; !bytes.Equal(e.Body, want) {
						t.Fatalf("writer %d record %d: body %q…", w, i, e.Body[:8])
					}
				}
			}
		}
		check(s)
		s.halt()
		s = openStore(t, o) // recovery scans across the rolls
		defer s.Close()
		check(s)
	})
}

// TestPreparationFailure fails the preparation of the next segment with a
// full disk. The appends that would start that segment are refused with
// ErrSegmentNotReady, before they take offsets, and the store does not
// fail: once the disk has room again the preparer's next attempt succeeds
// and appends go on, and every acknowledged record survives a restart,
// with queue offsets that leave no hole.
func TestPreparationFailure(t *testing.T) {
	fs := &faultFS{}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	s := openStore(t, o)
	fs.set(func(f *faultFS) { f.prepErr = syscall.ENOSPC })
	var acked []AppendResult
	for i := 0; s.MaxPhysicalOffset() < o.SegmentSize*3/4+4096; i++ {
		acked = append(acked, mustAppend(t, s, bigMsg("full", 0, i, 2000)))
	}
	waitFor(t, "the preparation to fail", func() bool {
		return errors.Is(preparationFailure(s), syscall.ENOSPC)
	})
	// Fill the active segment until an append would start the next one.
	var err error
	for err == nil {
		var r AppendResult
		if r, err = s.Append(context.Background(), bigMsg("full", 0, len(acked), 2000)); err == nil {
			acked = append(acked, r)
		}
	}
	if !errors.Is(err, ErrSegmentNotReady) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriteFailed) {
		t.Fatalf("append into a segment that cannot be made = %v, want ErrSegmentNotReady wrapping ENOSPC, store not failed", err)
	}
	if s.MaxPhysicalOffset() >= o.SegmentSize {
		t.Fatalf("log end %d: a refused append took room past the active segment (%d)", s.MaxPhysicalOffset(), o.SegmentSize)
	}
	for range 3 {
		if _, err := s.Append(context.Background(), bigMsg("full", 0, len(acked), 2000)); !errors.Is(err, ErrSegmentNotReady) {
			t.Fatalf("append again while the disk is full = %v, want ErrSegmentNotReady", err)
		}
	}

	fs.set(func(f *faultFS) { f.prepErr = nil }) // room again
	waitFor(t, "appends to resume", func() bool {
		r, err := s.Append(context.Background(), bigMsg("full", 0, len(acked), 2000))
		if err != nil && !errors.Is(err, ErrSegmentNotReady) {
			t.Fatalf("append after the disk has room = %v", err)
		}
		if err == nil {
			acked = append(acked, r)
		}
		return err == nil
	})
	for s.MaxPhysicalOffset() < o.SegmentSize*2+4096 {
		acked = append(acked, mustAppend(t, s, bigMsg("full", 0, len(acked), 2000)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	for i, a := range acked {
		if a.QueueOffset != int64(i) {
			t.Fatalf("acknowledged record %d has queue offset %d: a refused append took one", i, a.QueueOffset)
		}
		m, err := s.ReadMessage(a.PhysicalOffset)
		if err != nil {
			t.Fatalf("acknowledged record at %d lost: %v", a.PhysicalOffset, err)
		}
		if want := bigMsg("full", 0, i, 2000).Body; !bytes.Equal(m.Body, want) {
			t.Fatalf("record %d at %d: wrong body", i, a.PhysicalOffset)
		}
	}
	got := readAll(t, s, "full", 0)
	if len(got) != len(acked) {
		t.Fatalf("queue holds %d records after the restart, want %d", len(got), len(acked))
	}
	checkSegmentSizes(t, o.Dir, o.SegmentSize)
}

// TestOpenFailsWhenActiveSegmentCannotBePrepared: a fresh store on a full
// disk does not open.
func TestOpenFailsWhenActiveSegmentCannotBePrepared(t *testing.T) {
	fs := &faultFS{prepErr: syscall.ENOSPC}
	o := testOptions(t, SyncFlush)
	o.fs = fs
	if s, err := Open(o); !errors.Is(err, syscall.ENOSPC) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open on a full disk = %v, want ENOSPC", err)
	}
	if p := preparedFiles(t, o.Dir); len(p) != 0 {
		t.Fatalf("failed Open left %v", p)
	}
}

// TestZeroFillDirectIO checks that a new segment's zeros go through a file
// opened for direct I/O where that works, that the fill falls back to the
// page cache where it does not (tmpfs refuses the open; a file system may
// refuse the write) or where the segment is not block aligned, that a real
// write error ends the fill, and that the segment is whole and zero in
// every case that succeeds, even over a file that held other bytes.
func TestZeroFillDirectIO(t *testing.T) {
	cases := []struct {
		name       string
		segSize    int64
		arm        func(*faultFS)
		wantOpens  bool  // an O_DIRECT open is tried
		wantDirect bool  // the zeros went through it
		wantErr    error // the fill fails with this
	}{
		{name: "direct", segSize: 2<<20 + 8192, wantOpens: true, wantDirect: true},
		{name: "open refused", segSize: 2<<20 + 8192, arm: func(f *faultFS) { f.directOpenErr = syscall.EINVAL }, wantOpens: true},
		{name: "write refused", segSize: 2<<20 + 8192, arm: func(f *faultFS) { f.directWriteErr = syscall.EINVAL }, wantOpens: true},
		{name: "write not supported", segSize: 2<<20 + 8192, arm: func(f *faultFS) { f.directWriteErr = syscall.EOPNOTSUPP }, wantOpens: true},
		{name: "buffer not pinned", segSize: 2<<20 + 8192, arm: func(f *faultFS) { f.directWriteErr = syscall.EFAULT }, wantOpens: true},
		{name: "not block aligned", segSize: 1<<20 + 100},
		{name: "write error", segSize: 2<<20 + 8192, arm: func(f *faultFS) { f.directWriteErr = syscall.EIO }, wantOpens: true, wantErr: syscall.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "commitlog")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, segmentName(0))
			// Bytes that are not zeros, as a reused file would hold.
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xAB}, int(tc.segSize)), 0o644); err != nil {
				t.Fatal(err)
			}
			fs := &faultFS{}
			if tc.arm != nil {
				fs.set(tc.arm)
			}
			f, err := fs.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			wantDirect := tc.wantDirect && directIOWorks(t, dir)
			c := &commitLog{dir: dir, segSize: tc.segSize, fs: fs, zeroFill: true}
			err = c.fill(f, 0, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("fill = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.directOpens > 0; got != tc.wantOpens {
				t.Errorf("direct-I/O open tried = %v, want %v", got, tc.wantOpens)
			}
			// A refused direct write is counted once, then the fill goes on
			// through the page cache.
			if got := fs.directWrites > 1; got != wantDirect {
				t.Errorf("zeros written through the direct-I/O file = %v (%d writes), want %v", got, fs.directWrites, wantDirect)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(b)) != tc.segSize {
				t.Fatalf("segment is %d bytes, want %d", len(b), tc.segSize)
			}
			if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("non-zero byte at %d after the fill", i)
			}
		})
	}
}

// directIOWorks reports whether the file system under dir takes direct
// I/O (tmpfs, for one, refuses O_DIRECT), asking it directly. A system
// without a direct-I/O open flag never takes it.
func directIOWorks(t *testing.T, dir string) bool {
	t.Helper()
	if fsutil.DirectIO == 0 {
		return false
	}
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|fsutil.DirectIO, 0o644)
	if err != nil {
		t.Logf("direct I/O under %s: %v; the fill must fall back", dir, err)
		return false
	}
	f.Close()
	return os.Remove(f.Name()) == nil
}

// TestPagePad checks the zero padding that ends each commit-log write on a
// page boundary of its segment file, never past the file's end.
func TestPagePad(t *testing.T) {
	const seg = 1 << 20
	cases := []struct {
		end, segSize int64
		want         int
	}{
		{end: 1, segSize: seg, want: 4095},
		{end: 4095, segSize: seg, want: 1},
		{end: 4096, segSize: seg, want: 0},
		{end: seg + 10, segSize: seg, want: 4086},           // second segment: its own file offsets
		{end: seg, segSize: seg, want: 0},                   // ends at the segment's end
		{end: 10_000 + 9_000, segSize: 10_000, want: 1_000}, // page end past the file end
		{end: 10_000 + 100, segSize: 10_000, want: 3_996},
	}
	for _, c := range cases {
		if got := pagePad(c.end, c.segSize); got != c.want {
			t.Errorf("pagePad(%d, %d) = %d, want %d", c.end, c.segSize, got, c.want)
		}
	}
}

// TestZeroPagesAreAlignedZeros: direct I/O needs the fill's buffer at a
// block-aligned address, and the fill writes it as a segment's bytes.
func TestZeroPagesAreAlignedZeros(t *testing.T) {
	z := zeroPages()
	if len(z) != zeroChunk || cap(z) != zeroChunk {
		t.Fatalf("len %d cap %d, want %d", len(z), cap(z), zeroChunk)
	}
	if addr := uintptr(unsafe.Pointer(&z[0])); addr%directIOAlign != 0 {
		t.Fatalf("buffer at %#x, not %d-aligned", addr, directIOAlign)
	}
	for i, c := range z {
		if c != 0 {
			t.Fatalf("byte %d is %d", i, c)
		}
	}
}
