package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// TestConformance runs one behavioural suite over both flush types.
func TestConformance(t *testing.T) {
	for _, ft := range []FlushType{SyncFlush, AsyncFlush} {
		t.Run(ft.String(), func(t *testing.T) {
			t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, ft) })
			t.Run("Batch", func(t *testing.T) { testBatch(t, ft) })
			t.Run("SegmentRoll", func(t *testing.T) { testSegmentRoll(t, ft) })
			t.Run("CleanReopen", func(t *testing.T) { testCleanReopen(t, ft) })
			t.Run("CrashReopen", func(t *testing.T) { testCrashReopen(t, ft) })
			t.Run("TornTail", func(t *testing.T) { testTornTail(t, ft) })
			t.Run("CorruptTail", func(t *testing.T) { testCorruptTail(t, ft) })
			t.Run("ConcurrentAppend", func(t *testing.T) { testConcurrentAppend(t, ft) })
		})
	}
}

func testAppendAndRead(t *testing.T, ft FlushType) {
	s := openStore(t, testOptions(t, ft))
	defer s.Close()
	var results []AppendResult
	for i := 0; i < 10; i++ {
		results = append(results, mustAppend(t, s, testMsg("orders", int32(i%2), i)))
	}
	for i, r := range results {
		if want := int64(i / 2); r.QueueOffset != want {
			t.Errorf("message %d: queue offset %d, want %d", i, r.QueueOffset, want)
		}
		if i > 0 && r.PhysicalOffset != results[i-1].PhysicalOffset+int64(results[i-1].Size) {
			t.Errorf("message %d: physical offset %d does not follow %d+%d", i, r.PhysicalOffset, results[i-1].PhysicalOffset, results[i-1].Size)
		}
		host, off, err := message.ParseOffsetMsgID(r.MsgID)
		if err != nil || off != r.PhysicalOffset || host != s.opts.StoreHost {
			t.Errorf("message id %s -> %v %d %v", r.MsgID, host, off, err)
		}
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	got := readAll(t, s, "orders", 0)
	if len(got) != 5 {
		t.Fatalf("queue 0 has %d messages, want 5", len(got))
	}
	for j, e := range got {
		i := 2 * j
		want := testMsg("orders", 0, i)
		if !bytes.Equal(e.Body, want.Body) || e.Properties != want.Properties || e.Topic != "orders" || e.QueueOffset != int64(j) {
			t.Errorf("record %d = %+v, want body %q props %q", j, e, want.Body, want.Properties)
		}
		if e.CommitLogOffset != results[i].PhysicalOffset || e.StoreTimestamp != results[i].StoreTimestamp {
			t.Errorf("record %d at %d stored %d, append said %d / %d", j, e.CommitLogOffset, e.StoreTimestamp, results[i].PhysicalOffset, results[i].StoreTimestamp)
		}
	}
	ext, err := s.ReadMessage(results[3].PhysicalOffset)
	if err != nil || string(ext.Body) != string(testMsg("orders", 1, 3).Body) {
		t.Fatalf("ReadMessage = %q, %v", ext.Body, err)
	}
	if _, err := s.ReadMessage(results[3].PhysicalOffset + 1); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("ReadMessage at a non-boundary: %v, want ErrOffsetNotFound", err)
	}

	// Tag filter: only tag1 records of queue 1 (i = 1, 7).
	code := message.TagsCode("tag1")
	r, err := s.GetMessages("orders", 1, 0, GetOptions{Match: func(c int64) bool { return c == code }})
	if err != nil || r.Status != Found || r.Count != 2 || r.NextBeginOffset != 5 {
		t.Fatalf("filtered pull: %+v %v", r, err)
	}
	// Property filter: records of queue 1 whose KEYS hold k1 or k3 (i = 1,
	// 3), then at most one of them, then none (the scan still moves on).
	keysOf := func(want ...string) func(string) bool {
		return func(props string) bool {
			for _, k := range message.Keys(props) {
				if slices.Contains(want, k) {
					return true
				}
			}
			return false
		}
	}
	r, err = s.GetMessages("orders", 1, 0, GetOptions{Filter: keysOf("k1", "k3")})
	if err != nil || r.Status != Found || r.Count != 2 || r.NextBeginOffset != 5 {
		t.Fatalf("property-filtered pull: %+v %v", r, err)
	}
	if recs, err := message.DecodeAll(r.Records); err != nil || len(recs) != 2 ||
		recs[0].QueueOffset != 0 || recs[1].QueueOffset != 1 {
		t.Fatalf("property-filtered pull's records: %+v %v", recs, err)
	}
	r, err = s.GetMessages("orders", 1, 0, GetOptions{Filter: keysOf("k1", "k3"), MaxMessages: 1})
	if err != nil || r.Count != 1 || r.NextBeginOffset != 1 {
		t.Fatalf("property-filtered pull of one: %+v %v", r, err)
	}
	r, err = s.GetMessages("orders", 1, 0, GetOptions{Filter: keysOf("none"), Match: func(c int64) bool { return c == code }})
	if err != nil || r.Status != NoMatchedMessage || r.Count != 0 || len(r.Records) != 0 || r.NextBeginOffset != 5 {
		t.Fatalf("property-filtered pull of nothing: %+v %v", r, err)
	}
	// Pull statuses.
	for _, c := range []struct {
		topic  string
		off    int64
		status GetStatus
		next   int64
	}{
		{"orders", 5, OffsetOverflowOne, 5},
		{"orders", 9, OffsetOverflowBadly, 5},
		{"nothing", 0, NoMatchedLogicQueue, 0},
	} {
		r, err := s.GetMessages(c.topic, 0, c.off, GetOptions{})
		if err != nil || r.Status != c.status || r.NextBeginOffset != c.next {
			t.Errorf("pull %s@%d = %v next %d (%v), want %v next %d", c.topic, c.off, r.Status, r.NextBeginOffset, err, c.status, c.next)
		}
	}

	// Index: by user key, by unique key, newest first, time range.
	offs, err := s.QueryByKey("orders", "k1", 0, 0, 10)
	if err != nil || len(offs) != 2 || offs[0] != results[6].PhysicalOffset || offs[1] != results[1].PhysicalOffset {
		t.Fatalf("QueryByKey k1 = %v, %v; want [%d %d]", offs, err, results[6].PhysicalOffset, results[1].PhysicalOffset)
	}
	offs, err = s.QueryByKey("orders", "UNIQ00000004", 0, 0, 10)
	if err != nil || len(offs) != 1 || offs[0] != results[4].PhysicalOffset {
		t.Fatalf("QueryByKey uniq = %v, %v", offs, err)
	}
	if offs, _ := s.QueryByKey("orders", "k1", 0, results[0].StoreTimestamp-1, 10); len(offs) != 0 {
		t.Fatalf("QueryByKey before any store time = %v, want none", offs)
	}
	if offs, _ := s.QueryByKey("other", "k1", 0, 0, 10); len(offs) != 0 {
		t.Fatalf("QueryByKey on another topic = %v, want none", offs)
	}
}

func testBatch(t *testing.T, ft FlushType) {
	s := openStore(t, testOptions(t, ft))
	defer s.Close()
	var msgs []*message.Message
	for i := 0; i < 50; i++ {
		msgs = append(msgs, testMsg("batch", 0, i))
	}
	res, err := s.AppendBatch(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.QueueOffset != int64(i) {
			t.Fatalf("batch record %d got queue offset %d", i, r.QueueOffset)
		}
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if got := readAll(t, s, "batch", 0); len(got) != 50 {
		t.Fatalf("read %d of 50", len(got))
	}
}

func testSegmentRoll(t *testing.T, ft FlushType) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	body := bytes.Repeat([]byte("x"), 9000)
	var res []AppendResult
	for i := 0; i < 100; i++ { // ~900 KB over 256 KiB segments
		m := testMsg("roll", 0, i)
		m.Body = append([]byte(fmt.Sprintf("%04d", i)), body...)
		res = append(res, mustAppend(t, s, m))
	}
	for _, r := range res {
		if r.PhysicalOffset/o.SegmentSize != (r.PhysicalOffset+int64(r.Size)-1)/o.SegmentSize {
			t.Fatalf("record at %d size %d crosses a segment end", r.PhysicalOffset, r.Size)
		}
	}
	if n := len(segmentFiles(t, o.Dir)); n < 4 {
		t.Fatalf("%d segments, want at least 4", n)
	}
	check := func(s *Store) {
		waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
		got := readAll(t, s, "roll", 0)
		if len(got) != 100 {
			t.Fatalf("read %d of 100 across segments", len(got))
		}
		for i, e := range got {
			if string(e.Body[:4]) != fmt.Sprintf("%04d", i) {
				t.Fatalf("record %d has body prefix %q", i, e.Body[:4])
			}
		}
	}
	check(s)
	s.halt()
	s = openStore(t, o) // recovery scans across segment ends
	defer s.Close()
	check(s)
}

func testCleanReopen(t *testing.T, ft FlushType) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	for i := 0; i < 20; i++ {
		mustAppend(t, s, testMsg("re", 0, i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "abort")); !os.IsNotExist(err) {
		t.Fatalf("abort marker left after clean close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if _, err := s.Append(context.Background(), testMsg("re", 0, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	var logged bytes.Buffer
	o.Logger = newBufLogger(&logged)
	s = openStore(t, o)
	defer s.Close()
	if bytes.Contains(logged.Bytes(), []byte("recovering")) {
		t.Fatalf("clean reopen ran recovery: %s", logged.String())
	}
	if r := mustAppend(t, s, testMsg("re", 0, 20)); r.QueueOffset != 20 {
		t.Fatalf("queue offset after reopen = %d, want 20", r.QueueOffset)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if got := readAll(t, s, "re", 0); len(got) != 21 {
		t.Fatalf("read %d of 21", len(got))
	}
	if offs, _ := s.QueryByKey("re", "order-3", 0, 0, 5); len(offs) != 1 {
		t.Fatalf("index lost across reopen: %v", offs)
	}
}

func testCrashReopen(t *testing.T, ft FlushType) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	for i := 0; i < 30; i++ {
		mustAppend(t, s, testMsg("crash", int32(i%3), i))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	cqFile := filepath.Join(o.Dir, "consumequeue", "crash", "2", fmt.Sprintf("%020d", 0))
	fi, err := os.Stat(cqFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := 30; i < 60; i++ {
		mustAppend(t, s, testMsg("crash", int32(i%3), i))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
	s.halt()
	// As after a power loss: queue 2's entries written since the checkpoint
	// are gone. Recovery must rebuild them from the commit log.
	if err := os.Truncate(cqFile, fi.Size()); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	o.Logger = newBufLogger(&logged)
	s = openStore(t, o)
	defer s.Close()
	if !bytes.Contains(logged.Bytes(), []byte("recovering")) {
		t.Fatalf("crash reopen did not recover: %s", logged.String())
	}
	for q := int32(0); q < 3; q++ {
		got := readAll(t, s, "crash", q)
		if len(got) != 20 {
			t.Fatalf("queue %d has %d records after recovery, want 20", q, len(got))
		}
		for j, e := range got {
			if e.QueueOffset != int64(j) || string(e.Body) != string(testMsg("crash", q, 3*j+int(q)).Body) {
				t.Fatalf("queue %d entry %d: offset %d body %q", q, j, e.QueueOffset, e.Body)
			}
		}
	}
	if r := mustAppend(t, s, testMsg("crash", 2, 62)); r.QueueOffset != 20 {
		t.Fatalf("queue offset after crash = %d, want 20", r.QueueOffset)
	}
	if offs, _ := s.QueryByKey("crash", "order-45", 0, 0, 5); len(offs) != 1 {
		t.Fatalf("index not rebuilt after crash: %v", offs)
	}
}

func testTornTail(t *testing.T, ft FlushType) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	var acked []AppendResult
	for i := 0; i < 10; i++ {
		acked = append(acked, mustAppend(t, s, testMsg("torn", 0, i)))
	}
	waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
	end := s.written.Load()
	s.halt()
	// A torn write: half a record, then garbage.
	rec, _ := message.AppendRecord(nil, testMsg("torn", 0, 10))
	message.SetOffsets(rec, 10, end, 1)
	writeLog(t, o, end, rec[:len(rec)/2])
	s = openStore(t, o)
	defer s.Close()
	if s.MaxPhysicalOffset() != end {
		t.Fatalf("after torn tail the log ends at %d, want %d", s.MaxPhysicalOffset(), end)
	}
	got := readAll(t, s, "torn", 0)
	if len(got) != len(acked) {
		t.Fatalf("read %d records, want %d", len(got), len(acked))
	}
	if r := mustAppend(t, s, testMsg("torn", 0, 10)); r.PhysicalOffset != end || r.QueueOffset != 10 {
		t.Fatalf("append after truncation at %d/%d, want %d/10", r.PhysicalOffset, r.QueueOffset, end)
	}
}

func testCorruptTail(t *testing.T, ft FlushType) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	var acked []AppendResult
	for i := 0; i < 10; i++ {
		acked = append(acked, mustAppend(t, s, testMsg("bad", 0, i)))
	}
	waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
	s.halt()
	// Flip a body byte of record 7: the CRC catches it; 7..9 are dropped.
	seg := segmentFiles(t, o.Dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pos := acked[7].PhysicalOffset + int64(acked[7].Size) - 200
	var b [1]byte
	f.ReadAt(b[:], pos)
	b[0] ^= 0xFF
	f.WriteAt(b[:], pos)
	f.Close()
	os.Remove(filepath.Join(o.Dir, "checkpoint")) // recover from the start
	s = openStore(t, o)
	defer s.Close()
	if got := readAll(t, s, "bad", 0); len(got) != 7 {
		t.Fatalf("read %d records after corruption at 7, want 7", len(got))
	}
	if s.MaxPhysicalOffset() != acked[7].PhysicalOffset {
		t.Fatalf("log ends at %d, want %d", s.MaxPhysicalOffset(), acked[7].PhysicalOffset)
	}
}

func testConcurrentAppend(t *testing.T, ft FlushType) {
	s := openStore(t, testOptions(t, ft))
	defer s.Close()
	const writers, each = 8, 50
	appendFrom(t, s, writers, each, func(w, i int) *message.Message { return testMsg("conc", int32(w%4), w*1000+i) })
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	total := 0
	for q := int32(0); q < 4; q++ {
		got := readAll(t, s, "conc", q)
		seen := map[string]bool{}
		for _, e := range got {
			if seen[string(e.Body)] {
				t.Fatalf("duplicate %q", e.Body)
			}
			seen[string(e.Body)] = true
		}
		total += len(got)
	}
	if total != writers*each {
		t.Fatalf("read %d, want %d", total, writers*each)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	s := openStore(t, testOptions(t, SyncFlush))
	defer s.Close()
	long := make([]byte, message.MaxPropertiesLength+1)
	for i := range long {
		long[i] = 'a'
	}
	cases := []struct {
		name string
		m    *message.Message
		want error
	}{
		{"empty topic", &message.Message{Body: []byte("x")}, ErrBadMessage},
		{"illegal topic", &message.Message{Topic: "../etc", Body: []byte("x")}, ErrBadMessage},
		{"long topic", &message.Message{Topic: string(bytes.Repeat([]byte("t"), 128)), Body: []byte("x")}, ErrBadMessage},
		{"big body", &message.Message{Topic: "t", Body: make([]byte, 64<<10+1)}, ErrMessageTooLarge},
		{"long properties", &message.Message{Topic: "t", Body: []byte("x"), Properties: string(long)}, ErrBadMessage},
		{"negative queue", &message.Message{Topic: "t", QueueID: -1, Body: []byte("x")}, ErrBadMessage},
	}
	for _, c := range cases {
		if _, err := s.Append(context.Background(), c.m); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if s.MaxPhysicalOffset() != 0 {
		t.Fatalf("rejected messages were stored: log end %d", s.MaxPhysicalOffset())
	}
	// A good batch with one bad message stores nothing.
	_, err := s.AppendBatch(context.Background(), []*message.Message{testMsg("t", 0, 1), cases[0].m})
	if !errors.Is(err, ErrBadMessage) || s.MaxPhysicalOffset() != 0 {
		t.Fatalf("batch with a bad message: %v, log end %d", err, s.MaxPhysicalOffset())
	}
}

// A segment the file system cannot hold (a typo in segmentSize) fails
// Open with an error that names SegmentSize, not a bare "no space left on
// device" or "file too large" that reads as a full disk.
func TestSegmentTooLargeForTheFileSystemNamesSegmentSize(t *testing.T) {
	o := testOptions(t, AsyncFlush)
	o.SegmentSize = 1 << 62
	s, err := Open(o)
	if err == nil {
		s.Close()
		t.Fatal("Open with a 4 EiB segment succeeded")
	}
	if !strings.Contains(err.Error(), "SegmentSize 4611686018427387904") {
		t.Fatalf("Open with a 4 EiB segment: %v; want an error naming SegmentSize", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: "x", SegmentSize: -1},
		{Dir: "x", SegmentSize: 1 << 20, MaxMessageSize: 4 << 20},
		{Dir: "x", DiskMaxUsedRatio: 1.5},
		{Dir: "x", DiskFullRatio: 1.01},
		{Dir: "x", DiskFullRatio: -0.5},
		{Dir: "x", SyncFlushTimeout: -time.Second},
		{Dir: "x", FlushType: FlushType(7)},
		// Its files' size, QueueEntriesPerFile*20, wrapped to 0: the
		// dispatcher looped forever on the first message and Close hung.
		{Dir: "x", QueueEntriesPerFile: 1 << 62},
		{Dir: "x", QueueEntriesPerFile: MaxQueueEntriesPerFile + 1},
	} {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	if err := (Options{Dir: "x"}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if err := (Options{Dir: "x", QueueEntriesPerFile: MaxQueueEntriesPerFile}).Validate(); err != nil {
		t.Errorf("QueueEntriesPerFile at its limit: %v", err)
	}
	for in, want := range map[string]FlushType{"SYNC_FLUSH": SyncFlush, "async": AsyncFlush, "Sync": SyncFlush} {
		if got, err := ParseFlushType(in); err != nil || got != want {
			t.Errorf("ParseFlushType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFlushType("bogus"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ParseFlushType(bogus) = %v", err)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	o := testOptions(t, SyncFlush)
	clock := &fakeClock{now: time.UnixMilli(1_000_000)}
	o.Now = clock.Now
	s := openStore(t, o)
	defer s.Close()
	for i := 0; i < 10; i++ {
		mustAppend(t, s, testMsg("ts", 0, i))
		clock.Add(time.Second)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	for ts, want := range map[int64]int64{0: 0, 1_000_000: 0, 1_000_001: 1, 1_004_000: 4, 2_000_000: 10} {
		if got, err := s.OffsetForTimestamp("ts", 0, ts); err != nil || got != want {
			t.Errorf("OffsetForTimestamp(%d) = %d, %v; want %d", ts, got, err, want)
		}
	}
}

func TestQueueEntryAt(t *testing.T) {
	s := openStore(t, testOptions(t, SyncFlush))
	defer s.Close()
	var phys []int64
	for i := range 3 {
		phys = append(phys, mustAppend(t, s, testMsg("qe", 0, i)).PhysicalOffset)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	for off, want := range phys {
		if e, ok, err := s.QueueEntryAt("qe", 0, int64(off)); err != nil || !ok || e.PhysicalOffset != want || e.Size <= 0 {
			t.Errorf("QueueEntryAt(%d) = %+v, %v, %v; want physical offset %d", off, e, ok, err, want)
		}
	}
	for _, c := range []struct {
		topic string
		qid   int32
		off   int64
	}{{"qe", 0, 3}, {"qe", 0, -1}, {"qe", 1, 0}, {"none", 0, 0}} {
		if e, ok, err := s.QueueEntryAt(c.topic, c.qid, c.off); ok || err != nil {
			t.Errorf("QueueEntryAt(%s, %d, %d) = %+v, %v, %v; want none", c.topic, c.qid, c.off, e, ok, err)
		}
	}
}

// segmentFiles lists the commit log's segment files (not one being
// prepared), oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "commitlog", strings.Repeat("[0-9]", 20)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeLog writes b into the commit log's files at physical offset off, as
// a torn or stray write would; b must not cross a segment end.
func writeLog(t testing.TB, o Options, off int64, b []byte) {
	t.Helper()
	path := filepath.Join(o.Dir, "commitlog", segmentName(off-off%o.SegmentSize))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off%o.SegmentSize); err != nil {
		t.Fatal(err)
	}
}

// TestRecordAfterExactBlank checks the roll when a segment's free space is
// exactly a blank header: the blank fills it, and the next record, which
// starts right where the blank ends, must go to the next segment's file,
// not be written on past the end of the full one. (Records of 1,057 bytes
// leave exactly 8 bytes in a 256 KiB segment: 262,136 = 248 × 1,057.)
func TestRecordAfterExactBlank(t *testing.T) {
	const recSize = 1057
	bothFlushTypes(t, func(t *testing.T, ft FlushType) {
		o := testOptions(t, ft)
		if (o.SegmentSize-message.BlankHeaderSize)%recSize != 0 {
			t.Fatalf("segment size %d: records of %d bytes do not leave exactly a blank header", o.SegmentSize, recSize)
		}
		s := openStore(t, o)
		m := testMsg("exact", 0, 0)
		size := func() int {
			n, err := message.SealableRecordSize(&message.Message{Topic: m.Topic, Properties: m.Properties,
				Body: m.Body, BornHost: m.BornHost, StoreHost: s.opts.StoreHost})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		m.Body = append(m.Body, bytes.Repeat([]byte("e"), recSize-size())...)
		if size() != recSize {
			t.Fatalf("record size %d, want %d", size(), recSize)
		}
		perSeg := int((o.SegmentSize - message.BlankHeaderSize) / recSize)
		var acked []AppendResult
		for i := 0; i < perSeg+10; i++ {
			acked = append(acked, mustAppend(t, s, m))
		}
		if got := acked[perSeg].PhysicalOffset; got != o.SegmentSize {
			t.Fatalf("record %d at %d, want the second segment's start %d", perSeg, got, o.SegmentSize)
		}
		checkSegmentSizes(t, o.Dir, o.SegmentSize)
		check := func(when string) {
			t.Helper()
			waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
			if got := readAll(t, s, "exact", 0); len(got) != len(acked) {
				t.Fatalf("%s: read %d records, want %d", when, len(got), len(acked))
			}
			for _, a := range acked {
				if _, err := s.ReadMessage(a.PhysicalOffset); err != nil {
					t.Fatalf("%s: record at %d: %v", when, a.PhysicalOffset, err)
				}
			}
		}
		check("running")
		s.halt() // a crash: recovery scans both segments
		s = openStore(t, o)
		defer s.Close()
		check("after a crash")
	})
}

// TestReadRecordChecksOffset checks that a record read by offset must say
// it is stored there: a recycled segment keeps its earlier life's records
// past a closing blank, inside the readable range, and they must not come
// back (a client can ask for any offset with VIEW_MESSAGE_BY_ID).
func TestReadRecordChecksOffset(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	defer s.Close()
	var acked []AppendResult
	for i := 0; s.MaxPhysicalOffset() < o.SegmentSize-20_000; i++ {
		acked = append(acked, mustAppend(t, s, bigMsg("view", 0, i, 2000)))
	}
	// One that does not fit: segment 0 closes with a blank of 20,000 bytes or so.
	acked = append(acked, mustAppend(t, s, bigMsg("view", 0, len(acked), 30_000)))
	var blank int64 // where segment 0's closing blank starts
	for _, a := range acked {
		if a.PhysicalOffset < o.SegmentSize {
			blank = a.PhysicalOffset + int64(a.Size)
		}
	}
	first := acked[0]
	rec, err := s.ReadRecords(first.PhysicalOffset, int(first.Size))
	if err != nil {
		t.Fatal(err)
	}
	at := blank + message.BlankHeaderSize
	if at+int64(len(rec)) > o.SegmentSize {
		t.Fatalf("no room for an old record after the blank at %d", blank)
	}
	writeLog(t, o, at, rec) // an earlier life's record, as a recycled segment holds
	if _, err := s.ReadRecord(at); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("ReadRecord of an old record at %d = %v, want ErrOffsetNotFound", at, err)
	}
	if _, err := s.ReadMessage(at); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("ReadMessage of an old record at %d = %v, want ErrOffsetNotFound", at, err)
	}
	if _, err := s.ReadRecord(first.PhysicalOffset); err != nil {
		t.Fatalf("ReadRecord of a record where it is stored: %v", err)
	}
}

// TestDispatchFromHandOver: the running dispatcher builds consume queues
// and the index from what the writer hands over, without reading the log
// back, across segment rolls (closing blanks) and with transaction
// records that get no queue entry.
func TestDispatchFromHandOver(t *testing.T) {
	for _, ft := range []FlushType{SyncFlush, AsyncFlush} {
		t.Run(ft.String(), func(t *testing.T) {
			ffs := &faultFS{}
			o := testOptions(t, ft)
			o.SegmentSize, o.MaxMessageSize = 64<<10, 8<<10
			o.fs = ffs
			s := openStore(t, o)
			defer s.Close()
			ffs.set(func(f *faultFS) { f.reads = 0 })
			appendFrom(t, s, 4, 100, func(w, i int) *message.Message {
				m := testMsg("hand", int32(w), w*1000+i)
				m.Body = bytes.Repeat([]byte{'b'}, 500)
				if i%10 == 9 {
					m.SysFlag = message.TransactionPreparedType
				}
				return m
			})
			waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
			if s.MaxPhysicalOffset() < 2*o.SegmentSize {
				t.Fatalf("the log ends at %d: want at least two segment rolls", s.MaxPhysicalOffset())
			}
			ffs.mu.Lock()
			reads := ffs.reads
			ffs.mu.Unlock()
			if reads != 0 {
				t.Fatalf("the dispatcher read the commit log %d times", reads)
			}
			for q := range int32(4) {
				got := readAll(t, s, "hand", q)
				if len(got) != 90 {
					t.Fatalf("queue %d has %d records, want 90 (the prepared ones have no entry)", q, len(got))
				}
				for j, e := range got {
					want := int(q)*1000 + j + j/9 // skips every tenth, the prepared
					if e.QueueOffset != int64(j) || e.Properties != testMsg("hand", q, want).Properties {
						t.Fatalf("queue %d entry %d: offset %d, properties of another message", q, j, e.QueueOffset)
					}
				}
			}
			if dirs, err := os.ReadDir(filepath.Join(o.Dir, "consumequeue")); err != nil || len(dirs) != 1 || dirs[0].Name() != "hand" {
				t.Fatalf("consume queue topics %v, %v; want only hand (a closing blank is no record)", dirs, err)
			}
			for _, i := range []int{0, 1099, 3050} {
				if offs, err := s.QueryByKey("hand", fmt.Sprintf("order-%d", i), 0, 0, 5); err != nil || len(offs) != 1 {
					t.Fatalf("order-%d: %v, %v", i, offs, err)
				}
			}
		})
	}
}

// TestDispatchHandOverBounded: while the dispatcher is held up, the writer
// holds at most handLimit records for it, then drops them; the dispatcher
// reads the log instead and every record is dispatched once, in order.
func TestDispatchHandOverBounded(t *testing.T) {
	o := testOptions(t, AsyncFlush)
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	o.OnDispatch = func(string, int32, int64) {
		once.Do(func() { entered <- struct{}{}; <-block })
	}
	s := openStore(t, o)
	defer s.Close()
	s.handMu.Lock()
	s.handLimit = 100
	s.handMu.Unlock()
	mustAppend(t, s, testMsg("held", 0, 0))
	<-entered
	most := 0
	for i := 1; i <= 303; i++ { // the 101st, 202nd and 303rd find it full and drop it all
		mustAppend(t, s, testMsg("held", 0, i))
		s.handMu.Lock()
		most = max(most, len(s.handed))
		s.handMu.Unlock()
	}
	if most > 100 || most == 0 {
		t.Fatalf("the writer held up to %d records for the dispatcher, want 1..100", most)
	}
	close(block) // nothing is held now: the dispatcher must read the log
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	got := readAll(t, s, "held", 0)
	if len(got) != 304 {
		t.Fatalf("read %d records, want 304", len(got))
	}
	for i, e := range got {
		if e.QueueOffset != int64(i) || string(e.Body) != string(testMsg("held", 0, i).Body) {
			t.Fatalf("entry %d: queue offset %d, body %q", i, e.QueueOffset, e.Body)
		}
	}
}

// TestHandOverMatchesLog: what the writer hands over reads a message's
// properties as decoding the record does, so a re-dispatch from the log
// (after a crash) writes the same entries: here properties whose last
// value runs into a checksum slot without a separator.
func TestHandOverMatchesLog(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	defer s.Close()
	m := testMsg("props", 0, 1)
	m.Properties = "UNIQ_KEY\x01U1\x02TAGS\x01a" + message.PropertyCRC32 + "\x010123456789\x02"
	mustAppend(t, s, m)
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	handed, err := s.cqs.get("props", 0, false).entryAt(0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.ReadMessage(handed.PhysicalOffset)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := message.Property(recordOf(&e).props, message.PropertyTags)
	if want := message.TagsCode(tags); handed.TagsCode != want {
		t.Fatalf("tags code from the hand-over %d, from the record %d", handed.TagsCode, want)
	}
}

// TestAppendBatchEmpty: an empty batch stores nothing and answers at once,
// with no results; a wait function answers the same every time it is
// called.
func TestAppendBatchEmpty(t *testing.T) {
	s := openStore(t, testOptions(t, SyncFlush))
	defer s.Close()
	if res, err := s.AppendBatch(context.Background(), nil); res != nil || err != nil {
		t.Fatalf("AppendBatch(nil) = %v, %v; want nil, nil", res, err)
	}
	res, pend, err := s.AppendBatchAsync(nil)
	if res != nil || err != nil || pend.Wait(context.Background()) != nil || pend.Outcome(context.Background()) != nil {
		t.Fatalf("AppendBatchAsync(nil) = %v, %v", res, err)
	}
	if s.MaxPhysicalOffset() != 0 {
		t.Fatalf("an empty batch moved the log to %d", s.MaxPhysicalOffset())
	}
	_, pend, err = s.AppendBatchAsync([]*message.Message{testMsg("twice", 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := pend.Wait(context.Background()); err != nil {
			t.Fatalf("wait #%d = %v", i+1, err)
		}
	}
	if err := pend.Outcome(context.Background()); err != nil {
		t.Fatalf("outcome = %v", err)
	}
}

// Flush makes what AsyncFlush has written durable at once; under
// SyncFlush an acknowledged append is durable already.
func TestFlushMakesWrittenDurable(t *testing.T) {
	o := testOptions(t, AsyncFlush)
	o.FlushInterval = time.Hour
	s := openStore(t, o)
	defer s.Close()
	r := mustAppend(t, s, testMsg("t", 0, 1))
	end := r.PhysicalOffset + int64(r.Size)
	if d := s.DurableOffset(); d >= end {
		t.Fatalf("durable end %d before Flush, want below %d (the interval is an hour)", d, end)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := s.DurableOffset(); d != end {
		t.Fatalf("durable end %d after Flush, want %d", d, end)
	}

	ss := openStore(t, testOptions(t, SyncFlush))
	defer ss.Close()
	r = mustAppend(t, ss, testMsg("t", 0, 1))
	if d := ss.DurableOffset(); d != r.PhysicalOffset+int64(r.Size) {
		t.Fatalf("SyncFlush: durable end %d after an acknowledged append ending at %d", d, r.PhysicalOffset+int64(r.Size))
	}
	if err := ss.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A record whose born host is an IPv6 address keeps its store timestamp at
// byte 68: OffsetForTimestamp (SEARCH_OFFSET_BY_TIMESTAMP) finds messages
// of producers connected over IPv6 (it read a 64-byte header and failed).
func TestOffsetForTimestampIPv6Producer(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	defer s.Close()
	var stored []int64
	for i := 0; i < 4; i++ {
		m := testMsg("v6", 0, i)
		m.BornHost = netip.MustParseAddrPort("[2001:db8::1]:40000")
		mustAppend(t, s, m)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	for _, e := range readAll(t, s, "v6", 0) {
		stored = append(stored, e.StoreTimestamp)
	}
	off, err := s.OffsetForTimestamp("v6", 0, stored[0])
	if err != nil || off != 0 {
		t.Fatalf("OffsetForTimestamp(first store time) = %d, %v; want 0, nil", off, err)
	}
}

// A pull racing Close (or after it) gets ErrClosed, not an error that
// says the store is corrupt.
func TestReadsAfterCloseAreErrClosed(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	for i := 0; i < 3; i++ {
		mustAppend(t, s, testMsg("c", 0, i))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetMessages("c", 0, 0, GetOptions{})
	if errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrClosed) {
		t.Fatalf("GetMessages after Close: %v; want ErrClosed", err)
	}
}

// A second store on a directory in use is refused (it would take the
// first one's abort marker for a crash and recover the live files); once
// the first has closed, the directory opens again.
func TestOpenRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, FlushType: SyncFlush, SegmentSize: 8 << 20}
	first, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Append(context.Background(), &message.Message{Topic: "t", Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if second, err := Open(o); !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open on %s: %v, want ErrLocked", dir, err)
	}
	// The first store goes on as if nothing happened.
	if _, err := first.Append(context.Background(), &message.Message{Topic: "t", Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(o)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer again.Close()
	if _, hi := again.QueueBounds("t", 0); hi != 2 {
		t.Fatalf("queue holds %d messages, want 2", hi)
	}
}
