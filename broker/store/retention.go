package store

import (
	"errors"
	"time"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// retentionLoop deletes old commit-log segments every RetentionCheckPeriod.
func (s *Store) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RetentionCheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.runRetention(); err != nil {
				s.opts.Logger.Warn("retention failed", "err", err)
			}
		case <-s.stop:
			return
		}
	}
}

// runRetention removes segments, oldest first, while the oldest is older
// than FileReserved or the disk is fuller than DiskMaxUsedRatio (or
// DiskFullRatio, if lower: see tooFull). The active
// segment, any segment not yet wholly dispatched, fsynced and checkpointed
// (it writes a checkpoint for one that is due otherwise), and any segment a
// Hold still needs are never removed; a Mover holding one is
// asked to move its records out first. Consume queue entries and index
// keys pointing into removed segments are dropped (see dropRemoved: a
// removal that failed after its segment left the log is finished by the
// next pass).
func (s *Store) runRetention() error {
	var held []heldAt // asked once per pass (again after a move)
	asked, moved := false, int64(-1)
	// askedAt is the dispatched offset when the holds were asked: they
	// knew every record below it. A segment reaching past it filled while
	// the pass went on, so they are asked again before it goes.
	var askedAt int64
	// A removal an earlier pass left unfinished (it failed after the
	// segment left the log) is finished first: this pass may have no
	// segment to remove, and the next one may be hours away.
	if err := s.dropRemoved(); err != nil {
		return err
	}
	for {
		usage, err := s.diskUsage()
		if err != nil {
			return err
		}
		if s.tooFull(usage) {
			if err := s.log.dropRecycled(); err != nil { // the space first
				return err
			}
		}
		now := s.opts.Now()
		// ready is due but for the checkpoint (see due).
		ready := func(seg *segment, mod time.Time) bool {
			// Only once dispatched and fsynced: under AsyncFlush the
			// dispatcher runs ahead of the interval flush, and a segment
			// removed before it is fsynced is lost if the OS crashes
			// (its consume-queue entries may already be checkpointed).
			if end := seg.base + s.opts.SegmentSize; end > s.dispatched.Load() || end > s.durable.Load() {
				return false
			}
			return now.Sub(mod) > s.opts.FileReserved || s.tooFull(usage)
		}
		// A segment also goes only once a checkpoint is past it. The
		// consume-queue entries of its records are fsynced by a
		// checkpoint, and recovery rebuilds lost ones only from the last
		// checkpoint's position on: removed before that, a power loss
		// would lose the entries of its records for good, and a queue
		// whose last records were there would hand out their queue
		// offsets again.
		due := func(seg *segment, mod time.Time) bool {
			return ready(seg, mod) && seg.base+s.opts.SegmentSize <= s.checkpointed.Load()
		}
		oldest, mod, ok, err := s.log.oldest()
		if err != nil || !ok || !ready(oldest, mod) {
			return err
		}
		if !due(oldest, mod) {
			// Checkpoint now rather than wait up to CheckpointInterval
			// (the segment is dispatched, so this one is past it). A
			// failed store checkpoints no more, so the segment stays;
			// the failure was logged when it happened.
			if err := s.checkpoint(false); err != nil {
				if errors.Is(err, ErrWriteFailed) {
					return nil
				}
				return err
			}
		}
		// Asked outside the log's lock: a hold may take its owner's locks.
		end := oldest.base + s.opts.SegmentSize
		if !asked || end > askedAt {
			askedAt = s.dispatched.Load()
			held, asked = s.askHolds(), true
		}
		if by := holding(held, end); len(by) > 0 {
			if moved != oldest.base && s.moveHeld(by, end) {
				moved, asked = oldest.base, false // once per segment, then ask again
				continue
			}
			if s.holds.warned != oldest.base+1 {
				s.holds.warned = oldest.base + 1
				s.opts.Logger.Warn("retention: keeping a commit-log segment that is due for removal: a hold still needs it",
					"base", oldest.base, "hold", by[0].name, "offset", by[0].lowest, "diskUsage", usage)
			}
			return nil
		}
		base, err := s.log.removeOldest(func(seg *segment, mod time.Time) bool {
			return seg != oldest || !due(seg, mod)
		}, !s.tooFull(usage)) // a fuller disk gets its space back
		if base >= 0 {
			s.opts.Logger.Info("removed commit-log segment", "base", base, "diskUsage", usage)
		}
		// Even when the removal failed: the segment may have left the log
		// before the failure (its file's removal, or the directory's
		// fsync, failed).
		if derr := s.dropRemoved(); err == nil {
			err = derr
		}
		if err != nil || base < 0 {
			return err
		}
	}
}

// dropRemoved drops what points into the segments that left the log
// since it last ran to the end: their index files, the deleted topics
// whose cut retention passed, and the consume-queue entries of their
// records (the queues' min offsets go past them). A failure leaves the
// rest for the next call.
func (s *Store) dropRemoved() error {
	minPhys := s.log.minOffset()
	done := s.removedTo.Load()
	if minPhys <= done {
		return nil
	}
	seg := s.opts.SegmentSize
	for base := done - done%seg; base < minPhys; base += seg {
		if err := s.idx.dropSegment(base); err != nil {
			return err
		}
	}
	s.forgetDeleted(minPhys)
	err := s.cqs.each(func(_ queueKey, q *consumeQueue) error {
		low, err := q.search(func(e QueueEntry) bool { return e.PhysicalOffset >= minPhys })
		if err != nil {
			return err
		}
		return q.dropBefore(low)
	})
	if err != nil {
		return err
	}
	s.removedTo.Store(minPhys)
	return nil
}

// moveHeld asks the holds in by to move their records below end, when
// every one of them is a Mover that answered; it reports whether they all
// moved them.
func (s *Store) moveHeld(by []heldAt, end int64) bool {
	for _, a := range by {
		if _, ok := a.h.(Mover); !ok || a.err != nil {
			return false
		}
	}
	for _, a := range by {
		if err := a.h.(Mover).MoveBelow(end); err != nil {
			s.opts.Logger.Warn("retention: a hold could not move its records", "hold", a.name, "err", err)
			return false
		}
		s.opts.Logger.Info("retention: a hold moved its records to the end of the log", "hold", a.name, "below", end)
	}
	return true
}

// tooFull reports whether a disk usage calls for removing segments early:
// above DiskMaxUsedRatio, or above DiskFullRatio (where sends are refused)
// should that be lower, as RocketMQ cleans at once above its
// diskSpaceWarningLevelRatio.
func (s *Store) tooFull(usage float64) bool {
	return usage > s.opts.DiskMaxUsedRatio || usage > s.opts.DiskFullRatio
}

// diskUsage is the used fraction of the file system holding the store.
func (s *Store) diskUsage() (float64, error) {
	if s.opts.diskUsage != nil {
		return s.opts.diskUsage()
	}
	sp, err := fsutil.Space(s.opts.Dir)
	if err != nil {
		return 0, err
	}
	return usedFraction(sp.Total, sp.Free, sp.Avail), nil
}

// usedFraction is the disk's use as df's Use% and RocketMQ's
// getDiskPartitionSpaceUsedPercent count it: used blocks over used plus
// available ones. Blocks reserved for root are in neither, so a disk is
// 100% used when no block is available to the broker, however many
// reserved ones are free (counted as used instead, a file system that
// reserves much of its space would look nearly full while it is not).
func usedFraction(blocks, free, avail uint64) float64 {
	used := blocks - min(free, blocks)
	if used+avail == 0 {
		return 0
	}
	return float64(used) / float64(used+avail)
}
