package store

import (
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// Power-loss tests: the store runs on powerFS, the power is cut
// (everything not fsynced is lost, see powerfs_test.go), and the store
// is opened again on the files left.

// powerLoss cuts the power under s, stops it and rolls the files back to
// what was fsynced; the caller opens the store again.
func powerLoss(t *testing.T, s *Store, pfs *powerFS) {
	t.Helper()
	pfs.crash()
	s.halt()
	pfs.revert(t)
}

// appendFiller appends a 9 KB message of topic, numbered i, to fill segments.
func appendFiller(t *testing.T, s *Store, topic string, i int) AppendResult {
	t.Helper()
	m := testMsg(topic, 0, i)
	m.Body = append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte("o"), 9000)...)
	return mustAppend(t, s, m)
}

// checkQueueMatchesLog checks every entry of topic/qid still in the log:
// inside the log, at the record of its queue offset.
func checkQueueMatchesLog(t *testing.T, s *Store, topic string, qid int32) {
	t.Helper()
	q := s.cqs.get(topic, qid, false)
	if q == nil {
		t.Fatalf("queue %s/%d missing", topic, qid)
	}
	lo, hi := q.bounds()
	es, err := q.read(lo, int(hi-lo))
	if err != nil {
		t.Fatalf("queue %s/%d [%d, %d): %v", topic, qid, lo, hi, err)
	}
	end := s.MaxPhysicalOffset()
	for j, e := range es {
		off := lo + int64(j)
		if e.PhysicalOffset < s.MinPhysicalOffset() && e.Size > 0 {
			continue // removed by retention
		}
		if e.Size <= 0 || e.PhysicalOffset+int64(e.Size) > end {
			t.Fatalf("queue %s/%d [%d, %d): entry %d = %+v is not a record of the log (end %d)", topic, qid, lo, hi, off, e, end)
		}
		m, err := s.ReadMessage(e.PhysicalOffset)
		if err != nil || m.QueueOffset != off || m.QueueID != qid {
			t.Fatalf("queue %s/%d: entry %d = %+v holds q%d/%d (%v)", topic, qid, off, e, m.QueueID, m.QueueOffset, err)
		}
	}
}

// TestPowerFSLosesOnlyUnsyncedData checks the model itself: under
// SyncFlush no acknowledged record is lost.
func TestPowerFSLosesOnlyUnsyncedData(t *testing.T) {
	pfs := newPowerFS()
	o := testOptions(t, SyncFlush)
	o.fs = pfs
	s := openStore(t, o)
	var acked []AppendResult
	for i := range 20 {
		acked = append(acked, mustAppend(t, s, testMsg("m", 0, i)))
	}
	powerLoss(t, s, pfs)
	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	for _, a := range acked {
		if _, err := s.ReadMessage(a.PhysicalOffset); err != nil {
			t.Fatalf("acknowledged record at %d lost: %v", a.PhysicalOffset, err)
		}
	}
	if _, hi := s.QueueBounds("m", 0); hi != 20 {
		t.Fatalf("queue ends at %d, want 20", hi)
	}
	checkQueueMatchesLog(t, s, "m", 0)
}

// TestRetentionKeepsSegmentsPastTheCheckpoint: the consume-queue entries
// of a segment's records are fsynced by the next checkpoint, and
// recovery rebuilds them only from the last checkpoint's position on. A
// segment retention removed before a checkpoint passed it (here the
// disk is above DiskMaxUsedRatio, so the segment the writer just left is
// due) would take with it, at a power loss, the entries of its records
// that no checkpoint made durable: a queue whose last records were there
// would go back to a lower max offset and hand out again the queue
// offsets of acknowledged messages a consumer already committed.
func TestRetentionKeepsSegmentsPastTheCheckpoint(t *testing.T) {
	pfs := newPowerFS()
	o := testOptions(t, SyncFlush)
	o.fs = pfs
	o.DeferRetention = true // the test runs retention
	var full atomic.Bool
	o.diskUsage = func() (float64, error) {
		if full.Load() {
			return 0.95, nil // above the watermark: all but the active segment are due
		}
		return 0.10, nil
	}
	s := openStore(t, o)
	// Two messages of "orders" before a checkpoint, three after it, all
	// in segment 0 and acknowledged; a consumer reads the five.
	for j := range 2 {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	i := 0
	for ; s.MaxPhysicalOffset() < o.SegmentSize/2; i++ {
		appendFiller(t, s, "other", i)
	}
	waitDispatched(t, s)
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	for j := 2; j < 5; j++ {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	for ; s.MaxPhysicalOffset() < o.SegmentSize+4096; i++ {
		appendFiller(t, s, "other", i)
	}
	waitDispatched(t, s)
	if got := readAll(t, s, "orders", 0); len(got) != 5 {
		t.Fatalf("consumer read %d orders, want 5", len(got))
	}
	const consumed = 5 // the consumer's committed offset

	full.Store(true)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := readCheckpoint(s.checkpointPath())
	if err != nil || !ok || cp.Dispatched < s.MinPhysicalOffset() {
		t.Fatalf("after retention the log starts at %d, the last checkpoint's position is %d (%v, %v): "+
			"retention removed records whose queue entries no checkpoint made durable", s.MinPhysicalOffset(), cp.Dispatched, ok, err)
	}
	powerLoss(t, s, pfs) // before the next checkpoint

	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	lo, hi := s.QueueBounds("orders", 0)
	r := mustAppend(t, s, testMsg("orders", 0, 100))
	if hi < consumed || r.QueueOffset < consumed {
		t.Fatalf("after the power loss queue orders/0 is [%d, %d) and the next message gets queue offset %d: "+
			"queue offsets of acknowledged, consumed messages are handed out again (consumer committed %d)",
			lo, hi, r.QueueOffset, consumed)
	}
}

// TestQueueHoleAfterPowerLossKeepsAcknowledgedEntries: the dispatcher
// creates a queue's next file when an entry goes past the current one.
// The creation is a directory change that any journal commit makes
// durable, while the entries at the end of the previous file, written
// since the last checkpoint, may be lost: the earlier file is short, the
// later one exists, empty. The queue must end at the hole, and recovery
// write the lost entries again; taking the queue's max from the last
// file made the hole zero entries, on which recovery's searches (which
// assume entries rise with their offsets) raised the queue's min past
// acknowledged messages.
func TestQueueHoleAfterPowerLossKeepsAcknowledgedEntries(t *testing.T) {
	pfs := newPowerFS()
	o, clock := agedOptions(t) // SyncFlush, 64 entries per queue file
	o.fs = pfs
	o.DeferRetention = true
	s := openStore(t, o)
	// orders/0 entries 0..29 in segment 0, entry 30 in segment 1, then a
	// checkpoint: entries 0..30 are durable.
	for j := range 30 {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	for i := 0; s.MaxPhysicalOffset() < o.SegmentSize+4096; i++ {
		appendFiller(t, s, "other", i)
	}
	thirty := mustAppend(t, s, testMsg("orders", 0, 30))
	waitDispatched(t, s)
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	// Retention removes segment 0: the queue's min is 30.
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if min := s.MinPhysicalOffset(); min != o.SegmentSize || thirty.PhysicalOffset < min {
		t.Fatalf("retention left the log at %d, want %d", min, o.SegmentSize)
	}
	// Entries 31..69, acknowledged, after the last checkpoint: the
	// queue's second file (64..) is created.
	for j := 31; j < 70; j++ {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	waitDispatched(t, s)
	if lo, hi := s.QueueBounds("orders", 0); lo != 30 || hi != 70 {
		t.Fatalf("queue is [%d, %d), want [30, 70)", lo, hi)
	}
	powerLoss(t, s, pfs) // the first file keeps entries 0..30; the second exists, empty

	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	lo, hi := s.QueueBounds("orders", 0)
	r, err := s.GetMessages("orders", 0, 30, GetOptions{MaxMessages: 64})
	if err != nil {
		t.Fatal(err)
	}
	if lo != 30 || hi != 70 || r.Status != Found || r.Count != 40 {
		t.Fatalf("after the power loss queue orders/0 is [%d, %d) and a pull at 30 gets %v, %d records (next %d); "+
			"want entries 30..69, all acknowledged", lo, hi, r.Status, r.Count, r.NextBeginOffset)
	}
	checkQueueMatchesLog(t, s, "orders", 0)
}

// asyncPowerLoss appends 100 messages to orders/0 under AsyncFlush,
// flushes and checkpoints, appends 100 more (written, never flushed:
// they end in queue files 1 to 3 of 64 entries), calls before (with the
// power still on) and cuts the power. It returns the store's options for
// the reopen.
func asyncPowerLoss(t *testing.T, before func(s *Store)) Options {
	t.Helper()
	pfs := newPowerFS()
	o := testOptions(t, AsyncFlush) // 64 entries per queue file
	o.FlushInterval = time.Hour     // the test flushes
	o.fs = pfs
	s := openStore(t, o)
	for j := range 100 {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitDispatched(t, s)
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	for j := 100; j < 200; j++ {
		mustAppend(t, s, testMsg("orders", 0, j))
	}
	waitDispatched(t, s)
	if before != nil {
		before(s)
	}
	powerLoss(t, s, pfs)
	o.fs = nil
	return o
}

// checkOrdersAfterAsyncPowerLoss checks the store asyncPowerLoss left:
// the records after the flush are lost (as AsyncFlush allows), so
// orders/0 is [0, 100), a pull across its files returns each record
// once, and the next message gets queue offset 100.
func checkOrdersAfterAsyncPowerLoss(t *testing.T, s *Store) {
	t.Helper()
	if lo, hi := s.QueueBounds("orders", 0); lo != 0 || hi != 100 {
		t.Fatalf("after the power loss queue orders/0 is [%d, %d), want [0, 100)", lo, hi)
	}
	checkQueueMatchesLog(t, s, "orders", 0)
	r, err := s.GetMessages("orders", 0, 60, GetOptions{MaxMessages: 64})
	if err != nil {
		t.Fatal(err)
	}
	exts, err := message.DecodeAll(r.Records)
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != 40 || r.NextBeginOffset != 100 {
		t.Fatalf("a pull at 60 returned %d records, next %d; want 40, next 100", len(exts), r.NextBeginOffset)
	}
	for j, e := range exts {
		if e.QueueOffset != 60+int64(j) {
			t.Fatalf("a pull at 60 returned, as its record %d, the record of queue offset %d", j, e.QueueOffset)
		}
	}
	if res := mustAppend(t, s, testMsg("orders", 0, 200)); res.QueueOffset != 100 {
		t.Fatalf("the next message got queue offset %d, want 100", res.QueueOffset)
	}
}

// TestQueueHoleAfterPowerLossServesNoRecordTwice: the queue files created
// after the checkpoint survive a power loss, empty, while the second
// file keeps only its synced entries (64..99). Reading across the short
// file used to fill its missing entries with the bytes the buffer held
// from the file before, serving records a second time at other offsets.
func TestQueueHoleAfterPowerLossServesNoRecordTwice(t *testing.T) {
	o := asyncPowerLoss(t, nil)
	s := openStore(t, o)
	defer s.Close()
	checkOrdersAfterAsyncPowerLoss(t, s)
}

// TestQueueZeroTailAfterPowerLoss: a file system may commit a file's new
// size before its data, so a power loss leaves the unsynced end of a
// queue file as zeros rather than cut off. Recovery must end the queue
// at the first zero entry rather than keep a hole of them.
func TestQueueZeroTailAfterPowerLoss(t *testing.T) {
	var second string
	o := asyncPowerLoss(t, func(s *Store) {
		q := s.cqs.get("orders", 0, false)
		second = q.files[1].path
	})
	if err := os.Truncate(second, 64*QueueEntrySize); err != nil { // entries 100..127: zeros
		t.Fatal(err)
	}
	s := openStore(t, o)
	defer s.Close()
	checkOrdersAfterAsyncPowerLoss(t, s)
}

// TestQueueEntriesAfterPowerLossStayInsideTheLog: the OS wrote back the
// queue files past the hole (entries 128..199) but not the commit log
// they point into. No entry may point past the log's end after recovery.
func TestQueueEntriesAfterPowerLossStayInsideTheLog(t *testing.T) {
	o := asyncPowerLoss(t, func(s *Store) {
		q := s.cqs.get("orders", 0, false)
		for _, f := range q.files[2:] {
			if err := f.f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	})
	s := openStore(t, o)
	defer s.Close()
	checkOrdersAfterAsyncPowerLoss(t, s)
}

// TestQueueCutByRecoverySurvivesTheNextPowerLoss: recovery cuts a queue
// whose last entries point past the log's end (the OS wrote back the
// queue's file but not the AsyncFlush log it points into). The cut must
// be durable before a checkpoint vouches for the log past it: here
// recovery truncates orders/0, other topics' records fill the space its
// lost entries pointed to, a checkpoint passes them, and the power goes
// again. If the truncation was never fsynced the entries come back, now
// below the checkpoint's position, so the next recovery keeps them and
// orders/0 serves other topics' records at its offsets 100..199.
func TestQueueCutByRecoverySurvivesTheNextPowerLoss(t *testing.T) {
	o := asyncPowerLoss(t, func(s *Store) {
		q := s.cqs.get("orders", 0, false)
		for _, f := range q.files {
			if err := f.f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	})
	pfs := newPowerFS()
	o.fs = pfs
	s := openStore(t, o)
	if lo, hi := s.QueueBounds("orders", 0); lo != 0 || hi != 100 {
		t.Fatalf("after the first power loss orders/0 is [%d, %d), want [0, 100)", lo, hi)
	}
	for j := range 300 {
		mustAppend(t, s, testMsg("other", 0, j))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitDispatched(t, s)
	if err := s.checkpoint(false); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, s, pfs)
	o.fs = nil
	s = openStore(t, o)
	defer s.Close()
	checkQueueMatchesLog(t, s, "orders", 0)
	checkOrdersAfterAsyncPowerLoss(t, s)
}
