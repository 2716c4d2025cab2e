package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestSmallerSegmentSizeRefused: a store written with one segment size
// and opened with a smaller one (store.segmentSize changed in the
// config) while its log is still in its first segment. The segment file
// is longer than a segment now; every record past the new segment's end
// would be out of reach. Open must refuse, as RocketMQ refuses to load a
// commit-log file whose length is not its mappedFileSizeCommitLog, or
// keep every record; it must not cut the log at the new size.
func TestSmallerSegmentSizeRefused(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "clean"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			o := testOptions(t, SyncFlush) // 256 KiB segments
			s := openStore(t, o)
			var acked []AppendResult
			for i := 0; s.MaxPhysicalOffset() < o.SegmentSize*3/4; i++ {
				acked = append(acked, mustAppend(t, s, bigMsg("seg", 0, i, 1500)))
			}
			if crash {
				s.halt()
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.SegmentSize = 128 << 10
			s, err := Open(o)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrSegmentSizeChanged) {
					t.Fatalf("Open with a smaller segment size: %v, want ErrCorrupt and ErrSegmentSizeChanged", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			defer s.Close()
			for i, a := range acked {
				e, err := s.ReadMessage(a.PhysicalOffset)
				if err != nil {
					t.Fatalf("acknowledged record %d of %d at %d lost after the segment size changed: %v", i, len(acked), a.PhysicalOffset, err)
				}
				if !bytes.Equal(e.Body, bigMsg("seg", 0, i, 1500).Body) {
					t.Fatalf("record %d at %d holds another body", i, a.PhysicalOffset)
				}
			}
		})
	}
}

// TestQueueEntriesPerFileChange: a store whose consume-queue files were
// written with one store.queueEntriesPerFile, opened with another. Its
// queues must keep their entries and offsets (or Open must refuse): a
// queue that lost entries would hand out the queue offsets of stored
// messages again, and its consumers' committed offsets would point at
// the wrong messages.
func TestQueueEntriesPerFileChange(t *testing.T) {
	for _, c := range []struct{ perFile, n int }{{128, 200}, {32, 200}, {48, 200}, {128, 50}} {
		perFile, n := c.perFile, int64(c.n)
		t.Run(fmt.Sprintf("%d-%d", perFile, n), func(t *testing.T) {
			o := testOptions(t, SyncFlush) // 64 entries a file
			s := openStore(t, o)
			for i := range int(n) {
				mustAppend(t, s, testMsg("cq", 0, i))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			o.QueueEntriesPerFile = perFile
			s, err := Open(o)
			if err != nil && n > 64 {
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrQueueEntriesChanged) {
					t.Fatalf("Open with another queueEntriesPerFile: %v, want ErrCorrupt and ErrQueueEntriesChanged", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Open of a queue within its first file: %v", err)
			}
			defer s.Close()
			if lo, hi := s.QueueBounds("cq", 0); lo != 0 || hi != n {
				t.Fatalf("queue bounds [%d, %d) after queueEntriesPerFile %d, want [0, %d)", lo, hi, perFile, n)
			}
			if r := mustAppend(t, s, testMsg("cq", 0, int(n))); r.QueueOffset != n {
				t.Fatalf("next append got queue offset %d, want %d", r.QueueOffset, n)
			}
		})
	}
}
