package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// AppendResult is what one appended message got.
type AppendResult struct {
	// PhysicalOffset is the record's offset in the commit log.
	PhysicalOffset int64
	// QueueOffset is the record's logical offset in its consume queue
	// (0 for prepared and rolled-back transaction records, which have none).
	QueueOffset int64
	// Size is the record's encoded size.
	Size int32
	// StoreTimestamp is when the store accepted it (ms since the epoch).
	StoreTimestamp int64
	// MsgID is RocketMQ's offset message id (store host + physical offset).
	MsgID string
}

type queueKey struct {
	topic string
	qid   int32
}

// chunk is a run of encoded bytes at a physical offset, inside one segment.
type chunk struct {
	off  int64
	data []byte
}

// batch is what the writer goroutine writes (and, under SyncFlush, fsyncs)
// in one go: every append that arrived while the previous batch was on disk.
type batch struct {
	chunks []chunk
	// waiters is how many appends wait for the batch; out is their
	// answer (nil until the first joins).
	waiters int
	out     *outcome
	// records says what the dispatcher needs of each record (and blank)
	// in the batch, in log order; writeBatch hands it over once the
	// batch is visible.
	records []dispatchRecord
	end     int64
}

// outcome is a batch's answer to its appends: the writer sets err and
// closes done. One per group commit, not a channel per append.
type outcome struct {
	done chan struct{}
	err  error
	// wake is closed when done is, or SyncFlushTimeout after the batch's
	// first append (SyncFlush only), whichever comes first: the one
	// channel its appends wait on (see wait). One channel rather than a
	// select over done and a timeout channel: the runtime readies every
	// waiter of a closed channel at once, where a select's waiters, once
	// woken, each lock every channel of their select again to leave it,
	// the batch's shared ones included, one after another. One timer per
	// group commit, not one per append: per-append timers took a fifth of
	// the store's CPU at 64 writers (timer heaps and their locks); a
	// waiter arms its own only when its batch's has fired, which takes a
	// stalled fsync. Under AsyncFlush wake is done.
	wake  chan struct{}
	woken atomic.Bool // wake is closed (or being closed)
	stop  func() bool // stops the timer that closes wake
}

// newOutcome makes the answer of a batch whose first append is joining;
// under SyncFlush (timeout > 0) it starts the batch's flush timeout on clk.
func newOutcome(timeout time.Duration, clk flushClock) *outcome {
	o := &outcome{done: make(chan struct{})}
	o.wake = o.done
	if timeout > 0 {
		o.wake = make(chan struct{})
		o.stop = clk.AfterFunc(timeout, o.rouse)
	}
	return o
}

// rouse closes wake, once.
func (o *outcome) rouse() {
	if o.woken.CompareAndSwap(false, true) {
		close(o.wake)
	}
}

// answer gives every append of the batch err.
func (o *outcome) answer(err error) {
	if o.stop != nil {
		o.stop()
	}
	o.err = err
	close(o.done)
	if o.wake != o.done {
		o.rouse()
	}
}

func (b *batch) add(off int64, rec []byte) {
	buf := b.reserve(off, len(rec))
	b.commit(len(append(buf, rec...)))
}

// reserve makes room for n bytes at physical offset off (continuing the
// open chunk when contiguous) and returns an empty slice with that capacity
// to encode into; commit then accounts for the bytes.
func (b *batch) reserve(off int64, n int) []byte {
	k := len(b.chunks)
	switch {
	case k > 0 && len(b.chunks[k-1].data) == 0:
		b.chunks[k-1].off = off
	case k == 0 || b.chunks[k-1].off+int64(len(b.chunks[k-1].data)) != off:
		b.chunks = append(b.chunks, chunk{off: off, data: make([]byte, 0, max(n, 64<<10)+pageSize)})
	}
	c := &b.chunks[len(b.chunks)-1]
	if cap(c.data)-len(c.data) < n {
		// Room for writeChunks' page padding too, so that it never copies.
		grown := make([]byte, len(c.data), max(2*cap(c.data), len(c.data)+n+pageSize))
		copy(grown, c.data)
		c.data = grown
	}
	return c.data[len(c.data):len(c.data)]
}

// cut ends the open chunk: the next reserve starts a new one even where
// it would be contiguous. A segment's end lies between them: when a blank
// header fills a segment's last bytes exactly, the next record starts
// right where it ends, but in another file.
func (b *batch) cut() {
	b.chunks = append(b.chunks, chunk{off: -1})
}

func (b *batch) commit(n int) {
	c := &b.chunks[len(b.chunks)-1]
	c.data = c.data[:len(c.data)+n]
}

func (b *batch) reset() {
	// Keep one buffer of modest size for the next batch.
	var keep []byte
	if len(b.chunks) > 0 && cap(b.chunks[0].data) <= 8<<20 {
		keep = b.chunks[0].data[:0]
	}
	clear(b.chunks)
	b.chunks = b.chunks[:0]
	if keep != nil {
		b.chunks = append(b.chunks, chunk{off: -1, data: keep})
	}
	b.waiters, b.out = 0, nil
	clear(b.records) // let go of the messages' strings
	b.records = b.records[:0]
}

// Store is the broker's message store: a commit log, consume queues built
// from it by a dispatcher, and a key index. It is safe for concurrent use.
type Store struct {
	opts  Options
	log   *commitLog
	cqs   *queueTable
	idx   *index
	abort string // path of the abort marker

	mu        sync.Mutex // guards the fields below: the append path
	next      int64      // next physical offset to assign
	queueNext map[queueKey]int64
	cur       *batch // collecting appends
	spare     *batch // recycled by the writer
	failed    error  // first write/fsync error; appends are refused after it
	// gatherWant, while the writer gathers a SyncFlush batch, is the number
	// of waiters below which an append does not wake it.
	gatherWant int
	closed     bool

	written    atomic.Int64 // end of what the OS has
	durable    atomic.Int64 // end of what is fsynced
	dispatched atomic.Int64 // end of what consume queues and index hold
	// checkpointed is where the next recovery would start re-dispatching:
	// the dispatch position of the last checkpoint written (at Open, where
	// recovery started). Consume-queue entries of records past it may not
	// be durable, so retention keeps the segments holding them.
	checkpointed atomic.Int64
	// removedTo is the log's min offset up to which retention dropped
	// the index files and queue entries of removed segments (Open's
	// recovery did below its min offset): see dropRemoved.
	removedTo atomic.Int64

	writeSignal    chan struct{}
	dispatchSignal chan struct{}
	stop           chan struct{}
	wg             sync.WaitGroup
	cpMu           sync.Mutex // serialises checkpoints
	flushMu        sync.Mutex // serialises commit-log fsyncs under AsyncFlush
	dispatchBuf    []byte     // dispatchTo's read buffer (one dispatchTo runs at a time)
	// dispatchMu is held by every dispatch after Open (the loop's, and
	// Close's), and by DeleteTopic to keep them out while it removes a
	// topic's queues.
	dispatchMu sync.Mutex
	// deleted are the deleted topics whose records the log may still
	// hold, by name (deleted.go). The dispatcher reads it under
	// dispatchMu, GetMessages under mu; after Open it is replaced, never
	// changed in place, under both.
	deleted map[string]deletedTopic

	handMu    sync.Mutex       // guards the hand-over from the writer to the dispatcher
	handed    []dispatchRecord // written (SyncFlush: durable) records not yet dispatched, in log order
	handSpare []dispatchRecord // the dispatcher's previous slice, for reuse
	handLimit int              // most records handed holds (defaultHandLimit)
	// handDropped says the writer dropped records past handLimit: the
	// dispatcher reads the log up to the visible end.
	handDropped bool

	disk          diskState // DiskFull's answer (diskfull.go)
	holds         holds     // what retention must keep (Hold)
	lock          *os.File  // <dir>/lock, flocked until Close (lockDir)
	retentionOnce sync.Once // starts the retention loop
}

// defaultHandLimit bounds the records the writer holds for the dispatcher
// (about 100 bytes each, plus the messages' topic and properties): past it,
// as when a long OnDispatch or a slow disk holds the dispatcher up, the
// dispatcher reads the log instead.
const defaultHandLimit = 1 << 16

// Open opens (or creates) the store in opts.Dir, recovering it if the last
// run did not shut down cleanly.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := fsutil.MkdirAllSync(opts.Dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			lock.Close() // releases the lock
		}
	}()
	s := &Store{
		opts:           opts,
		lock:           lock,
		abort:          filepath.Join(opts.Dir, "abort"),
		queueNext:      make(map[queueKey]int64),
		cur:            &batch{},
		spare:          &batch{},
		writeSignal:    make(chan struct{}, 1),
		dispatchSignal: make(chan struct{}, 1),
		stop:           make(chan struct{}),
		handLimit:      defaultHandLimit,
	}
	if s.log, err = openCommitLog(filepath.Join(opts.Dir, "commitlog"), opts.SegmentSize, opts.fs, opts.FlushType == SyncFlush); err != nil {
		return nil, err
	}
	s.log.logger = opts.Logger
	if s.cqs, err = openQueueTable(filepath.Join(opts.Dir, "consumequeue"), opts.QueueEntriesPerFile, opts.fs); err != nil {
		s.log.close()
		return nil, err
	}
	if err := s.openDeleted(); err != nil {
		s.cqs.close()
		s.log.close()
		return nil, err
	}
	if err := removeLegacyIndex(filepath.Join(opts.Dir, "index"), opts.Logger); err != nil {
		s.cqs.close()
		s.log.close()
		return nil, err
	}
	if s.idx, err = openIndex(filepath.Join(opts.Dir, "keyindex"), opts.SegmentSize, opts.fs); err != nil {
		s.cqs.close()
		s.log.close()
		return nil, err
	}
	err = s.recover()
	s.removedTo.Store(s.log.minOffset())
	if err == nil {
		err = s.log.openActive(s.next)
	}
	if err != nil {
		s.idx.abandon()
		s.cqs.close()
		s.log.close()
		return nil, err
	}
	if err := writeFileAtomic(s.abort, nil); err != nil {
		s.idx.abandon()
		s.cqs.close()
		s.log.close()
		return nil, err
	}
	opened = true
	s.checkDisk()
	s.wg.Add(4)
	go s.writeLoop()
	go s.dispatchLoop()
	go s.flushLoop()
	go s.diskLoop()
	if !opts.DeferRetention {
		s.StartRetention()
	}
	return s, nil
}

// StartRetention starts the retention loop (Options.DeferRetention); it
// does nothing if it runs already or the store is closed.
func (s *Store) StartRetention() {
	s.retentionOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		s.wg.Add(1)
		go s.retentionLoop()
	})
}

// Append stores one message. Under SyncFlush it returns after the record is
// fsynced; under AsyncFlush after it is written to the operating system.
func (s *Store) Append(ctx context.Context, m *message.Message) (AppendResult, error) {
	msgs := [1]*message.Message{m}
	var res [1]AppendResult
	t, err := s.enqueue(msgs[:], res[:])
	if err != nil {
		return AppendResult{}, err
	}
	if err := s.wait(ctx, t); err != nil {
		return AppendResult{}, err
	}
	return res[0], nil
}

// AppendBatch stores messages as consecutive records and acknowledges them
// together. On error none of them is acknowledged (some may still have been
// written, as with any unacknowledged send).
func (s *Store) AppendBatch(ctx context.Context, msgs []*message.Message) ([]AppendResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	res := make([]AppendResult, len(msgs))
	t, err := s.enqueue(msgs, res)
	if err != nil {
		return nil, err
	}
	return res, s.wait(ctx, t)
}

// AppendBatchAsync assigns offsets to msgs and queues them for the writer,
// as AppendBatch does, but returns at once with the batch's Pending
// answer. Batches are written in the order AppendBatchAsync was called, so
// a caller can prepare its next batch while the previous one is being
// flushed.
func (s *Store) AppendBatchAsync(msgs []*message.Message) ([]AppendResult, *Pending, error) {
	if len(msgs) == 0 {
		return nil, &Pending{}, nil
	}
	res := make([]AppendResult, len(msgs))
	t, err := s.enqueue(msgs, res)
	if err != nil {
		return nil, nil, err
	}
	return res, &Pending{s: s, t: t}, nil
}

// Pending is the answer to come of a batch AppendBatchAsync queued.
type Pending struct {
	s *Store
	t ticket // zero for an empty batch
}

// Wait blocks until the batch is acknowledged (durable under SyncFlush) or
// failed, its SyncFlushTimeout passes (ErrFlushTimeout: the records may
// still be stored), or ctx ends, as AppendBatch waits.
func (p *Pending) Wait(ctx context.Context) error {
	if p.t.out == nil {
		return nil
	}
	return p.s.wait(ctx, p.t)
}

// Outcome blocks until the store answers the batch, whatever its flush
// timeout, or ctx ends. nil means the records are stored (durable under
// SyncFlush). A caller whose own state must follow the log (the delay
// scheduler's deliveries, the transaction service's outcomes) learns from
// it what became of a batch Wait gave up on: the writer answers every
// batch it took, the last ones when the store closes.
func (p *Pending) Outcome(ctx context.Context) error {
	if p.t.out == nil {
		return nil
	}
	select {
	case <-p.t.out.done:
		return p.t.out.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ticket is what an append waits on: its batch's answer, and its sync
// flush timeout (SyncFlush only).
type ticket struct {
	out      *outcome
	deadline time.Time // of this append's SyncFlushTimeout
}

// enqueue checks msgs (at least one), assigns their offsets into res
// (len(msgs) long) and adds their records to the collecting batch. It
// keeps neither msgs nor res.
func (s *Store) enqueue(msgs []*message.Message, res []AppendResult) (ticket, error) {
	var small [4]int
	sizes := small[:0]
	if len(msgs) > len(small) {
		sizes = make([]int, 0, len(msgs))
	}
	total := int64(0)
	for _, m := range msgs {
		n, err := s.checkMessage(m)
		if err != nil {
			return ticket{}, err
		}
		sizes = append(sizes, n)
		total += int64(n)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ticket{}, ErrClosed
	}
	if s.failed != nil {
		err := s.failed
		s.mu.Unlock()
		return ticket{}, err
	}
	segSize := s.opts.SegmentSize
	if in := s.next % segSize; in+total+message.BlankHeaderSize > segSize {
		// These records may start the next segment: refuse them, before
		// they take offsets, if it cannot be made. (The segment s.next is
		// in exists, even when s.next is its start: only Open leaves the
		// log's end there, and it makes that segment.)
		if err := s.log.ready(s.next - in + segSize); err != nil {
			s.mu.Unlock()
			return ticket{}, err
		}
	}
	now := s.opts.Now().UnixMilli()
	for i, m := range msgs {
		size := int64(sizes[i])
		if room := segSize - s.next%segSize; size+message.BlankHeaderSize > room {
			s.cur.add(s.next, message.AppendBlank(make([]byte, 0, message.BlankHeaderSize), int(room)))
			s.cur.cut()
			s.cur.records = append(s.cur.records, dispatchRecord{phys: s.next, size: int32(room), blank: true})
			s.next += room
		}
		qo := int64(0)
		if tt := message.TransactionType(m.SysFlag); tt != message.TransactionPreparedType && tt != message.TransactionRollbackType {
			k := queueKey{m.Topic, m.QueueID}
			qo = s.queueNext[k]
			s.queueNext[k] = qo + 1
		}
		mm := *m
		mm.StoreHost = s.opts.StoreHost
		buf := s.cur.reserve(s.next, int(size))
		rec, _ := message.AppendSealableRecord(buf, &mm) // sizes were checked above
		message.SetOffsets(rec, qo, s.next, now)
		message.Seal(rec)
		s.cur.commit(len(rec))
		s.cur.records = append(s.cur.records, dispatchRecord{topic: m.Topic, props: message.StripCRCSlot(m.Properties), qid: m.QueueID,
			sysFlag: m.SysFlag, size: int32(size), queueOffset: qo, phys: s.next, storeTs: now})
		res[i] = AppendResult{PhysicalOffset: s.next, QueueOffset: qo, Size: int32(size), StoreTimestamp: now,
			MsgID: message.OffsetMsgID(s.opts.StoreHost, s.next)}
		s.next += size
	}
	s.cur.end = s.next
	var t ticket
	if s.cur.out == nil {
		var timeout time.Duration
		if s.opts.FlushType == SyncFlush {
			timeout = s.opts.SyncFlushTimeout
		}
		s.cur.out = newOutcome(timeout, s.opts.timeouts)
	}
	t.out = s.cur.out
	if s.opts.FlushType == SyncFlush {
		t.deadline = s.opts.timeouts.Now().Add(s.opts.SyncFlushTimeout)
	}
	s.cur.waiters++
	wake := s.cur.waiters >= s.gatherWant
	s.mu.Unlock()

	if wake {
		select {
		case s.writeSignal <- struct{}{}:
		default:
		}
	}
	return t, nil
}

// wait blocks until the writer answers t's batch, the append's sync-flush
// timeout passes, or ctx ends. Under AsyncFlush there is no timeout. Under
// SyncFlush the batch's timer wakes it first: an append that joined the
// batch later than its first then waits for the rest of its own time with
// a timer of its own. An answer that is already there wins over the
// timeout.
func (s *Store) wait(ctx context.Context, t ticket) error {
	if d := ctx.Done(); d == nil {
		<-t.out.wake
	} else {
		select {
		case <-t.out.wake:
		case <-d:
			return ctx.Err()
		}
	}
	select {
	case <-t.out.done:
		return t.out.err
	default:
	}
	if left := t.deadline.Sub(s.opts.timeouts.Now()); left > 0 {
		fired := make(chan struct{})
		stop := s.opts.timeouts.AfterFunc(left, func() { close(fired) })
		defer stop()
		select {
		case <-t.out.done:
			return t.out.err
		case <-fired:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-t.out.done:
		return t.out.err
	default:
	}
	return fmt.Errorf("%w after %v", ErrFlushTimeout, s.opts.SyncFlushTimeout)
}

// Check reports why Append would refuse m (ErrBadMessage,
// ErrMessageTooLarge), or nil.
func (s *Store) Check(m *message.Message) error {
	_, err := s.checkMessage(m)
	return err
}

func (s *Store) checkMessage(m *message.Message) (int, error) {
	if err := message.ValidateTopic(m.Topic); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if m.QueueID < 0 {
		return 0, fmt.Errorf("%w: negative queue id %d", ErrBadMessage, m.QueueID)
	}
	if len(m.Body) > s.opts.MaxMessageSize {
		return 0, fmt.Errorf("%w: body of %d bytes, limit %d", ErrMessageTooLarge, len(m.Body), s.opts.MaxMessageSize)
	}
	n, err := message.SealableRecordSize(&message.Message{Topic: m.Topic, Properties: m.Properties, Body: m.Body,
		BornHost: m.BornHost, StoreHost: s.opts.StoreHost})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return n, nil
}

// writeLoop is the single writer: it takes the collecting batch, writes it,
// fsyncs it under SyncFlush, and answers its waiters.
//
// Under SyncFlush it first gathers: the writers the last batch acknowledged
// are sending their next message, and taking the batch before they have
// would split the writers into two groups that alternate, each fsync
// carrying half of them. So it waits until they are back, or half the last
// batch's write+fsync time has passed. Under AsyncFlush it yields once
// instead: the append that woke it made it the next goroutine to run, and
// without the yield every batch would hold a single message.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	var want int
	var last time.Duration
	for {
		select {
		case <-s.writeSignal:
			if s.opts.FlushType == SyncFlush {
				s.gather(want, last/2)
			} else {
				runtime.Gosched()
			}
			start := time.Now()
			want = s.writeBatch()
			last = time.Since(start)
		case <-s.stop:
			s.writeBatch()
			return
		}
	}
}

// gather waits until the collecting batch holds want waiters, budget
// passes, or the store stops.
func (s *Store) gather(want int, budget time.Duration) {
	s.mu.Lock()
	if budget <= 0 || s.cur.waiters >= want {
		s.mu.Unlock()
		return
	}
	s.gatherWant = want
	s.mu.Unlock()
	t := time.NewTimer(budget)
	defer t.Stop()
	for full := false; !full; {
		select {
		case <-s.writeSignal:
		case <-t.C:
			full = true
		case <-s.stop:
			full = true
		}
		s.mu.Lock()
		if full = full || s.cur.waiters >= want; full {
			s.gatherWant = 0
		}
		s.mu.Unlock()
	}
}

// writeBatch writes (and under SyncFlush fsyncs) the collecting batch and
// answers its waiters. It returns how many waiters the next batch should
// gather: those it answered plus those already waiting.
func (s *Store) writeBatch() int {
	s.mu.Lock()
	b := s.cur
	if b.waiters == 0 {
		s.mu.Unlock()
		return 0
	}
	s.cur, s.spare = s.spare, nil
	failed := s.failed
	s.mu.Unlock()

	err := failed
	if err == nil {
		if err = s.writeChunks(b.chunks); err != nil {
			err = s.fail(err)
		}
	}
	if err == nil {
		s.written.Store(b.end)
		if s.opts.FlushType == SyncFlush {
			s.durable.Store(b.end)
		}
	}
	b.out.answer(err)
	if err == nil {
		s.handMu.Lock()
		if len(s.handed)+len(b.records) <= s.handLimit {
			s.handed = append(s.handed, b.records...)
		} else {
			// The dispatcher is far behind: stop holding records for it
			// (and their strings); it reads the log instead. All of them,
			// so that what it finds next does not continue its offset.
			clear(s.handed)
			s.handed, s.handDropped = s.handed[:0], true
		}
		s.handMu.Unlock()
		s.signalDispatch()
	}
	answered := b.waiters
	b.reset()
	s.mu.Lock()
	s.spare = b
	waiting := s.cur.waiters
	s.mu.Unlock()
	return answered + waiting
}

// writeChunks writes the chunks and, under SyncFlush, fsyncs every segment
// they touched.
//
// Each write is padded with zeros to the end of its last page (not past the
// segment's end). Past the log's end the segment holds nothing of use
// (zeros, or a recycled segment's old bytes, which are never read as
// records), so this loses nothing, and the page cache then never has to
// read a page from disk to complete a partial write: a write's first page is
// the one the previous write ended in, already cached, and its last page
// is written whole. (New segments are zero-filled with direct I/O, so their
// pages are not cached; see openDirect.)
func (s *Store) writeChunks(chunks []chunk) error {
	var touched []*segment
	for _, c := range chunks {
		if len(c.data) == 0 {
			continue
		}
		data := c.data
		if pad := pagePad(c.off+int64(len(data)), s.opts.SegmentSize); pad > 0 {
			data = append(data, pageOfZeros[:pad]...)
		}
		if n := len(touched); n > 0 && s.opts.FlushType == SyncFlush && c.off >= touched[n-1].base+s.opts.SegmentSize {
			// The batch crosses into the next segment: make the first
			// segment's part durable before writing any of the next one's.
			// Otherwise a crash could keep records of the next segment while
			// losing one before them, and in a recycled segment an old
			// closing blank found where that one was would be taken for
			// the real end of the segment, leaving a hole in the log.
			if err := touched[n-1].f.Sync(); err != nil {
				return err
			}
		}
		seg, err := s.log.writeAt(data, c.off)
		if err != nil {
			return err
		}
		if len(touched) == 0 || touched[len(touched)-1] != seg {
			touched = append(touched, seg)
		}
	}
	if s.opts.FlushType == SyncFlush {
		start := time.Now()
		for _, seg := range touched {
			if err := seg.f.Sync(); err != nil {
				return err
			}
		}
		s.flushed(start)
	}
	return nil
}

// pageSize is the page-cache granularity writeChunks pads writes to.
const pageSize = 4096

var pageOfZeros [pageSize]byte

// pagePad is how many zero bytes take a write ending at physical offset end
// to the next page boundary of its segment file, or to the file's end if
// that is nearer.
func pagePad(end, segSize int64) int {
	inFile := end % segSize
	if inFile == 0 {
		return 0 // the write ended at the segment's end (or the file is new)
	}
	return int(min(-inFile&(pageSize-1), segSize-inFile))
}

// flushed reports an fsync that began at start to Options.OnFlush.
func (s *Store) flushed(start time.Time) {
	if s.opts.OnFlush != nil {
		s.opts.OnFlush(time.Since(start))
	}
}

// fail records the first write or fsync error and makes the store refuse
// appends, fsyncs and checkpoints from then on.
func (s *Store) fail(cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: %w", ErrWriteFailed, cause)
		s.opts.Logger.Error("store write failed; refusing further appends", "err", cause)
	}
	return s.failed
}

// failure is the error fail recorded, or nil.
func (s *Store) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// flushLoop fsyncs the commit log every FlushInterval under AsyncFlush and
// writes a checkpoint every CheckpointInterval under both flush types.
func (s *Store) flushLoop() {
	defer s.wg.Done()
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	cp := time.NewTicker(s.opts.CheckpointInterval)
	defer cp.Stop()
	for {
		select {
		case <-flush.C:
			if s.opts.FlushType == AsyncFlush {
				s.intervalFlush()
			}
		case <-cp.C:
			if err := s.checkpoint(false); err != nil && !errors.Is(err, ErrWriteFailed) {
				s.opts.Logger.Warn("checkpoint failed", "err", err)
			}
		case <-s.stop:
			return
		}
	}
}

// intervalFlush is flushLoop's AsyncFlush fsync. A failed fsync fails the
// store, which logs it once, and every later flush returns the store's
// failure (ErrWriteFailed) unlogged; any other error is logged each time.
func (s *Store) intervalFlush() {
	if err := s.flushCommitLog(); err != nil && !errors.Is(err, ErrWriteFailed) {
		s.opts.Logger.Warn("commit-log flush failed", "err", err)
	}
}

// flushCommitLog fsyncs every segment between the durable and the written
// end and advances the durable end. Segments retention has removed are
// skipped (it removes none that is not durable, but a removed one needs no
// fsync in any case). A failed fsync fails the store, and a failed store
// never advances the durable end again.
func (s *Store) flushCommitLog() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.failure(); err != nil {
		return err
	}
	target := s.written.Load()
	from := s.durable.Load()
	if target <= from {
		return nil
	}
	defer s.flushed(time.Now())
	if err := s.syncLog(from, target); err != nil {
		var se *syncError
		if errors.As(err, &se) {
			return s.fail(se.err)
		}
		return err
	}
	s.durable.Store(target)
	return nil
}

// syncError is a failed fsync of a commit-log segment, as syncLog returns
// it: unlike its other errors, one that fails the store.
type syncError struct{ err error }

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// syncLog fsyncs every commit-log segment holding bytes in [from, to),
// skipping those retention removed.
func (s *Store) syncLog(from, to int64) error {
	from = max(from, s.log.minOffset())
	seg := s.opts.SegmentSize
	for base := from - from%seg; base < to; base += seg {
		sg, err := s.log.segmentAt(base, false)
		if err != nil {
			return err
		}
		if err := sg.f.Sync(); err != nil {
			return &syncError{err}
		}
	}
	return nil
}

// Close stops the store: pending appends are written, the dispatcher
// catches up, a checkpoint is written and the abort marker removed. After
// a write failure the marker is kept so the next Open recovers.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()

	var err error
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if failed == nil {
		if err = s.flushCommitLog(); err == nil {
			s.dispatchMu.Lock() // a DeleteTopic that began before Close ends first
			err = s.dispatchTo(s.written.Load())
			s.dispatchMu.Unlock()
			if err == nil {
				if err = s.checkpoint(true); err == nil {
					err = os.Remove(s.abort)
				}
			}
		}
	}
	for _, e := range []error{s.idx.close(), s.cqs.close(), s.log.close(), s.lock.Close()} {
		if e != nil && err == nil {
			err = e
		}
	}
	return err
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Options returns the options the store runs with, defaults filled in.
func (s *Store) Options() Options { return s.opts }

// FlushType is the store's flush type.
func (s *Store) FlushType() FlushType { return s.opts.FlushType }

// MinPhysicalOffset is the first commit-log offset still stored.
func (s *Store) MinPhysicalOffset() int64 { return s.log.minOffset() }

// MaxPhysicalOffset is the end of the visible commit log: under SyncFlush
// what is durable, under AsyncFlush what is written.
func (s *Store) MaxPhysicalOffset() int64 { return s.visibleLimit() }

// DurableOffset is the commit-log offset up to which every record is
// fsynced.
func (s *Store) DurableOffset() int64 { return s.durable.Load() }

// Flush fsyncs every record appended so far that is not yet durable: under
// AsyncFlush what the interval flush has not reached, under SyncFlush
// nothing (an acknowledged append is durable already). A component that
// saves progress depending on records it appended (the delay scheduler's
// deliveries, the transaction service's outcomes) flushes first, so an OS
// crash cannot keep the progress and lose the records. A failure turns
// the store read-only, as the interval flush's does.
func (s *Store) Flush() error {
	if err := s.flushCommitLog(); err != nil {
		return s.fail(err)
	}
	return nil
}

// DispatchedOffset is the commit-log offset up to which consume queues and
// the index are built.
func (s *Store) DispatchedOffset() int64 { return s.dispatched.Load() }

func (s *Store) visibleLimit() int64 {
	if s.opts.FlushType == SyncFlush {
		return s.durable.Load()
	}
	return s.written.Load()
}

func (s *Store) signalDispatch() {
	select {
	case s.dispatchSignal <- struct{}{}:
	default:
	}
}
