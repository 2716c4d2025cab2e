package store

import (
	"fmt"

	"github.com/halfbackmq/halfback/message"
)

// dispatchLoop builds consume queues and the index from the commit log as
// it becomes visible (durable under SyncFlush, written under AsyncFlush), so
// a consumer never sees a record that recovery could later truncate.
func (s *Store) dispatchLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.dispatchSignal:
			if err := s.dispatchTo(s.visibleLimit()); err != nil {
				s.opts.Logger.Error("dispatch failed", "offset", s.dispatched.Load(), "err", err)
			}
		case <-s.stop:
			return
		}
	}
}

// dispatchTo reads records from the dispatched offset up to limit and
// writes their consume-queue entries and index keys. Only one dispatchTo
// runs at a time (the loop, or Open/Close when the loop is not running).
func (s *Store) dispatchTo(limit int64) error {
	if s.dispatched.Load() >= limit {
		return nil
	}
	touched := make(map[*consumeQueue]queueKey)
	off, err := s.eachRecord(s.dispatched.Load(), limit, func(e *message.Ext, segBase int64) error {
		return s.dispatchRecord(e, segBase, touched)
	})
	if err != nil {
		return err
	}
	for q := range touched {
		if err := q.flush(); err != nil {
			return err
		}
	}
	// The entries are readable now: wake long polls and the scheduler before
	// the key index commits (consumers never read the index).
	if s.opts.OnDispatch != nil {
		for q, k := range touched {
			_, maxOff := q.bounds()
			s.opts.OnDispatch(k.topic, k.qid, maxOff)
		}
	}
	if err := s.idx.commit(off); err != nil {
		return err
	}
	s.dispatched.Store(off)
	return nil
}

// reindex rebuilds the key index file of the segment at base from its
// records below start (Open's recovery, for a segment whose file is
// missing or unreadable).
func (s *Store) reindex(base, start int64) error {
	if err := s.idx.beginRebuild(base); err != nil {
		return err
	}
	off, err := s.eachRecord(base, min(base+s.opts.SegmentSize, start), s.idx.addRecord)
	if err != nil {
		return err
	}
	if err := s.idx.commit(off); err != nil {
		return err
	}
	return s.idx.endRebuild(start)
}

// eachRecord decodes the records in [from, limit), from a record boundary,
// calling fn with each and the base of its segment, and returns the offset
// it reached (limit, or the end of a segment closed by a blank record).
func (s *Store) eachRecord(from, limit int64, fn func(e *message.Ext, segBase int64) error) (int64, error) {
	off := from
	seg := s.opts.SegmentSize
	buf := s.dispatchBuf
	if buf == nil {
		buf = make([]byte, 1<<20)
	}
	defer func() { s.dispatchBuf = buf }() // keep it, grown or not, for the next call
	for off < limit {
		segEnd := off - off%seg + seg
		n := min(limit, segEnd) - off
		if n > int64(len(buf)) {
			n = int64(len(buf))
		}
		k, err := s.log.readSome(buf[:n], off)
		b := buf[:k]
		if err != nil {
			return off, err
		}
		p := 0
		for p < len(b) {
			size, magic, err := message.PeekHeader(b[p:])
			if err != nil {
				break // header split by the buffer end: read again from off
			}
			if magic == message.BlankMagicCode {
				off, p = segEnd, -1
				break
			}
			if size <= 0 || int(size) > len(b)-p {
				if p == 0 && size > 0 && int64(size) <= segEnd-off {
					buf = make([]byte, size)
				} else if p == 0 {
					return off, fmt.Errorf("%w: record at %d claims %d bytes", ErrCorrupt, off, size)
				}
				break
			}
			ext, _, err := message.DecodeSealed(b[p : p+int(size)])
			if err != nil {
				return off, fmt.Errorf("%w: record at %d: %w", ErrCorrupt, off, err)
			}
			if ext.CommitLogOffset != off {
				return off, fmt.Errorf("%w: record at %d says it is at %d", ErrCorrupt, off, ext.CommitLogOffset)
			}
			if err := fn(&ext, off-off%seg); err != nil {
				return off, err
			}
			p += int(size)
			off += int64(size)
		}
	}
	return off, nil
}

// dispatchRecord stages one record's consume-queue entry and index keys.
// Prepared and rolled-back transaction records get no queue entry: they
// are invisible to consumers, as in RocketMQ.
func (s *Store) dispatchRecord(e *message.Ext, segBase int64, touched map[*consumeQueue]queueKey) error {
	if tt := message.TransactionType(e.SysFlag); tt != message.TransactionPreparedType && tt != message.TransactionRollbackType {
		q := s.cqs.get(e.Topic, e.QueueID, true)
		tags, _ := message.Property(e.Properties, message.PropertyTags)
		if err := q.put(e.QueueOffset, QueueEntry{PhysicalOffset: e.CommitLogOffset, Size: e.StoreSize, TagsCode: message.TagsCode(tags)}); err != nil {
			return err
		}
		touched[q] = queueKey{e.Topic, e.QueueID}
	}
	return s.idx.addRecord(e, segBase)
}
