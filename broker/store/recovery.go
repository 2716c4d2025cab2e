package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/halfbackmq/halfback/message"
)

// recover brings the store to a consistent state at Open.
//
// The end of the log is where valid records stop: segment files are
// preallocated, so their size says nothing. After a clean shutdown (no
// abort marker, and the checkpoint's log end is in the last segment with
// nothing after it) nothing is scanned. Otherwise the commit log is
// scanned from the checkpoint's dispatched offset, checking every record's
// magic code, length fields, body CRC, seal and physical offset, up to the
// first that fails (a zero size word where no record was written, or a
// torn or stale one). Everything after that point is zeroed and later
// segments removed, so nothing there can be read as a record by a later
// recovery, and what was scanned is written back and fsynced (a crashed
// process may have left records only in the page cache, and a failed
// fsync may have left them there marked clean); each consume queue is cut
// at its first entry at or past the checkpoint's position or its first
// invalid one (see below), and queues and index are rebuilt from the
// checkpoint onwards, except for the records of deleted
// topics from before their deletion (see DeleteTopic), whose cuts are
// then moved back to the end found if a crash lost records before them.
//
// What is written back is everything from the checkpoint's dispatch
// position to the end found, not one checkpoint interval: it grows with
// the dispatcher's lag behind the writer, and is the whole retained log
// without a usable checkpoint. More than a segment of it is logged.
func (s *Store) recover() error {
	cp, haveCP, err := readCheckpoint(s.checkpointPath())
	if err != nil {
		s.opts.Logger.Warn("ignoring damaged checkpoint; recovering from the start of the log", "err", err)
		cp, haveCP = checkpointData{}, false
	}
	_, abortErr := os.Stat(s.abort)
	crashed := abortErr == nil
	start := max(cp.Dispatched, s.log.minOffset())
	if start > s.log.limit() {
		start = s.log.minOffset()
	}
	end := cp.LogEnd
	if !haveCP || crashed || !s.log.isEnd(cp.LogEnd) {
		if haveCP || s.log.limit() > 0 {
			s.opts.Logger.Warn("store was not shut down cleanly; recovering", "from", start)
		}
		if end, err = s.scanValid(start); err != nil {
			return err
		}
		cleared, removed, err := s.log.truncate(end)
		if err != nil {
			return err
		}
		if cleared > 0 || removed > 0 {
			s.opts.Logger.Warn("dropped torn commit-log tail", "at", end, "zeroedBytes", cleared, "removedSegments", removed)
		}
		// A process that crashed may have written records it never
		// fsynced: they survive in the page cache, and the scan finds
		// them intact. They become durable (and visible) only now, so an
		// OS crash after this Open cannot take what consumers and the
		// checkpoints were shown. They are written back first: after a
		// failed fsync earlier in this boot, Linux keeps the pages it
		// could not write in the cache but marks them clean, and an fsync
		// alone would write nothing and succeed.
		s.logLargeRewrite(start, end, haveCP && start == cp.Dispatched)
		if err := s.log.rewrite(start, end); err != nil {
			return fmt.Errorf("write back the recovered commit log: %w", err)
		}
		if err := s.syncLog(start, end); err != nil {
			return fmt.Errorf("fsync the recovered commit log: %w", err)
		}
	}
	minPhys := s.log.minOffset()
	err = s.cqs.each(func(_ queueKey, q *consumeQueue) error {
		// Every entry from start on is written again below, so the queue
		// is cut at the first of them, or at the first invalid entry if
		// that comes earlier. Entries of records below start were
		// fsynced by the checkpoint; those written since may have been
		// lost to a power loss, here and there, leaving zero entries
		// (never-written space) between ones that survived. Cutting at
		// the first entry that is at or past start, or invalid, is a
		// cut searches can find (false, then true all along, where
		// cutting at end would not be), and leaves no hole, and no
		// entry past the end of the log.
		cut, err := q.search(func(e QueueEntry) bool {
			return e.Size <= 0 || e.PhysicalOffset < 0 || e.PhysicalOffset >= start
		})
		if err != nil {
			return err
		}
		if err := q.truncateFrom(cut); err != nil {
			return err
		}
		low, err := q.search(func(e QueueEntry) bool { return e.PhysicalOffset >= minPhys })
		if err != nil {
			return err
		}
		return q.dropBefore(low)
	})
	if err != nil {
		return err
	}
	if err := s.recoverIndex(start); err != nil {
		return err
	}
	s.next = end
	s.written.Store(end)
	s.durable.Store(end)
	s.dispatched.Store(start)
	s.checkpointed.Store(start) // entries from start on are rewritten now, not yet fsynced
	if err := s.dispatchTo(end); err != nil {
		return err
	}
	if err := s.settleDeleted(end); err != nil {
		return err
	}
	return s.cqs.each(func(k queueKey, q *consumeQueue) error {
		_, s.queueNext[k] = q.bounds()
		return nil
	})
}

// logLargeRewrite warns when recovery is to write back and fsync more
// than one segment of the commit log, [start, end), so that an operator
// sees why Open is slow; fromCP says start is the checkpoint's position
// (else there was no usable checkpoint, and start is the log's start).
func (s *Store) logLargeRewrite(start, end int64, fromCP bool) {
	n := end - start
	if n <= s.opts.SegmentSize {
		return
	}
	why := "the checkpoint's dispatch position is far behind the log's end"
	if !fromCP {
		why = "no usable checkpoint: the whole retained log is recovered"
	}
	s.opts.Logger.Warn("recovery writes back and fsyncs a large part of the commit log; Open takes longer",
		"bytes", n, "from", start, "to", end, "why", why)
}

// recoverIndex makes the key index agree with the log below start (see
// index.recover) and rebuilds, from the log, the index of every segment
// below start whose index file is missing or unreadable: a crash while
// one was being written, or a store written by a version that kept the
// index elsewhere.
func (s *Store) recoverIndex(start int64) error {
	missing, err := s.idx.recover(s.log.bases(), start)
	if err != nil {
		return err
	}
	for _, base := range missing {
		s.opts.Logger.Warn("rebuilding the key index of a segment", "segment", base)
		if err := s.reindex(base, start); err != nil {
			return err
		}
	}
	return s.idx.activate()
}

// removeLegacyIndex removes the key index directory of versions that kept
// the index in Pebble; Open then rebuilds the index from the log.
func removeLegacyIndex(dir string, logger *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	logger.Warn("removing the key index of an earlier version; it is rebuilt from the commit log", "dir", dir)
	return os.RemoveAll(dir)
}

// scanValid returns where the run of valid records from start (a record
// boundary) ends: at the first record that fails its checks, or a zero size
// word (preallocated space never written), or the end of an older
// version's short segment file, or the end of the last segment.
func (s *Store) scanValid(start int64) (int64, error) {
	seg := s.opts.SegmentSize
	buf := make([]byte, 4<<20)
	off := start
	for {
		segEnd := off - off%seg + seg
		n := min(segEnd-off, int64(len(buf)))
		k, err := s.log.readSome(buf[:n], off)
		if errors.Is(err, ErrOffsetNotFound) {
			return off, nil // past the last segment, or the end of a short file
		}
		if err != nil {
			return off, err
		}
		b := buf[:k]
		short := int64(k) < n // the file ends inside b
		p := 0
	records:
		for p < len(b) {
			size, magic, err := message.PeekHeader(b[p:])
			switch {
			case err != nil && (p == 0 || short):
				return off, nil // fewer than 8 bytes left: torn
			case err != nil:
				break records // header split by the buffer end: read again from off
			case magic == message.BlankMagicCode:
				if int64(size) != segEnd-off {
					return off, nil
				}
				off, p = segEnd, -1
				break records
			case size <= 0 || int64(size) > segEnd-off:
				return off, nil // a zero word: nothing was written here
			case int(size) > len(b)-p:
				if short {
					return off, nil // torn: the file ends inside the record
				}
				if p == 0 {
					buf = make([]byte, size)
				}
				break records
			}
			ext, _, err := message.DecodeSealed(b[p : p+int(size)])
			if err != nil || ext.CommitLogOffset != off {
				return off, nil
			}
			p += int(size)
			off += int64(size)
		}
		if p == 0 && len(b) >= len(buf) {
			return off, fmt.Errorf("%w: no progress scanning at %d", ErrCorrupt, off)
		}
	}
}
