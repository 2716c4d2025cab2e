package store

import (
	"errors"
	"fmt"
	"os"

	"github.com/halfbackmq/halfback/message"
)

// recover brings the store to a consistent state at Open.
//
// After a clean shutdown (no abort marker, checkpoint end matching the log)
// nothing is scanned. Otherwise the commit log is scanned from the
// checkpoint's dispatched offset, checking every record's magic code, length
// fields, body CRC and physical offset; the log is truncated at the first
// record that fails, consume-queue entries that point past the new end are
// dropped, and queues and index are rebuilt from the checkpoint onwards.
func (s *Store) recover() error {
	cp, haveCP, err := readCheckpoint(s.checkpointPath())
	if err != nil {
		s.opts.Logger.Warn("ignoring damaged checkpoint; recovering from the start of the log", "err", err)
		cp, haveCP = checkpointData{}, false
	}
	_, abortErr := os.Stat(s.abort)
	crashed := abortErr == nil
	end, err := s.log.endOffset()
	if err != nil {
		return err
	}
	start := max(cp.Dispatched, s.log.minOffset())
	if start > end {
		start = s.log.minOffset()
	}
	if !haveCP || crashed || cp.LogEnd != end {
		if haveCP || end > 0 {
			s.opts.Logger.Warn("store was not shut down cleanly; recovering", "from", start, "fileEnd", end)
		}
		valid, err := s.scanValid(start, end)
		if err != nil {
			return err
		}
		if valid < end {
			s.opts.Logger.Warn("truncating torn commit-log tail", "at", valid, "dropped", end-valid)
			if err := s.log.truncate(valid); err != nil {
				return err
			}
		}
		end = valid
	}
	minPhys := s.log.minOffset()
	err = s.cqs.each(func(_ queueKey, q *consumeQueue) error {
		cut, err := q.search(func(e QueueEntry) bool { return e.PhysicalOffset >= end })
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
	s.next = end
	s.written.Store(end)
	s.durable.Store(end)
	s.dispatched.Store(start)
	if err := s.dispatchTo(end); err != nil {
		return err
	}
	return s.cqs.each(func(k queueKey, q *consumeQueue) error {
		_, s.queueNext[k] = q.bounds()
		return nil
	})
}

// scanValid returns the end of the run of valid records from start (a
// record boundary) towards end.
func (s *Store) scanValid(start, end int64) (int64, error) {
	seg := s.opts.SegmentSize
	buf := make([]byte, 4<<20)
	off := start
	for off < end {
		segEnd := off - off%seg + seg
		n := min(end, segEnd) - off
		if n > int64(len(buf)) {
			n = int64(len(buf))
		}
		k, err := s.log.readSome(buf[:n], off)
		b := buf[:k]
		if err != nil {
			if errors.Is(err, ErrOffsetNotFound) {
				return off, nil
			}
			return off, err
		}
		p := 0
		for p < len(b) {
			size, magic, err := message.PeekHeader(b[p:])
			if err != nil {
				if p == 0 {
					return off, nil // torn: fewer than 8 bytes left
				}
				break
			}
			if magic == message.BlankMagicCode {
				if int64(size) != segEnd-off {
					return off, nil
				}
				off, p = segEnd, -1
				break
			}
			if size <= 0 || int64(size) > segEnd-off {
				return off, nil
			}
			if int(size) > len(b)-p {
				if p == 0 {
					if off+int64(size) > end {
						return off, nil // torn: the file ends inside the record
					}
					buf = make([]byte, size)
				}
				break
			}
			ext, _, err := message.DecodeSealed(b[p : p+int(size)])
			if err != nil || ext.CommitLogOffset != off {
				return off, nil
			}
			p += int(size)
			off += int64(size)
		}
		if p == 0 {
			return off, fmt.Errorf("%w: no progress scanning at %d", ErrCorrupt, off)
		}
	}
	return off, nil
}
