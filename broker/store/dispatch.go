package store

import (
	"fmt"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// dispatchRecord is what the dispatcher needs of one record: the writer
// hands it over with each batch it writes (so that the running dispatcher
// never reads a record back or decodes it), and dispatchTo derives it from
// a decoded record (Open's recovery, Close, and after a failed dispatch).
type dispatchRecord struct {
	topic, props string // the message's own strings
	qid          int32
	sysFlag      int32
	size         int32
	queueOffset  int64
	phys         int64
	storeTs      int64
	blank        bool // a segment's closing blank: nothing to dispatch
}

func recordOf(e *message.Ext) dispatchRecord {
	return dispatchRecord{topic: e.Topic, props: e.Properties, qid: e.QueueID, sysFlag: e.SysFlag, size: e.StoreSize,
		queueOffset: e.QueueOffset, phys: e.CommitLogOffset, storeTs: e.StoreTimestamp}
}

// dispatchLoop builds consume queues and the index as the commit log
// becomes visible (durable under SyncFlush, written under AsyncFlush), so
// a consumer never sees a record that recovery could later truncate. A
// dispatch that fails (a consume-queue or index write) is tried again from
// the log after a back-off, not only when the next append comes: the
// records are stored, and consumers must get them without more traffic.
func (s *Store) dispatchLoop() {
	defer s.wg.Done()
	var retry <-chan time.Time
	backoff := dispatchRetryMin
	for {
		var err error
		select {
		case <-s.dispatchSignal:
			s.dispatchMu.Lock()
			err = s.dispatchHanded(retry != nil)
			s.dispatchMu.Unlock()
		case <-retry:
			s.dispatchMu.Lock()
			err = s.dispatchTo(s.visibleLimit())
			s.dispatchMu.Unlock()
		case <-s.stop:
			return
		}
		if err == nil {
			retry, backoff = nil, dispatchRetryMin
			continue
		}
		s.opts.Logger.Error("dispatch failed; retrying", "offset", s.dispatched.Load(), "in", backoff, "err", err)
		retry = time.After(backoff)
		backoff = min(2*backoff, dispatchRetryMax)
	}
}

// A failed dispatch is retried after dispatchRetryMin, doubling up to
// dispatchRetryMax while it keeps failing.
const (
	dispatchRetryMin = 50 * time.Millisecond
	dispatchRetryMax = 5 * time.Second
)

// dispatchHanded dispatches the records the writer has handed over. They
// continue the log from the dispatched offset unless a dispatch failed
// (afterFailure: its records were taken and not dispatched, and a signal
// may come with nothing handed over) or the writer dropped what it held
// (past Store.handLimit): then it reads the log from the dispatched offset
// instead (dispatchTo), and drops hand-overs it has passed. Records are handed over by one writer in log order, whole
// batches at a time, and dropped only all together, so records that
// begin at the dispatched offset continue it to their end.
func (s *Store) dispatchHanded(afterFailure bool) error {
	s.handMu.Lock()
	taken, dropped := s.handed, s.handDropped
	s.handed, s.handSpare, s.handDropped = s.handSpare[:0], nil, false
	s.handMu.Unlock()
	defer func() {
		// Let go of the messages' strings, and keep the slice for reuse
		// unless a backlog grew it.
		clear(taken)
		if cap(taken) <= 4096 {
			s.handMu.Lock()
			s.handSpare = taken[:0]
			s.handMu.Unlock()
		}
	}()
	off := s.dispatched.Load()
	recs := taken
	for len(recs) > 0 && recs[0].phys < off {
		recs = recs[1:]
	}
	if dropped || afterFailure || len(recs) > 0 && recs[0].phys != off {
		return s.dispatchTo(s.visibleLimit())
	}
	if len(recs) == 0 {
		return nil
	}
	touched := make(map[*consumeQueue]queueKey)
	seg := s.opts.SegmentSize
	for i := range recs {
		r := &recs[i]
		if !r.blank {
			if err := s.dispatchOne(r, r.phys-r.phys%seg, touched); err != nil {
				return err
			}
		}
		off = r.phys + int64(r.size)
	}
	return s.finishDispatch(off, touched)
}

// dispatchTo reads records from the dispatched offset up to limit and
// writes their consume-queue entries and index keys. Only one dispatch
// runs at a time (the loop, or Open/Close when the loop is not running);
// after Open it holds dispatchMu.
func (s *Store) dispatchTo(limit int64) error {
	if s.dispatched.Load() >= limit {
		return nil
	}
	touched := make(map[*consumeQueue]queueKey)
	off, err := s.eachRecord(s.dispatched.Load(), limit, func(e *message.Ext, segBase int64) error {
		r := recordOf(e)
		return s.dispatchOne(&r, segBase, touched)
	})
	if err != nil {
		return err
	}
	return s.finishDispatch(off, touched)
}

// finishDispatch writes the consume-queue entries and index keys staged
// for the records up to off and moves the dispatched offset there.
func (s *Store) finishDispatch(off int64, touched map[*consumeQueue]queueKey) error {
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
	off, err := s.eachRecord(base, min(base+s.opts.SegmentSize, start), func(e *message.Ext, segBase int64) error {
		r := recordOf(e)
		return s.idx.add(&r, segBase)
	})
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

// dispatchOne stages one record's consume-queue entry and index keys.
// Prepared and rolled-back transaction records get no queue entry: they
// are invisible to consumers, as in RocketMQ. Nor does a record of a
// deleted topic from before its deletion (see DeleteTopic).
func (s *Store) dispatchOne(r *dispatchRecord, segBase int64, touched map[*consumeQueue]queueKey) error {
	if tt := message.TransactionType(r.sysFlag); tt != message.TransactionPreparedType && tt != message.TransactionRollbackType &&
		!s.beforeDeletion(r) {
		q := s.cqs.get(r.topic, r.qid, true)
		tags, _ := message.Property(r.props, message.PropertyTags)
		if err := q.put(r.queueOffset, QueueEntry{PhysicalOffset: r.phys, Size: r.size, TagsCode: message.TagsCode(tags)}); err != nil {
			return err
		}
		touched[q] = queueKey{r.topic, r.qid}
	}
	return s.idx.add(r, segBase)
}
