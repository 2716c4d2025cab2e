package txn

import (
	"context"
	"errors"
	"fmt"
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

	mu       sync.Mutex
	live     map[int64]*entry         // pending and parked, by half offset
	byUniq   map[string]*entry        // live ones by UNIQ_KEY
	storing  map[string]chan struct{} // UNIQ_KEYs of half messages being stored
	inflight map[uint64]int64         // writes under way: the log end when each began
	nextID   uint64
	checker  Checker
	dirty    bool // state changed since the last checkpoint

	stats counters

	stop    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
	closed  atomic.Bool
	// life keeps Close from closing the state database under a Lowest or
	// MoveBelow that the store's retention runs.
	life sync.RWMutex
}

// Open opens the state database in opts.Dir, replays the commit log from
// its last checkpoint and returns the service. Call Start to begin checks.
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
		byUniq: make(map[string]*entry), storing: make(map[string]chan struct{}),
		inflight: make(map[uint64]int64), checker: opts.Checker, stop: make(chan struct{})}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

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
// database. In-flight calls finish first.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(s.stop)
	s.wg.Wait()
	s.life.Lock() // a MoveBelow under way (the store's retention) finishes first
	defer s.life.Unlock()
	return errors.Join(s.checkpoint(), s.db.Close())
}

// SendHalf stores m as a half message of producer group (the message's
// PGROUP property when group is empty): under HalfTopic, queue 0, with its
// real topic and queue kept in properties and any delay removed. It is
// invisible to consumers until committed.
//
// A message whose UNIQ_KEY is that of a live (pending or parked) half
// message of the same group is not stored again: SendHalf answers with
// the live one (Duplicate reports it), so a producer that retries a half
// send with a deterministic id never opens a second transaction.
func (s *Service) SendHalf(ctx context.Context, m *message.Message, group string) (store.AppendResult, error) {
	if s.closed.Load() {
		return store.AppendResult{}, ErrClosed
	}
	h, err := halfMessage(m, group)
	if err != nil {
		return store.AppendResult{}, err
	}
	uniq, _ := message.Property(h.Properties, message.PropertyUniqKey)
	if uniq != "" {
		res, dup, release, err := s.claimUniq(ctx, uniq, h)
		if err != nil || dup {
			return res, err
		}
		defer release()
	}
	return s.write(ctx, h, func(r store.AppendResult) {
		s.addHalf(h, r)
	})
}

// claimUniq finds a live half message with UNIQ_KEY uniq of h's group
// (dup), or reserves uniq until release is called, waiting for a
// concurrent SendHalf of the same id to finish first.
func (s *Service) claimUniq(ctx context.Context, uniq string, h *message.Message) (res store.AppendResult, dup bool, release func(), err error) {
	group, _ := message.Property(h.Properties, message.PropertyProducerGroup)
	for {
		s.mu.Lock()
		if e := s.byUniq[uniq]; e != nil && e.group == group {
			res = store.AppendResult{PhysicalOffset: e.half, QueueOffset: e.queueOffset, StoreTimestamp: e.storeMs, MsgID: e.msgID}
			s.mu.Unlock()
			s.stats.duplicates.Add(1)
			return res, true, nil, nil
		}
		wait := s.storing[uniq]
		if wait == nil {
			ch := make(chan struct{})
			s.storing[uniq] = ch
			s.mu.Unlock()
			return res, false, func() {
				s.mu.Lock()
				delete(s.storing, uniq)
				s.mu.Unlock()
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
	// A prepared sysFlag would keep the record out of the consume queue
	// (RocketMQ resets it the same way); the topic says what it is.
	h.SysFlag = message.WithTransactionType(m.SysFlag, message.TransactionNotType)
	h.PreparedTransactionOffset = 0
	return &h, nil
}

// write appends one record and, once stored, applies it to the state
// under s.mu. The log end when the write began pins the checkpoint's
// covered offset until the state reflects the record.
func (s *Service) write(ctx context.Context, m *message.Message, apply func(store.AppendResult)) (store.AppendResult, error) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.inflight[id] = s.st.MaxPhysicalOffset()
	s.mu.Unlock()
	res, err := s.st.AppendBatch(ctx, []*message.Message{m})
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, id)
	if len(res) == 0 || (err != nil && !errors.Is(err, store.ErrFlushTimeout)) {
		return store.AppendResult{}, err
	}
	// Written (a flush timeout still reaches the disk later): the state
	// follows the log.
	apply(res[0])
	s.dirty = true
	return res[0], err
}

// persist writes e's state (unsynced; the checkpoint syncs).
func (s *Service) persist(e *entry) {
	b := s.db.NewBatch()
	if e.status.live() {
		b.Delete(stateKey(prefixResolved, e.half), nil)
	} else {
		b.Delete(stateKey(prefixLive, e.half), nil)
	}
	b.Set(e.key(), e.encode(), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		s.opts.Logger.Error("txn: write state", "half", e.half, "err", err)
	}
	s.dirty = true
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
			case <-s.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}
