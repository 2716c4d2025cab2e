package txn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/pebbledb"
	"github.com/halfbackmq/halfback/message"
)

// Service keeps the broker's transactions. Its methods are safe for
// concurrent use.
type Service struct {
	opts Options
	st   *store.Store
	db   *pebble.DB

	mu      sync.Mutex
	live    map[int64]*entry         // pending and parked, by half offset
	byUniq  map[string][]*entry      // live ones by UNIQ_KEY (of several groups, or messages)
	storing map[string]chan struct{} // UNIQ_KEYs of half messages being stored
	// landing holds, by offset, the half messages whose senders were
	// answered (a sync flush timeout) before the store answered for them.
	landing  map[int64]*landing
	inflight map[uint64]int64 // writes under way: the log end when each began
	nextID   uint64
	checker  Checker
	dirty    bool  // state changed since the last checkpoint
	saved    int64 // covered as the last checkpoint saved it

	stats counters

	// ctx ends at Close: it stops the loops and the writes still waiting
	// for the store's answer.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the loops and the writes under way
	started atomic.Bool
	closed  atomic.Bool
	// life keeps Close from closing the state database under a Lowest or
	// MoveBelow that the store's retention runs.
	life sync.RWMutex
}

// Open opens the state database in opts.Dir, replays the commit log from
// its last checkpoint, undoes the changes whose records the log lost in an
// OS crash, and returns the service. Call Start to begin checks.
func Open(st *store.Store, opts Options) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	db, err := pebbledb.Open(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("txn: open state in %s: %w", opts.Dir, err)
	}
	s := &Service{opts: opts, st: st, db: db, live: make(map[int64]*entry),
		byUniq: make(map[string][]*entry), storing: make(map[string]chan struct{}), landing: make(map[int64]*landing),
		inflight: make(map[uint64]int64), checker: opts.Checker}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.recover(); err != nil {
		s.cancel()
		db.Close()
		return nil, err
	}
	return s, nil
}

// Options returns the options the service runs with, defaults filled in.
func (s *Service) Options() Options { return s.opts }

// Start begins the check loop and the periodic checkpoint.
func (s *Service) Start() {
	if s.closed.Load() || !s.started.CompareAndSwap(false, true) {
		return
	}
	s.loop(s.checkPeriod(), s.checkRound)
	s.loop(s.opts.CheckpointInterval, func() {
		if err := s.checkpoint(); err != nil {
			s.opts.Logger.Error("txn: checkpoint", "err", err)
		}
	})
}

// SetChecker replaces the Checker check-backs go through.
func (s *Service) SetChecker(c Checker) {
	s.mu.Lock()
	s.checker = c
	s.mu.Unlock()
}

// Close stops the loops, writes a final checkpoint and closes the state
// database. In-flight calls finish first; a write whose record the store
// has not answered for yet is left to the replay of the next Open.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	s.mu.Lock() // a write starting now sees closed, or is waited for
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	s.life.Lock() // a MoveBelow under way (the store's retention) finishes first
	defer s.life.Unlock()
	return errors.Join(s.checkpoint(), s.db.Close())
}

// SendHalf stores m as a half message of producer group (the message's
// PGROUP property when group is empty): under HalfTopic, queue 0, with its
// real topic and queue kept in properties and any delay removed. It is
// invisible to consumers until committed. A message whose properties
// leave no room for the two its copy carries when parked or moved is
// refused with [ErrBadHalf].
//
// A message whose UNIQ_KEY is that of a live (pending or parked) half
// message of the same group, with the same real topic, tags and body, is
// not stored again: SendHalf answers with the live one (Duplicate reports
// it), so a producer that retries a half send with a deterministic id
// never opens a second transaction. A different message under a live one's
// id (a workflow reset to before its step, run again with other data while
// the replaced run's half message waits for its check-back) is stored as a
// transaction of its own: answered with the live one, its sender would
// commit the other message's body.
func (s *Service) SendHalf(ctx context.Context, m *message.Message, group string) (store.AppendResult, error) {
	res, _, err := s.SendHalfRepeat(ctx, m, group)
	return res, err
}

// SendHalfRepeat is SendHalf that also reports whether the answer is the
// live half message of a repeated send (repeat: nothing was stored).
func (s *Service) SendHalfRepeat(ctx context.Context, m *message.Message, group string) (res store.AppendResult, repeat bool, err error) {
	if s.closed.Load() {
		return store.AppendResult{}, false, ErrClosed
	}
	h, err := halfMessage(m, group)
	if err != nil {
		return store.AppendResult{}, false, err
	}
	release := func() {}
	if uniq, _ := message.Property(h.Properties, message.PropertyUniqKey); uniq != "" {
		res, dup, rel, err := s.claimUniq(ctx, uniq, h)
		if err != nil || dup {
			return res, dup, err
		}
		release = rel
	}
	// A sender answered before the store answered (FLUSH_DISK_TIMEOUT
	// carries the offsets) may end the transaction at once: End waits for
	// the half message under s.landing until its fate is known.
	l := &landing{done: make(chan struct{})}
	res, err = s.write(ctx, h, func(r store.AppendResult) {
		s.addHalf(h, r)
	}, func() {
		release()
		l.land(s)
	})
	if err != nil && res.MsgID != "" {
		s.mu.Lock()
		l.wait(s, res.PhysicalOffset)
		s.mu.Unlock()
	}
	return res, false, err
}

// claimUniq finds a live half message with UNIQ_KEY uniq of h's group
// (dup), or reserves uniq until release is called (with s.mu held),
// waiting for a concurrent SendHalf of the same id to finish first. A
// half message whose write the store has not answered yet keeps its id
// reserved, so a producer's retry waits for it instead of storing a
// second one.
func (s *Service) claimUniq(ctx context.Context, uniq string, h *message.Message) (res store.AppendResult, dup bool, release func(), err error) {
	group, _ := message.Property(h.Properties, message.PropertyProducerGroup)
	var others []*entry // live half messages of uniq that are not h's message
	for {
		s.mu.Lock()
		if e := s.liveOf(uniq, group, others); e != nil {
			res = store.AppendResult{PhysicalOffset: e.half, QueueOffset: e.queueOffset, StoreTimestamp: e.storeMs, MsgID: e.msgID}
			content := e.content
			s.mu.Unlock()
			if s.sameMessage(content, h) {
				s.stats.duplicates.Add(1)
				return res, true, nil, nil
			}
			others, res = append(others, e), store.AppendResult{}
			continue
		}
		wait := s.storing[uniq]
		if wait == nil {
			ch := make(chan struct{})
			s.storing[uniq] = ch
			s.mu.Unlock()
			return res, false, func() {
				delete(s.storing, uniq)
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return res, false, nil, ctx.Err()
		}
	}
}

// liveOf returns a live half message of uniq and group not in skip, or
// nil. Caller holds s.mu.
func (s *Service) liveOf(uniq, group string, skip []*entry) *entry {
	for _, e := range s.byUniq[uniq] {
		if e.group == group && !slices.Contains(skip, e) {
			return e
		}
	}
	return nil
}

// sameMessage reports whether the half message stored at content is h's
// message: the same real topic, tags and body. One that cannot be read
// counts as the same (a retry must never open a second transaction).
func (s *Service) sameMessage(content int64, h *message.Message) bool {
	ext, err := s.st.ReadMessage(content)
	if err != nil {
		return true
	}
	for _, k := range []string{message.PropertyRealTopic, message.PropertyTags} {
		a, _ := message.Property(ext.Properties, k)
		b, _ := message.Property(h.Properties, k)
		if a != b {
			return false
		}
	}
	return bytes.Equal(ext.Body, h.Body)
}

// landing is a half message write whose sender may learn its offsets
// before the store answers for it. Its fields are guarded by Service.mu.
type landing struct {
	done    chan struct{} // closed once the store answered
	landed  bool
	offset  int64
	waiting bool // under Service.landing, at offset
}

// wait puts l under s.landing at offset, unless it landed already.
// Caller holds s.mu.
func (l *landing) wait(s *Service, offset int64) {
	if !l.landed {
		l.offset, l.waiting = offset, true
		s.landing[offset] = l
	}
}

// land marks l landed and lets its waiters go. Caller holds s.mu.
func (l *landing) land(s *Service) {
	l.landed = true
	if l.waiting && s.landing[l.offset] == l {
		delete(s.landing, l.offset)
	}
	close(l.done)
}

// halfMessage builds the half record of m.
func halfMessage(m *message.Message, group string) (*message.Message, error) {
	if group == "" {
		group, _ = message.Property(m.Properties, message.PropertyProducerGroup)
	}
	switch {
	case group == "":
		return nil, fmt.Errorf("%w: no producer group", ErrBadHalf)
	case m.Topic == HalfTopic || m.Topic == OpTopic || m.Topic == CheckMaxTopic:
		return nil, fmt.Errorf("%w: topic %s is the service's own", ErrBadHalf, m.Topic)
	}
	if err := message.ValidateTopic(m.Topic); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHalf, err)
	}
	h := *m
	p := message.RemoveProperties(m.Properties, message.PropertyDelayTimeLevel, message.PropertyTimerDeliverMS,
		message.PropertyTimerDelayMS, message.PropertyTimerDelaySec)
	p = message.SetProperty(p, message.PropertyRealTopic, m.Topic)
	p = message.SetProperty(p, message.PropertyRealQueueID, fmt.Sprint(m.QueueID))
	p = message.SetProperty(p, message.PropertyProducerGroup, group)
	p = message.SetProperty(p, message.PropertyTransactionPrepared, "true")
	h.Properties = p
	h.Topic, h.QueueID = HalfTopic, 0
	// Parking or moving it writes a copy with two more properties (copy):
	// one that cannot be stored would leave the transaction pending for
	// good, never parked, holding the store's retention below it.
	if _, err := message.SealableRecordSize(&message.Message{Topic: CheckMaxTopic, Properties: copyProperties(p, math.MaxInt64, true)}); err != nil {
		return nil, fmt.Errorf("%w: its properties leave no room for those of its copy when parked: %v", ErrBadHalf, err)
	}
	// A prepared sysFlag would keep the record out of the consume queue
	// (RocketMQ resets it the same way); the topic says what it is.
	h.SysFlag = message.WithTransactionType(m.SysFlag, message.TransactionNotType)
	h.PreparedTransactionOffset = 0
	return &h, nil
}

// write appends m, one transaction record, and makes the state follow
// it: apply runs if and only if the store stored the record, and release
// (which lets go of what the caller holds for the write: e.resolving, a
// UNIQ_KEY) runs once that is known either way, both under s.mu. Until
// then the log end when the write began pins the checkpoint's covered
// offset, so a record the state does not reflect is replayed after a
// crash.
//
// write returns once the store answers, or before with ctx's error or
// store.ErrFlushTimeout (and the record's offsets): the record is queued
// and may yet be stored, so write waits on in the background (see await).
// A caller that stops waiting never leaves a stored record unapplied, and
// a timed-out record is not applied before it is durable.
func (s *Service) write(ctx context.Context, m *message.Message, apply func(store.AppendResult), release func()) (store.AppendResult, error) {
	id, r, pend, err := s.queue(m, apply, release)
	if err != nil {
		return store.AppendResult{}, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	err = pend.Wait(wctx)
	stop()
	cancel()
	if errors.Is(err, store.ErrFlushTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		go s.await(id, r, pend, apply, release)
		return r, err
	}
	s.landed(id, r, err, apply, release)
	if err != nil {
		return store.AppendResult{}, err
	}
	return r, nil
}

// writeAnswered is write for the service's own background work (parking,
// moving): it waits for the store's answer itself, past the sync flush
// timeout, so that its caller knows whether the record landed. It applies
// the record only once it is durable, flushing the store under AsyncFlush:
// the state never points at a copy an OS crash can lose, and retention
// removes a moved message's old record only after its copy is safe. It
// returns early only when the service closes.
func (s *Service) writeAnswered(m *message.Message, apply func(store.AppendResult), release func()) error {
	id, r, pend, err := s.queue(m, apply, release)
	if err != nil {
		return err
	}
	err = pend.Outcome(s.ctx)
	if err == nil && s.st.DurableOffset() <= r.PhysicalOffset {
		err = s.st.Flush()
	}
	s.landed(id, r, err, apply, release)
	return err
}

// queue registers write id, pinning covered at the log's end, and queues
// m in the store. If the store refuses it, queue has landed it already.
func (s *Service) queue(m *message.Message, apply func(store.AppendResult), release func()) (uint64, store.AppendResult, *store.Pending, error) {
	s.mu.Lock()
	if s.closed.Load() {
		release()
		s.mu.Unlock()
		return 0, store.AppendResult{}, nil, ErrClosed
	}
	id := s.nextID
	s.nextID++
	s.inflight[id] = s.st.MaxPhysicalOffset()
	s.wg.Add(1) // Close waits for the answer, or stops await
	s.mu.Unlock()
	res, pend, err := s.st.AppendBatchAsync([]*message.Message{m})
	if err != nil {
		s.landed(id, store.AppendResult{}, err, apply, release)
		return 0, store.AppendResult{}, nil, err
	}
	return id, res[0], pend, nil
}

// await lands write id, whose caller stopped waiting, once the store
// answers for its record r (Pending.Outcome). An fsync that never returns
// keeps the write unanswered, its floor holding covered, until Close
// leaves the record to the replay of the next Open.
func (s *Service) await(id uint64, r store.AppendResult, pend *store.Pending, apply func(store.AppendResult), release func()) {
	s.landed(id, r, pend.Outcome(s.ctx), apply, release)
}

// landed records the store's answer err to write id: the state follows a
// stored record, and the floor goes once the record's fate is known. A
// write the service closed before it was answered (context.Canceled)
// keeps its floor: the final checkpoint then leaves the record to replay.
func (s *Service) landed(id uint64, r store.AppendResult, err error, apply func(store.AppendResult), release func()) {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		delete(s.inflight, id)
		apply(r)
		s.dirty = true
	case !errors.Is(err, context.Canceled):
		delete(s.inflight, id) // not stored
	}
	release()
}

// noRecord is persist's rec for a change that no record of write made: a
// check, or a copy (durable before it is applied, see writeAnswered).
const noRecord = -1

// persist writes e's state (unsynced; the checkpoint syncs). rec is the
// commit-log offset of the record that made the change, or noRecord. Under
// AsyncFlush the record may not be durable yet while Pebble's write reaches
// the disk, so the batch also notes rec until a checkpoint covers it: Open
// undoes a noted change whose record the log lost (see undoLost).
func (s *Service) persist(e *entry, rec int64) {
	b := s.db.NewBatch()
	stage(b, e, rec)
	if err := b.Commit(pebble.NoSync); err != nil {
		s.opts.Logger.Error("txn: write state", "half", e.half, "err", err)
	}
	s.dirty = true
}

// stage adds e's state, and the note of rec, to b.
func stage(b *pebble.Batch, e *entry, rec int64) {
	if e.status.live() {
		b.Delete(stateKey(prefixResolved, e.half), nil)
	} else {
		b.Delete(stateKey(prefixLive, e.half), nil)
	}
	b.Set(e.key(), e.encode(), nil)
	if rec != noRecord {
		b.Set(stateKey(prefixNoted, rec), binary.BigEndian.AppendUint64(nil, uint64(e.half)), nil)
	}
}

// resolved returns the recorded state of a resolved transaction.
func (s *Service) resolved(half int64) (*entry, bool, error) {
	v, closer, err := s.db.Get(stateKey(prefixResolved, half))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	e, err := decodeEntry(v)
	return e, err == nil, err
}

// loop runs fn every d until Close.
func (s *Service) loop(d time.Duration, fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}
