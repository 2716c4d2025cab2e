package lifecycle

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/internal/pebbledb"
)

// Kind names what happened to a message.
type Kind string

// Event kinds.
const (
	Stored       Kind = "stored"        // stored in a topic consumers read (Topic, Queue, Offset, Flush)
	HalfStored   Kind = "half-stored"   // stored as a transaction's half message
	Committed    Kind = "committed"     // transaction committed (From, Check)
	RolledBack   Kind = "rolled-back"   // transaction rolled back (From, Check)
	CheckedBack  Kind = "checked-back"  // a check-back reached a producer (Check)
	Parked       Kind = "parked"        // checks used up; kept for an operator (Check)
	Scheduled    Kind = "scheduled"     // stored for later delivery (Level or DueAt)
	Delivered    Kind = "delivered"     // delivered from the schedule to Topic
	SentBack     Kind = "sent-back"     // a consumer failed it; stored for retry (Group, Reconsume)
	DeadLettered Kind = "dead-lettered" // retries used up; stored in the DLQ (Group, Reconsume)
	Consumed     Kind = "consumed"      // the group's committed offset passed it (derived, never stored)
	Filtered     Kind = "filtered"      // the group's offset passed it, but its subscription (tags or SQL92) skips it (derived)
)

// Where a transaction outcome came from (Event.From), FromConsumer for a
// dead letter its consumer sent to the dead-letter queue itself, and
// FromClient for a retry its consumer's client sent as a message.
const (
	FromClient   = "client"
	FromCheck    = "check-back"
	FromAdmin    = "admin"
	FromConsumer = "consumer"
)

// Event is one thing that happened to a message. Fields other than MsgID,
// Time and Kind are set where the kind gives them a meaning.
type Event struct {
	// MsgID is the message's id: its UNIQ_KEY, or the offset message id of
	// a message that has none.
	MsgID string `json:"msgId"`
	// Time is when it happened.
	Time time.Time `json:"time"`
	// Kind is what happened.
	Kind Kind `json:"event"`
	// Topic, Queue and Offset say where the record went (queue offset).
	Topic  string `json:"topic,omitempty"`
	Queue  int32  `json:"queue"`
	Offset int64  `json:"offset"`
	// OffsetMsgID is the record's offset message id.
	OffsetMsgID string `json:"offsetMsgId,omitempty"`
	// Flush is the store's flush mode for a send: SYNC_FLUSH or ASYNC_FLUSH.
	Flush string `json:"flush,omitempty"`
	// Level is the delay level of a scheduled message (0 for a timer).
	Level int `json:"level,omitempty"`
	// DueAt is when a scheduled message falls due.
	DueAt time.Time `json:"dueAt,omitzero"`
	// From says who decided a transaction outcome: client, check-back or
	// admin; on a dead letter, consumer when the consumer asked for the
	// dead-letter queue (a send-back with delay level -1, or a retry an
	// orderly group sends), as an orderly consumer does after retries of
	// its own, which Reconsume may not count (halfback's client sends the
	// stored count; RocketMQ's Java client its own); on a send-back, client
	// when the consumer's client sent the retry as a message to the retry
	// topic (RocketMQ's Java client, when its send-back failed), not the
	// broker from a CONSUMER_SEND_MSG_BACK.
	From string `json:"from,omitempty"`
	// Check numbers check-backs from 1 (for an outcome from a check-back,
	// the checks made so far).
	Check int `json:"check,omitempty"`
	// Group is the producer group of a half message, or the consumer group
	// of a send-back, dead-letter or consumption.
	Group string `json:"group,omitempty"`
	// Reconsume is the message's reconsume count after a send-back.
	Reconsume int `json:"reconsumeTimes,omitempty"`
	// Keys are the message's KEYS (space-separated) and Tag its TAGS.
	Keys string `json:"keys,omitempty"`
	Tag  string `json:"tag,omitempty"`
	// TraceID is the trace id of the producer's traceparent.
	TraceID string `json:"traceId,omitempty"`
	// Detail is free text (an error, a note).
	Detail string `json:"detail,omitempty"`
}

// Message is one message's events, oldest first.
type Message struct {
	MsgID  string  `json:"msgId"`
	Events []Event `json:"events"`
}

// Defaults.
const (
	DefaultRetention      = 72 * time.Hour
	DefaultQueueSize      = 16384
	DefaultExpiryInterval = 10 * time.Minute
	DefaultSyncInterval   = time.Second
	maxBatch              = 1024
	// maxCandidates bounds the messages a Lookup reads before it keeps
	// the oldest limit of them.
	maxCandidates = 10000
)

// ErrClosed is returned by calls on a closed Recorder.
var ErrClosed = errors.New("lifecycle: closed")

// Options configure a [Recorder].
type Options struct {
	// Dir holds the Pebble database. Required.
	Dir string
	// Retention is how long events are kept. Default 72 h (the store's
	// FileReserved default).
	Retention time.Duration
	// QueueSize is how many events wait for the writer before Record
	// drops them. Default 16384.
	QueueSize int
	// ExpiryInterval is how often expired keys are deleted. Default 10 min.
	ExpiryInterval time.Duration
	// SyncInterval is how often events written since the last sync are
	// fsynced: the events a crash can lose (Pebble keeps unsynced writes
	// in the process until its log block fills). Default 1 s.
	SyncInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives write errors. Default slog.Default().
	Logger *slog.Logger
	// Paused, if set, is asked by every Record: while it reports true the
	// event is dropped and counted in Dropped. The broker pauses
	// recording while its disk is full, so that the database does not
	// take the space left (Pebble stops the process when it cannot
	// write its log).
	Paused func() bool
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.ExpiryInterval <= 0 {
		o.ExpiryInterval = DefaultExpiryInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Recorder records message lifecycle events. Its methods are safe for
// concurrent use; Record may be called after Close (it drops the event).
type Recorder struct {
	opts    Options
	db      *pebble.DB
	queue   chan *item // pointers: a buffer of values would be megabytes for the GC to scan
	seq     uint64     // writer goroutine only
	dirty   bool       // writer goroutine only: events written since the last sync
	scratch scratch    // writer goroutine only
	dropped atomic.Int64

	closeMu sync.RWMutex // Record holds it shared while sending; Close exclusive
	closed  bool
	done    chan struct{}
}

// item is a queued event, or a barrier (Sync) when done is set.
type item struct {
	ev   Event
	done chan struct{}
}

// Open opens (or creates) the database in opts.Dir and starts the writer.
func Open(opts Options) (*Recorder, error) {
	if opts.Dir == "" {
		return nil, errors.New("lifecycle: Dir is required")
	}
	opts = opts.withDefaults()
	db, err := pebbledb.Open(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: open %s: %w", opts.Dir, err)
	}
	r := &Recorder{opts: opts, db: db, queue: make(chan *item, opts.QueueSize), done: make(chan struct{})}
	go r.run()
	return r, nil
}

// Record queues e for writing and returns at once. An event without a
// MsgID is ignored; a zero Time is set to now. When the queue is full, or
// recording is paused (Options.Paused), the event is dropped and counted.
func (r *Recorder) Record(e Event) {
	if r == nil || e.MsgID == "" {
		return
	}
	if e.Time.IsZero() {
		e.Time = r.opts.Now()
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return
	}
	if r.opts.Paused != nil && r.opts.Paused() {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- &item{ev: e}:
	default:
		r.dropped.Add(1)
	}
}

// Dropped is how many events were dropped because the queue was full or
// recording was paused (Options.Paused).
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Sync waits until every event recorded before the call is written.
func (r *Recorder) Sync() error {
	r.closeMu.RLock()
	if r.closed {
		r.closeMu.RUnlock()
		return ErrClosed
	}
	done := make(chan struct{})
	r.queue <- &item{done: done}
	r.closeMu.RUnlock()
	<-done
	return nil
}

// Close writes the queued events, stops the writer and closes the database.
func (r *Recorder) Close() error {
	r.closeMu.Lock()
	if r.closed {
		r.closeMu.Unlock()
		return ErrClosed
	}
	r.closed = true
	close(r.queue)
	r.closeMu.Unlock()
	<-r.done
	return r.db.Close()
}

// run is the writer: it drains the queue in batches and expires old keys.
func (r *Recorder) run() {
	defer close(r.done)
	tick := time.NewTicker(r.opts.ExpiryInterval)
	defer tick.Stop()
	syncTick := time.NewTicker(r.opts.SyncInterval)
	defer syncTick.Stop()
	for {
		select {
		case it, ok := <-r.queue:
			if !ok {
				return
			}
			batch := []*item{it}
		more:
			for len(batch) < maxBatch {
				select {
				case it, ok := <-r.queue:
					if !ok {
						break more
					}
					batch = append(batch, it)
				default:
					break more
				}
			}
			r.write(batch)
		case <-tick.C:
			if err := r.Expire(); err != nil {
				r.opts.Logger.Warn("lifecycle: expire", "err", err)
			}
		case <-syncTick.C:
			if r.dirty {
				// An empty synced log entry: Pebble writes out and fsyncs
				// its log up to here, the unsynced events included.
				if err := r.db.LogData(nil, pebble.Sync); err != nil {
					r.opts.Logger.Warn("lifecycle: sync events", "err", err)
					continue
				}
				r.dirty = false
			}
		}
	}
}

// Key layout. Every key is also listed under prefixExpiry by write time.
const (
	prefixEvent  = 'e' // e msgId 0 time seq -> JSON Event
	prefixKey    = 'k' // k key 0 msgId -> write time
	prefixTrace  = 't' // t traceId 0 msgId -> write time
	prefixExpiry = 'x' // x time seq -> the keys a batch of events wrote (uvarint length, key)...
)

func (r *Recorder) write(batch []*item) {
	b := r.db.NewBatch()
	var barriers []chan struct{}
	// One expiry entry, keyed by the batch's write time and first
	// sequence number, lists every key the batch's events wrote.
	now := uint64(r.opts.Now().UnixNano())
	w := &r.scratch
	w.wt = binary.BigEndian.AppendUint64(w.wt[:0], now)
	w.written = w.written[:0]
	first := r.seq + 1
	for _, it := range batch {
		if it.done != nil {
			barriers = append(barriers, it.done)
			continue
		}
		r.add(b, &it.ev)
	}
	if len(w.written) > 0 {
		x := binary.BigEndian.AppendUint64(append(w.key[:0], prefixExpiry), now)
		b.Set(binary.BigEndian.AppendUint64(x, first), w.written, nil)
	}
	if !b.Empty() {
		if err := b.Commit(pebble.NoSync); err != nil {
			r.opts.Logger.Warn("lifecycle: write events", "events", len(batch)-len(barriers), "err", err)
		}
		r.dirty = true
	}
	b.Close()
	for _, d := range barriers {
		close(d)
	}
}

// scratch holds the writer goroutine's buffers, reused from batch to
// batch (a pebble.Batch copies what it is given).
type scratch struct {
	key, value, wt, written []byte
}

// add puts one event and its secondary keys into b, and lists the keys in
// r.scratch.written for the batch's expiry entry.
func (r *Recorder) add(b *pebble.Batch, e *Event) {
	if strings.IndexByte(e.MsgID, 0) >= 0 {
		return
	}
	w := &r.scratch
	v, err := appendEvent(w.value[:0], e)
	w.value = v
	if err != nil {
		return
	}
	r.seq++
	put := func(k, v []byte) {
		b.Set(k, v, nil)
		w.written = binary.AppendUvarint(w.written, uint64(len(k)))
		w.written = append(w.written, k...)
		w.key = k
	}
	k := appendIDKey(w.key[:0], prefixEvent, e.MsgID)
	k = binary.BigEndian.AppendUint64(k, uint64(e.Time.UnixNano()))
	put(binary.BigEndian.AppendUint64(k, r.seq), v)
	for _, key := range strings.Fields(e.Keys) {
		put(append(appendIDKey(w.key[:0], prefixKey, key), e.MsgID...), w.wt)
	}
	if e.TraceID != "" {
		put(append(appendIDKey(w.key[:0], prefixTrace, e.TraceID), e.MsgID...), w.wt)
	}
}

// appendIDKey appends prefix, s and a 0 separator to k.
func appendIDKey(k []byte, prefix byte, s string) []byte {
	k = append(k, prefix)
	k = append(k, s...)
	return append(k, 0)
}

// idKey is prefix, s and a 0 separator.
func idKey(prefix byte, s string) []byte {
	return appendIDKey(make([]byte, 0, len(s)+18), prefix, s)
}

// upper is the smallest key after every key starting with prefix.
func upper(prefix []byte) []byte {
	u := slices.Clone(prefix)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// scan calls fn for each key and value under prefix, in key order, until
// fn returns false.
func (r *Recorder) scan(prefix []byte, fn func(k, v []byte) bool) error {
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// Lookup returns the messages q names, each with its events oldest first:
// q is a message id, a message key or a trace id. At most limit messages
// (<= 0: 100), ordered by their first event.
func (r *Recorder) Lookup(q string, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = 100
	}
	if q == "" || strings.IndexByte(q, 0) >= 0 {
		return nil, nil
	}
	// Every message q names is a candidate, up to maxCandidates, and the
	// limit keeps the oldest of them, so that a cut leaves a contiguous
	// start of the timeline. The indexes are in message id order, which is
	// not time order: past maxCandidates messages under one key (a bound on
	// a query's cost), the candidates are the first ids, not the oldest.
	ids := map[string]bool{}
	var order []string
	addID := func(id string) {
		if !ids[id] && len(order) < maxCandidates {
			ids[id] = true
			order = append(order, id)
		}
	}
	found := false
	if err := r.scan(idKey(prefixEvent, q), func(_, _ []byte) bool { found = true; return false }); err != nil {
		return nil, err
	}
	if found {
		addID(q)
	}
	for _, p := range []byte{prefixKey, prefixTrace} {
		pre := idKey(p, q)
		if err := r.scan(pre, func(k, _ []byte) bool {
			addID(string(k[len(pre):]))
			return len(order) < maxCandidates
		}); err != nil {
			return nil, err
		}
	}
	out := make([]Message, 0, len(order))
	for _, id := range order {
		m := Message{MsgID: id}
		err := r.scan(idKey(prefixEvent, id), func(_, v []byte) bool {
			var e Event
			if json.Unmarshal(v, &e) == nil {
				m.Events = append(m.Events, e)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if len(m.Events) > 0 {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Message) int { return a.Events[0].Time.Compare(b.Events[0].Time) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Expire deletes the keys written more than Retention ago. A secondary key
// written again since is kept.
func (r *Recorder) Expire() error {
	cutoff := uint64(r.opts.Now().Add(-r.opts.Retention).UnixNano())
	lower := []byte{prefixExpiry}
	upperX := binary.BigEndian.AppendUint64([]byte{prefixExpiry}, cutoff+1)
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperX})
	if err != nil {
		return err
	}
	b := r.db.NewBatch()
	for ok := it.First(); ok; ok = it.Next() {
		for rest := it.Value(); len(rest) > 0; {
			n, w := binary.Uvarint(rest)
			if w <= 0 || uint64(len(rest)-w) < n || n == 0 {
				break // damaged: drop the entry, leave its keys
			}
			k := rest[w : w+int(n)]
			rest = rest[w+int(n):]
			if r.keep(k, cutoff) {
				continue
			}
			b.Delete(slices.Clone(k), nil)
		}
		b.Delete(slices.Clone(it.Key()), nil)
		if b.Len() > 1<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				it.Close()
				return err
			}
			b = r.db.NewBatch()
		}
	}
	err = errors.Join(it.Error(), it.Close())
	if !b.Empty() {
		err = errors.Join(err, b.Commit(pebble.NoSync))
	}
	return err
}

// keep reports whether a secondary key was written again after cutoff.
func (r *Recorder) keep(k []byte, cutoff uint64) bool {
	if k[0] != prefixKey && k[0] != prefixTrace {
		return false
	}
	v, closer, err := r.db.Get(k)
	if err != nil {
		return false
	}
	defer closer.Close()
	return len(v) == 8 && binary.BigEndian.Uint64(v) > cutoff
}

// TraceIDOf returns the trace id of a W3C traceparent value
// (version-traceid-spanid-flags), or "" if it is one OpenTelemetry's
// propagator does not continue (malformed, or a zero trace or span id):
// such a message's spans start a trace of their own.
func TraceIDOf(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) < 4 || !lowerHex(parts[0], 2) || parts[0] == "ff" ||
		(parts[0] == "00" && (len(parts) != 4 || parts[3] > "03")) || // version 00: no extra part, no reserved flag bits
		!lowerHex(parts[1], 32) || !lowerHex(parts[2], 16) || !lowerHex(parts[3], 2) ||
		parts[1] == "00000000000000000000000000000000" || parts[2] == "0000000000000000" {
		return ""
	}
	return parts[1]
}

// lowerHex reports whether s is n lower-case hex digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
