package store

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/halfbackmq/halfback/message"
)

// TestBatchFromSegmentStartIntoUnmadeSegment: the log ends exactly at a
// segment's start (a fresh store) and the next segment cannot be made (a
// full disk). A batch that starts the active segment and runs into the
// next one is refused with ErrSegmentNotReady, before it takes offsets;
// the store is not failed.
func TestBatchFromSegmentStartIntoUnmadeSegment(t *testing.T) {
	fs := &faultFS{prepErr: syscall.ENOSPC}
	o := testOptions(t, SyncFlush)
	fs.prepFrom = o.SegmentSize // segment 0 is made, segment 1 cannot be
	o.fs = fs
	s := openStore(t, o)
	defer s.Close()
	waitFor(t, "the preparation to fail", func() bool {
		return errors.Is(preparationFailure(s), syscall.ENOSPC)
	})
	var batch []*message.Message
	for i := 0; i < 5; i++ { // 5 × 60 KiB: past the 256 KiB segment
		batch = append(batch, bigMsg("edge", 0, i, 60<<10))
	}
	_, err := s.AppendBatch(context.Background(), batch)
	if !errors.Is(err, ErrSegmentNotReady) || errors.Is(err, ErrWriteFailed) {
		t.Fatalf("batch from the segment start into a segment that cannot be made = %v, want ErrSegmentNotReady", err)
	}
	if r, err := s.Append(context.Background(), testMsg("edge", 0, 0)); err != nil || r.QueueOffset != 0 {
		t.Fatalf("append after the refusal = %+v, %v; want queue offset 0, no error", r, err)
	}
}
