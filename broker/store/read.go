package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/halfbackmq/halfback/message"
)

// GetStatus says what GetMessages found, with RocketMQ's meanings.
type GetStatus int

const (
	// Found means at least one record is returned.
	Found GetStatus = iota
	// NoMatchedMessage means entries were scanned but none passed the filter.
	NoMatchedMessage
	// NoMatchedLogicQueue means the topic/queue has never had a message.
	NoMatchedLogicQueue
	// NoMessageInQueue means the queue exists but holds nothing.
	NoMessageInQueue
	// OffsetOverflowOne means the offset equals the queue's max: nothing new yet.
	OffsetOverflowOne
	// OffsetOverflowBadly means the offset is past the queue's max. The
	// next offset is the max, or the min for an offset of a topic before
	// it was deleted and created again (see GetMessages).
	OffsetOverflowBadly
	// OffsetTooSmall means the offset is below the queue's min (removed by retention).
	OffsetTooSmall
	// MessageWasRemoving means the entries point into removed commit-log
	// segments (RocketMQ's MESSAGE_WAS_REMOVING): retention trims the
	// queue past them next.
	MessageWasRemoving
)

var statusNames = [...]string{"FOUND", "NO_MATCHED_MESSAGE", "NO_MATCHED_LOGIC_QUEUE", "NO_MESSAGE_IN_QUEUE",
	"OFFSET_OVERFLOW_ONE", "OFFSET_OVERFLOW_BADLY", "OFFSET_TOO_SMALL", "MESSAGE_WAS_REMOVING"}

func (g GetStatus) String() string {
	if int(g) < len(statusNames) {
		return statusNames[g]
	}
	return fmt.Sprintf("GetStatus(%d)", int(g))
}

// GetResult is the answer of GetMessages.
type GetResult struct {
	Status GetStatus
	// Records holds the matching records back to back, byte for byte as the
	// commit log stores them (a pull response body).
	Records []byte
	// Count is the number of records in Records.
	Count int
	// NextBeginOffset is the logical offset the next pull should start at.
	NextBeginOffset int64
	// MinOffset and MaxOffset are the queue's bounds when it was read.
	MinOffset, MaxOffset int64
}

// GetOptions bound a GetMessages call.
type GetOptions struct {
	// MaxMessages caps the records returned. Default 32.
	MaxMessages int
	// MaxBytes caps the bytes returned (at least one record is returned if
	// it matches). Default 4 MiB.
	MaxBytes int
	// Match filters by tag hash code; nil accepts everything.
	Match func(tagsCode int64) bool
	// Filter, if set, keeps only the records whose properties it accepts
	// (RocketMQ's isMatchedByCommitLog, for SQL92 subscriptions): every
	// record Match let through has its properties read and decoded (not
	// its body, nor its checksums), and MaxMessages and MaxBytes count the
	// records kept. A record whose fields do not add up is not kept.
	Filter func(properties string) bool
}

// GetMessages reads records of topic/queue from logical offset offset,
// following RocketMQ's pull semantics for the status and next offset.
//
// An offset past the queue's max (OffsetOverflowBadly) moves to the max,
// as in RocketMQ since 4.9.4: the reader may have been shown records a
// crash lost (under AsyncFlush), and the max loses nothing more. One
// exception: the topic was deleted (DeleteTopic), has a queue again, and
// offset is at most the max offset the queue had at the deletion. The
// offset is then most likely a running consumer's from the deleted topic,
// and the max would skip the messages the topic created again holds
// already, so it moves to the queue's min (0 unless retention removed
// some): duplicates rather than loss. For a deletion recorded before
// deleted-topics.json kept the queues' max offsets, every offset past
// the end moves to the min. Either lasts until Open forgets the deletion,
// once retention has passed its cut.
func (s *Store) GetMessages(topic string, qid int32, offset int64, o GetOptions) (GetResult, error) {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 32
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 << 20
	}
	q := s.cqs.get(topic, qid, false)
	if q == nil {
		return GetResult{Status: NoMatchedLogicQueue}, nil
	}
	lo, hi := q.bounds()
	r := GetResult{MinOffset: lo, MaxOffset: hi, NextBeginOffset: offset}
	switch {
	case hi == 0:
		r.Status, r.NextBeginOffset = NoMessageInQueue, 0
		return r, nil
	case offset < lo:
		r.Status, r.NextBeginOffset = OffsetTooSmall, lo
		return r, nil
	case offset == hi:
		r.Status = OffsetOverflowOne
		return r, nil
	case offset > hi && s.staleOffset(topic, qid, offset):
		r.Status, r.NextBeginOffset = OffsetOverflowBadly, lo
		return r, nil
	case offset > hi:
		r.Status, r.NextBeginOffset = OffsetOverflowBadly, hi
		return r, nil
	}
	// Scan more entries than MaxMessages so a selective tag filter still
	// makes progress, as RocketMQ does.
	entries, err := q.read(offset, max(o.MaxMessages, 800))
	if err != nil {
		return r, s.readErr(err)
	}
	minPhys := s.log.minOffset()
	limit := s.visibleLimit()
	next := offset
	sawLive := false
	var runs []QueueEntry // matching records, adjacent ones merged into one read
	var kept, rec []byte  // with Filter: the records it kept; filterRecord's buffer
	if o.Filter != nil {
		c := 0
		for _, e := range entries[:min(len(entries), o.MaxMessages)] {
			c += int(max(e.Size, 0))
		}
		kept = make([]byte, 0, min(c, o.MaxBytes))
	}
	size := 0
	for _, e := range entries {
		if r.Count >= o.MaxMessages || (r.Count > 0 && size+int(e.Size) > o.MaxBytes) {
			break
		}
		if e.PhysicalOffset+int64(e.Size) > limit {
			break
		}
		next++
		if e.PhysicalOffset < minPhys || e.Size <= 0 {
			continue
		}
		sawLive = true
		if o.Match != nil && !o.Match(e.TagsCode) {
			continue
		}
		if o.Filter != nil {
			keep, err := s.filterRecord(e, o.Filter, &rec)
			if err == nil && keep {
				kept, err = s.keepRecord(e, rec, kept)
			}
			if errors.Is(err, ErrOffsetNotFound) && e.PhysicalOffset < s.log.minOffset() {
				return s.GetMessages(topic, qid, offset, o) // as below: retention removed it since
			}
			if err != nil {
				return r, s.readErr(err)
			}
			if keep {
				size += int(e.Size)
				r.Count++
			}
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].PhysicalOffset+int64(runs[n-1].Size) == e.PhysicalOffset &&
			e.PhysicalOffset%s.opts.SegmentSize != 0 {
			runs[n-1].Size += e.Size
		} else {
			runs = append(runs, e)
		}
		size += int(e.Size)
		r.Count++
	}
	if o.Filter != nil {
		r.Records = kept
	} else {
		r.Records = make([]byte, size)
	}
	pos := 0
	for _, run := range runs {
		if err := s.log.readAt(r.Records[pos:pos+int(run.Size)], run.PhysicalOffset); err != nil {
			if errors.Is(err, ErrOffsetNotFound) && run.PhysicalOffset < s.log.minOffset() {
				// Retention removed the segment after the entries were
				// read: read again, past the records it removed.
				return s.GetMessages(topic, qid, offset, o)
			}
			return r, s.readErr(err)
		}
		pos += int(run.Size)
	}
	r.NextBeginOffset = next
	switch {
	case r.Count > 0:
		r.Status = Found
	case !sawLive && next > offset:
		r.Status = MessageWasRemoving
	default:
		r.Status = NoMatchedMessage
	}
	return r, nil
}

// filterWholeRecord is the size up to which filterRecord reads a record in
// one read; of a larger one it reads the header and the tail (topic and
// properties) only, not the body.
const filterWholeRecord = 4 << 10

// filterRecord reports whether filter accepts the properties of the record
// of e, read into *buf (the whole record, when it is at most
// filterWholeRecord bytes). Like RocketMQ's isMatchedByCommitLog it
// decodes the properties only: the body is neither read (past
// filterWholeRecord) nor checksummed. A record whose fields do not add up
// is refused.
func (s *Store) filterRecord(e QueueEntry, filter func(string) bool, buf *[]byte) (bool, error) {
	size := int(e.Size)
	head := min(size, message.PropertiesHeaderSize)
	if size <= filterWholeRecord {
		head = size
	}
	if cap(*buf) < head {
		*buf = make([]byte, max(head, filterWholeRecord))
	}
	b := (*buf)[:head]
	if err := s.log.readAt(b, e.PhysicalOffset); err != nil {
		return false, err
	}
	start, err := message.TailOffset(b, size)
	if err != nil {
		return false, nil
	}
	var tail []byte
	if head == size {
		tail = b[start:]
	} else {
		if cap(*buf) < size-start {
			*buf = make([]byte, size-start)
		}
		tail = (*buf)[:size-start]
		if err := s.log.readAt(tail, e.PhysicalOffset+int64(start)); err != nil {
			return false, err
		}
	}
	_, props, err := message.DecodeTail(tail)
	return err == nil && filter(props), nil
}

// keepRecord appends the record of e to kept: from buf, where filterRecord
// read a small one whole, else from the commit log.
func (s *Store) keepRecord(e QueueEntry, buf, kept []byte) ([]byte, error) {
	size := int(e.Size)
	if size <= filterWholeRecord {
		return append(kept, buf[:size]...), nil
	}
	n := len(kept)
	kept = slices.Grow(kept, size)[:n+size]
	if err := s.log.readAt(kept[n:], e.PhysicalOffset); err != nil {
		return kept[:n], err
	}
	return kept, nil
}

// readErr is ErrClosed for a read that failed because Close closed the
// files under it, else err.
func (s *Store) readErr(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w (%v)", ErrClosed, err)
	}
	return err
}

// QueueBounds returns a queue's min and max logical offsets (max is one
// past the last message); both are 0 for an unknown queue.
func (s *Store) QueueBounds(topic string, qid int32) (minOff, maxOff int64) {
	if q := s.cqs.get(topic, qid, false); q != nil {
		return q.bounds()
	}
	return 0, 0
}

// QueueEntryAt returns the consume-queue entry of topic/queue at logical
// offset off; ok is false when the queue has none there (an unknown queue,
// or off outside its bounds).
func (s *Store) QueueEntryAt(topic string, qid int32, off int64) (e QueueEntry, ok bool, err error) {
	q := s.cqs.get(topic, qid, false)
	if q == nil {
		return QueueEntry{}, false, nil
	}
	es, err := q.read(off, 1)
	if err != nil {
		return QueueEntry{}, false, s.readErr(err)
	}
	if len(es) == 0 {
		return QueueEntry{}, false, nil
	}
	return es[0], true, nil
}

// Queue describes one consume queue.
type Queue struct {
	Topic     string
	QueueID   int32
	MinOffset int64
	MaxOffset int64
}

// Queues lists every consume queue.
func (s *Store) Queues() []Queue {
	var out []Queue
	s.cqs.each(func(k queueKey, q *consumeQueue) error {
		lo, hi := q.bounds()
		out = append(out, Queue{Topic: k.topic, QueueID: k.qid, MinOffset: lo, MaxOffset: hi})
		return nil
	})
	return out
}

// OffsetForTimestamp returns the first logical offset of topic/queue whose
// record was stored at or after ts (ms), or the queue's max if none was.
func (s *Store) OffsetForTimestamp(topic string, qid int32, ts int64) (int64, error) {
	q := s.cqs.get(topic, qid, false)
	if q == nil {
		return 0, nil
	}
	var rerr error
	off, err := q.search(func(e QueueEntry) bool {
		st, err := s.storeTimestamp(e.PhysicalOffset)
		if errors.Is(err, ErrOffsetNotFound) && e.PhysicalOffset < s.log.minOffset() {
			// Removed by retention, which has yet to raise the queue's
			// min past it: older than every record still stored.
			return false
		}
		if err != nil {
			rerr = err
			return false
		}
		return st >= ts
	})
	if err == nil {
		err = rerr
	}
	return off, err
}

func (s *Store) storeTimestamp(phys int64) (int64, error) {
	// Up to the store timestamp of a record with an IPv6 born host
	// (every record is longer than that).
	var hdr [48 + 20 + 8]byte
	if err := s.log.readAt(hdr[:], phys); err != nil {
		return 0, err
	}
	sysFlag := int32(binary.BigEndian.Uint32(hdr[36:]))
	pos := 48 + 8
	if sysFlag&message.FlagBornHostV6 != 0 {
		pos = 48 + 20
	}
	if len(hdr) < pos+8 {
		return 0, fmt.Errorf("%w: short header at %d", ErrCorrupt, phys)
	}
	return int64(binary.BigEndian.Uint64(hdr[pos:])), nil
}

// ReadRecord returns the raw record at physical offset phys, which must
// be where a record starts: it is decoded (lengths, body CRC, record
// checksum) and must name phys as its offset, so that an offset into a
// message body that imitates a record header (a client chooses the bytes
// and learns the offset from the message id) yields ErrOffsetNotFound
// rather than the log's bytes from there on. Its header is checked
// before the record is read, so such an offset costs no allocation past
// its segment's end.
func (s *Store) ReadRecord(phys int64) ([]byte, error) {
	rec, _, err := s.readRecord(phys)
	return rec, err
}

// notRecord is readRecord's error for an offset where no record starts.
func notRecord(phys int64) error {
	return fmt.Errorf("%w: %d is not the start of a record", ErrOffsetNotFound, phys)
}

func (s *Store) readRecord(phys int64) ([]byte, message.Ext, error) {
	if phys < s.log.minOffset() || phys >= s.visibleLimit() {
		return nil, message.Ext{}, fmt.Errorf("%w: %d", ErrOffsetNotFound, phys)
	}
	// Up to the physical offset a record names.
	var hdr [message.PhysicalOffsetHeaderLen]byte
	if err := s.log.readAt(hdr[:], phys); err != nil {
		return nil, message.Ext{}, err
	}
	size, magic, _ := message.PeekHeader(hdr[:])
	at, _ := message.PhysicalOffset(hdr[:])
	segEnd := (phys/s.log.segSize + 1) * s.log.segSize // a record never crosses one
	if magic != message.MagicCode || size < int32(len(hdr)) || at != phys ||
		phys+int64(size) > min(s.visibleLimit(), segEnd) {
		// Past a segment's closing blank a recycled segment still holds
		// its earlier life's records: they say another offset.
		return nil, message.Ext{}, notRecord(phys)
	}
	rec := make([]byte, size)
	if err := s.log.readAt(rec, phys); err != nil {
		return nil, message.Ext{}, err
	}
	e, _, err := message.DecodeSealed(rec)
	if err != nil || e.CommitLogOffset != phys {
		return nil, message.Ext{}, notRecord(phys)
	}
	return rec, e, nil
}

// ReadRecords returns the raw bytes of [phys, phys+size): one or more
// consecutive records inside one segment, as their offsets and sizes say
// (for example from a consume queue or an index). It does not check that
// the range starts or ends on record boundaries; decoding does.
func (s *Store) ReadRecords(phys int64, size int) ([]byte, error) {
	if size <= 0 || phys < s.log.minOffset() || phys+int64(size) > s.visibleLimit() {
		return nil, fmt.Errorf("%w: [%d, %d)", ErrOffsetNotFound, phys, phys+int64(size))
	}
	b := make([]byte, size)
	if err := s.log.readAt(b, phys); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadMessage decodes the record at physical offset phys (as ReadRecord).
func (s *Store) ReadMessage(phys int64) (message.Ext, error) {
	_, e, err := s.readRecord(phys)
	return e, err
}

// QueryByKey returns the physical offsets of records of topic carrying key
// (their UNIQ_KEY or one of their KEYS) stored within [beginMs, endMs],
// newest first, at most max. endMs <= 0 means no upper bound.
func (s *Store) QueryByKey(topic, key string, beginMs, endMs int64, max int) ([]int64, error) {
	if endMs <= 0 {
		endMs = math.MaxInt64
	}
	if max <= 0 {
		max = 32
	}
	bases := s.log.bases()
	slices.Reverse(bases) // newest first
	return s.idx.lookup(bases, topic, key, beginMs, endMs, max, func(phys int64) (bool, error) {
		e, err := s.ReadMessage(phys)
		if errors.Is(err, ErrOffsetNotFound) {
			return false, nil // removed by retention since
		}
		if err != nil || e.Topic != topic {
			return false, err
		}
		if u, _ := message.Property(e.Properties, message.PropertyUniqKey); u == key {
			return true, nil
		}
		return slices.Contains(message.Keys(e.Properties), key), nil
	})
}
