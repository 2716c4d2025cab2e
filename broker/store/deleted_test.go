package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// goneMsg is message i of the topic the tests delete; its body says which
// life of the topic it belongs to.
func goneMsg(qid int32, life string, i int) *message.Message {
	m := testMsg("gone", qid, i)
	m.Body = []byte(fmt.Sprintf("%s-%d", life, i))
	return m
}

// appendGone appends n old messages to each of the queues 0 and 1 of
// "gone" and one to "kept", and waits for their dispatch.
func appendGone(t *testing.T, s *Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		mustAppend(t, s, goneMsg(0, "old", i))
		mustAppend(t, s, goneMsg(1, "old", i))
		mustAppend(t, s, testMsg("kept", 0, i))
	}
	waitDispatched(t, s)
}

func waitDispatched(t *testing.T, s *Store) {
	t.Helper()
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
}

// checkGone checks that "gone" holds exactly the bodies want in queue 0
// (at queue offsets 0 on) and nothing in queue 1, and that "kept" holds
// keep records.
func checkGone(t *testing.T, s *Store, keep int, want ...string) {
	t.Helper()
	waitDispatched(t, s)
	got := readAll(t, s, "gone", 0)
	if len(got) != len(want) {
		t.Fatalf("gone/0 holds %d records, want %d (%q)", len(got), len(want), want)
	}
	for i, e := range got {
		if string(e.Body) != want[i] || e.QueueOffset != int64(i) {
			t.Fatalf("gone/0 record %d is %q at queue offset %d, want %q at %d", i, e.Body, e.QueueOffset, want[i], i)
		}
	}
	if lo, hi := s.QueueBounds("gone", 0); lo != 0 || hi != int64(len(want)) {
		t.Fatalf("gone/0 bounds [%d,%d), want [0,%d)", lo, hi, len(want))
	}
	if lo, hi := s.QueueBounds("gone", 1); lo != 0 || hi != 0 {
		t.Fatalf("gone/1 bounds [%d,%d), want [0,0)", lo, hi)
	}
	if r, err := s.GetMessages("gone", 1, 0, GetOptions{}); err != nil || r.Status != NoMatchedLogicQueue {
		t.Fatalf("pull of gone/1 = %v, %v; want NO_MATCHED_LOGIC_QUEUE", r.Status, err)
	}
	if got := readAll(t, s, "kept", 0); len(got) != keep {
		t.Fatalf("kept/0 holds %d records, want %d", len(got), keep)
	}
}

// readDeletedFile returns what deleted-topics.json says.
func readDeletedFile(t *testing.T, dir string) map[string]deletedTopic {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "deleted-topics.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]deletedTopic
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeleteTopic deletes a topic with two queues and checks that its
// files go, that reads find nothing, that the next append to it starts
// at queue offset 0, and that no reopen brings the old queues back: not a
// clean one, and not a recovery after a crash that replays the log from a
// checkpoint taken before the deletion.
func TestDeleteTopic(t *testing.T) {
	for _, ft := range []FlushType{SyncFlush, AsyncFlush} {
		t.Run(ft.String(), func(t *testing.T) {
			t.Run("CleanReopen", func(t *testing.T) { testDeleteTopic(t, ft, false) })
			t.Run("CrashReopen", func(t *testing.T) { testDeleteTopic(t, ft, true) })
		})
	}
}

func testDeleteTopic(t *testing.T, ft FlushType, crash bool) {
	o := testOptions(t, ft)
	s := openStore(t, o)
	appendGone(t, s, 0, 5)
	if err := s.checkpoint(false); err != nil { // a crash replays from here
		t.Fatal(err)
	}
	appendGone(t, s, 5, 5)
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "consumequeue", "gone")); !os.IsNotExist(err) {
		t.Fatalf("the deleted topic's consume-queue directory is still there: %v", err)
	}
	for _, q := range s.Queues() {
		if q.Topic == "gone" {
			t.Fatalf("Queues lists %+v", q)
		}
	}
	if r, err := s.GetMessages("gone", 0, 3, GetOptions{}); err != nil || r.Status != NoMatchedLogicQueue || r.Count != 0 {
		t.Fatalf("pull of the deleted queue = %v (%d records), %v; want NO_MATCHED_LOGIC_QUEUE", r.Status, r.Count, err)
	}
	checkGone(t, s, 10)
	if r := mustAppend(t, s, goneMsg(0, "new", 0)); r.QueueOffset != 0 {
		t.Fatalf("first append after the deletion got queue offset %d, want 0", r.QueueOffset)
	}
	checkGone(t, s, 10, "new-0")

	if crash {
		waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
		s.halt()
	} else if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	checkGone(t, s, 10, "new-0")
	if r := mustAppend(t, s, goneMsg(0, "new", 1)); r.QueueOffset != 1 {
		t.Fatalf("append after reopening got queue offset %d, want 1", r.QueueOffset)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	defer s.Close()
	checkGone(t, s, 10, "new-0", "new-1")
}

// TestOverflowOfARecreatedTopic checks where a read past the end of a
// queue sends its reader: to the max for a topic never deleted (as
// RocketMQ since 4.9.4), to the min, 0, for a topic deleted and created
// again, whose running consumers hold offsets of the deleted topic: the
// max would skip the messages the new topic holds already. A reopen
// changes neither.
func TestOverflowOfARecreatedTopic(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	appendGone(t, s, 0, 4) // 4 messages in each of gone/0, gone/1 and kept/0
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	mustAppend(t, s, goneMsg(0, "new", 0))
	mustAppend(t, s, goneMsg(0, "new", 1))
	waitDispatched(t, s)
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			topic     string
			off, next int64
		}{{"gone", 4, 0}, {"kept", 6, 4}} {
			r, err := s.GetMessages(c.topic, 0, c.off, GetOptions{})
			if err != nil || r.Status != OffsetOverflowBadly || r.NextBeginOffset != c.next {
				t.Fatalf("%s: read of %s/0 at %d = %v next %d (%v), want OFFSET_OVERFLOW_BADLY next %d",
					when, c.topic, c.off, r.Status, r.NextBeginOffset, err, c.next)
			}
		}
	}
	check("after the deletion")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	defer s.Close()
	check("after a reopen")
}

// overflowCase is a read past the end of topic/qid at off, and the next
// offset it must be sent to.
type overflowCase struct {
	topic     string
	qid       int32
	off, next int64
}

// checkOverflow reads each case and checks it is told
// OFFSET_OVERFLOW_BADLY with its next offset.
func checkOverflow(t *testing.T, s *Store, when string, cases ...overflowCase) {
	t.Helper()
	for _, c := range cases {
		r, err := s.GetMessages(c.topic, c.qid, c.off, GetOptions{})
		if err != nil || r.Status != OffsetOverflowBadly || r.NextBeginOffset != c.next {
			t.Fatalf("%s: read of %s/%d at %d = %v next %d (%v), want OFFSET_OVERFLOW_BADLY next %d",
				when, c.topic, c.qid, c.off, r.Status, r.NextBeginOffset, err, c.next)
		}
	}
}

// TestOverflowPastTheDeletedMax checks that only an offset a consumer of
// the deleted topic can hold moves to the min of the queue created
// again: one at most the max offset that queue had at the deletion. An
// offset past it is the new topic's own, and moves to the max as for any
// topic. The case that matters: under AsyncFlush a crash loses the last
// records of the topic created again, whose consumers have read into
// them; the min would deliver its whole queue again. The deletion keeps
// the max offsets in deleted-topics.json, so a reopen changes nothing.
func TestOverflowPastTheDeletedMax(t *testing.T) {
	o := testOptions(t, AsyncFlush)
	s := openStore(t, o)
	appendGone(t, s, 0, 4) // gone/0 and gone/1 end at 4
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if got := readDeletedFile(t, o.Dir)["gone"].MaxOffsets; len(got) != 2 || got[0] != 4 || got[1] != 4 {
		t.Fatalf("deleted-topics.json keeps the max offsets %v, want map[0:4 1:4]", got)
	}
	for i := range 2 {
		mustAppend(t, s, goneMsg(0, "new", i))
	}
	mustAppend(t, s, goneMsg(2, "new", 0)) // a queue the deleted topic did not have
	waitDispatched(t, s)
	cases := []overflowCase{
		{"gone", 0, 3, 0}, {"gone", 0, 4, 0}, // the deleted topic's consumers: from the start
		{"gone", 0, 5, 2}, // past the deleted max: to the max
		{"gone", 2, 3, 1}, // no deleted max: to the max
		{"kept", 0, 6, 4}} // never deleted
	checkOverflow(t, s, "after the deletion", cases...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	checkOverflow(t, s, "after a reopen", cases...)

	// The topic created again grows past the deleted max, and a crash
	// loses its last records after a consumer has read them.
	mustAppend(t, s, goneMsg(1, "new", 0))
	var res []AppendResult
	for i := 2; i < 8; i++ {
		res = append(res, mustAppend(t, s, goneMsg(0, "new", i)))
	}
	waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
	s.halt()
	lost := res[4].PhysicalOffset // new-6 and new-7 never reached the disk
	writeLog(t, o, lost, make([]byte, s.written.Load()-lost))
	s = openStore(t, o)
	defer s.Close()
	if _, hi := s.QueueBounds("gone", 0); hi != 6 {
		t.Fatalf("gone/0 ends at %d after the crash, want 6", hi)
	}
	checkOverflow(t, s, "after the crash",
		overflowCase{"gone", 0, 8, 6}, // a consumer that read new-6 and new-7: nothing more lost
		overflowCase{"gone", 1, 4, 0}) // still a deleted topic's consumer
}

// TestOverflowAfterTwoDeletions deletes a topic twice while the first
// deletion is still remembered: a consumer of its first life may still
// run, so each queue's bound is the larger of both lives' max offsets.
func TestOverflowAfterTwoDeletions(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	defer s.Close()
	appendGone(t, s, 0, 4) // first life: gone/0 and gone/1 end at 4
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 { // second life: gone/0 ends at 6, gone/1 has nothing
		mustAppend(t, s, goneMsg(0, "second", i))
	}
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if got := readDeletedFile(t, o.Dir)["gone"].MaxOffsets; len(got) != 2 || got[0] != 6 || got[1] != 4 {
		t.Fatalf("deleted-topics.json keeps the max offsets %v, want map[0:6 1:4]", got)
	}
	mustAppend(t, s, goneMsg(0, "third", 0))
	mustAppend(t, s, goneMsg(1, "third", 0))
	waitDispatched(t, s)
	checkOverflow(t, s, "after the second deletion",
		overflowCase{"gone", 0, 6, 0}, overflowCase{"gone", 0, 7, 1},
		overflowCase{"gone", 1, 4, 0}, overflowCase{"gone", 1, 5, 1})
}

// TestDeletedTopicsFileWithoutMaxOffsets opens a deleted-topics.json
// written before it kept the queues' max offsets: no bound is known, so
// every read past the end of a queue the topic has again moves to its
// min, as before; and a later deletion of the topic keeps not knowing.
func TestDeletedTopicsFileWithoutMaxOffsets(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	appendGone(t, s, 0, 4)
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, goneMsg(0, "new", 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d := readDeletedFile(t, o.Dir)["gone"]
	old := fmt.Sprintf(`{"gone": {"cut": %d, "queuesRemoved": true}}`, d.Cut)
	if err := os.WriteFile(filepath.Join(o.Dir, "deleted-topics.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	defer s.Close()
	checkOverflow(t, s, "after a reopen", overflowCase{"gone", 0, 100, 0})
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if got := readDeletedFile(t, o.Dir)["gone"]; got.MaxOffsets != nil {
		t.Fatalf("a deletion after one with no known bounds keeps the bounds %v, want none", got.MaxOffsets)
	}
	mustAppend(t, s, goneMsg(0, "new", 0))
	waitDispatched(t, s)
	checkOverflow(t, s, "after a second deletion", overflowCase{"gone", 0, 100, 0})
}

// TestDeleteTopicSkipsLateRecords holds the writer after it has written
// and fsynced a record of the topic but before the dispatcher gets it, and
// deletes the topic meanwhile: the record, appended before the deletion,
// must not start a queue of the deleted topic when it is dispatched after.
func TestDeleteTopicSkipsLateRecords(t *testing.T) {
	o := testOptions(t, SyncFlush)
	var shut atomic.Bool
	held, release := make(chan struct{}, 1), make(chan struct{})
	o.OnFlush = func(time.Duration) {
		if shut.CompareAndSwap(true, false) {
			held <- struct{}{}
			<-release
		}
	}
	s := openStore(t, o)
	defer s.Close()
	appendGone(t, s, 0, 3)
	shut.Store(true)
	late := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), goneMsg(0, "old", 3))
		late <- err
	}()
	<-held // written and fsynced, not yet handed to the dispatcher
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	close(release)
	if err := <-late; err != nil {
		t.Fatalf("the late append: %v", err)
	}
	checkGone(t, s, 3)
	if _, err := os.Stat(filepath.Join(o.Dir, "consumequeue", "gone")); !os.IsNotExist(err) {
		t.Fatalf("the late record recreated the deleted topic's directory: %v", err)
	}
	mustAppend(t, s, goneMsg(0, "new", 0))
	checkGone(t, s, 3, "new-0")
}

// TestDeleteTopicWhileBusy deletes a topic again and again while it is
// appended to, read, and checkpointed: no checkpoint may fail (a sync of
// a removed file or directory would fail the store for good), and every
// queue of the topic's last life holds its records at offsets 0 on, after
// a reopen too.
func TestDeleteTopicWhileBusy(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.QueueEntriesPerFile = 8 // many files and directories
	s := openStore(t, o)
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var kept atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.Append(context.Background(), testMsg("churn", int32(w), i)); err != nil {
					errs <- err
					return
				}
				if _, err := s.Append(context.Background(), testMsg("kept", 0, i)); err != nil {
					errs <- err
					return
				}
				kept.Add(1)
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			if err := s.checkpoint(false); err != nil {
				errs <- fmt.Errorf("checkpoint: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			for qid := range int32(2) {
				if _, err := s.GetMessages("churn", qid, 0, GetOptions{}); err != nil {
					errs <- fmt.Errorf("read: %w", err)
					return
				}
			}
		}
	})
	for range 5 {
		waitFor(t, "records of the topic", func() bool {
			_, hi := s.QueueBounds("churn", 0)
			return hi >= 10 || s.failure() != nil
		})
		if err := s.failure(); err != nil {
			t.Fatalf("store failed: %v", err)
		}
		if err := s.DeleteTopic("churn"); err != nil {
			t.Fatalf("DeleteTopic: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.failure(); err != nil {
		t.Fatalf("store failed: %v", err)
	}
	waitDispatched(t, s)
	s.dispatchMu.Lock()
	cut := s.deleted["churn"].Cut
	s.dispatchMu.Unlock()
	check := func() {
		t.Helper()
		for qid := range int32(2) {
			for i, e := range readAll(t, s, "churn", qid) {
				if e.QueueOffset != int64(i) || e.CommitLogOffset < cut {
					t.Fatalf("churn/%d record %d: queue offset %d, commit-log offset %d (cut %d)", qid, i, e.QueueOffset, e.CommitLogOffset, cut)
				}
			}
			if lo, _ := s.QueueBounds("churn", qid); lo != 0 {
				t.Fatalf("churn/%d starts at %d", qid, lo)
			}
		}
		if n := len(readAll(t, s, "kept", 0)); n != int(kept.Load()) {
			t.Fatalf("kept holds %d records, want %d", n, kept.Load())
		}
	}
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	defer s.Close()
	check()
}

// TestDeleteTopicFailures checks both ways a deletion can fail. If it
// cannot be recorded, nothing changes. If the queue files cannot be
// removed once it is, the store fails (no later append may land in them)
// and the next Open removes them.
func TestDeleteTopicFailures(t *testing.T) {
	o := testOptions(t, SyncFlush)
	origWrite, origRemove := writeFileAtomic, removeAll
	t.Cleanup(func() { writeFileAtomic, removeAll = origWrite, origRemove })
	s := openStore(t, o)
	appendGone(t, s, 0, 3)

	writeFileAtomic = func(path string, data []byte) error {
		if filepath.Base(path) == "deleted-topics.json" {
			return syscall.ENOSPC
		}
		return origWrite(path, data)
	}
	if err := s.DeleteTopic("gone"); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrWriteFailed) {
		t.Fatalf("DeleteTopic that cannot record the deletion = %v, want ENOSPC without failing the store", err)
	}
	writeFileAtomic = origWrite
	if r := mustAppend(t, s, goneMsg(0, "old", 3)); r.QueueOffset != 3 {
		t.Fatalf("append after the failed deletion got queue offset %d, want 3", r.QueueOffset)
	}
	waitDispatched(t, s)
	if got := readAll(t, s, "gone", 0); len(got) != 4 {
		t.Fatalf("gone/0 holds %d records after the failed deletion, want 4", len(got))
	}

	removeAll = func(string) error { return syscall.EIO }
	if err := s.DeleteTopic("gone"); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("DeleteTopic that cannot remove the files = %v, want ErrWriteFailed wrapping EIO", err)
	}
	removeAll = origRemove
	if r, err := s.GetMessages("gone", 0, 0, GetOptions{}); err != nil || r.Count != 0 {
		t.Fatalf("pull of the deleted queue returned %d records, %v", r.Count, err)
	}
	if _, err := s.Append(context.Background(), goneMsg(0, "new", 0)); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("append after the failed removal = %v, want ErrWriteFailed", err)
	}
	if d := readDeletedFile(t, o.Dir)["gone"]; d.QueuesRemoved {
		t.Fatalf("the deletion is recorded as done: %+v", d)
	}
	s.Close()
	s = openStore(t, o)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(o.Dir, "consumequeue", "gone")); !os.IsNotExist(err) {
		t.Fatalf("Open left the deleted topic's directory: %v", err)
	}
	if d := readDeletedFile(t, o.Dir)["gone"]; !d.QueuesRemoved {
		t.Fatalf("Open did not record the removal: %+v", d)
	}
	checkGone(t, s, 3)
	mustAppend(t, s, goneMsg(0, "new", 0))
	checkGone(t, s, 3, "new-0")
}

// TestDeleteTopicCutBeyondRecoveredEnd deletes a topic, then loses, as in
// a crash, the records just before the deletion: the log recovered ends
// before the cut, and the topic's next append lands below it. It must be
// dispatched, after this crash and the next.
func TestDeleteTopicCutBeyondRecoveredEnd(t *testing.T) {
	o := testOptions(t, SyncFlush)
	s := openStore(t, o)
	appendGone(t, s, 0, 3)
	lost := s.MaxPhysicalOffset()
	for i := range 3 {
		mustAppend(t, s, testMsg("lost", 0, i))
	}
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	cut := readDeletedFile(t, o.Dir)["gone"].Cut
	s.halt()
	writeLog(t, o, lost, make([]byte, cut-lost)) // the records before the cut never reached the disk
	s = openStore(t, o)
	if r := mustAppend(t, s, goneMsg(0, "new", 0)); r.PhysicalOffset >= cut || r.QueueOffset != 0 {
		t.Fatalf("append after recovery at %d, queue offset %d; want below the cut %d, at 0", r.PhysicalOffset, r.QueueOffset, cut)
	}
	checkGone(t, s, 3, "new-0")
	waitFor(t, "flush", func() bool { return s.durable.Load() == s.written.Load() })
	s.halt()
	s = openStore(t, o)
	defer s.Close()
	checkGone(t, s, 3, "new-0")
}

// TestDeletedTopicForgotten checks that Open keeps a deletion while the
// log holds records below its cut, and forgets it once retention has
// removed them all.
func TestDeletedTopicForgotten(t *testing.T) {
	o, clock := agedOptions(t)
	s := openStore(t, o)
	appendGone(t, s, 0, 3)
	if err := s.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	fillSegments(t, s, 100) // ~4 segments
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	if _, ok := readDeletedFile(t, o.Dir)["gone"]; !ok {
		t.Fatal("the deletion was forgotten while its records are in the log")
	}
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, o)
	defer s.Close()
	if m := readDeletedFile(t, o.Dir); len(m) != 0 {
		t.Fatalf("deletions kept after retention removed their records: %+v", m)
	}
	if lo, hi := s.QueueBounds("gone", 0); lo != 0 || hi != 0 {
		t.Fatalf("gone/0 bounds [%d,%d) after the deletion was forgotten, want [0,0)", lo, hi)
	}
}
