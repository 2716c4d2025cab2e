package delay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// Store is what the scheduler needs of the message store; *store.Store
// implements it. AppendBatchAsync must be safe to call concurrently with
// the other methods. Flush makes every appended record durable (Checkpoint
// calls it before saving progress, Lowest before releasing deliveries).
type Store interface {
	AppendBatchAsync(msgs []*message.Message) ([]store.AppendResult, *store.Pending, error)
	GetMessages(topic string, qid int32, offset int64, o store.GetOptions) (store.GetResult, error)
	ReadRecords(phys int64, size int) ([]byte, error)
	Flush() error
	// Check reports why an append would refuse m, or nil.
	Check(m *message.Message) error
}

// due is one scheduled message that has fallen due (or is next).
type due struct {
	// at orders delivery: a level message's due time, unless the entry
	// ahead of it in its level is due later (the clock stepped back between
	// the two stores; then that one's at); a timer message's index key time,
	// which is its due time unless it was indexed after the cursor passed
	// that (then the cursor's time). Delivering in this order therefore
	// delivers each level in queue order and timers in index-key order, so
	// whatever part of a round is acknowledged, the cursors move past
	// exactly what was delivered.
	at    time.Time
	dueAt time.Time // when it was due, for lateness and TIMER_OUT_MS
	ext   message.Ext
	level int   // 0 for a timer message
	qoff  int64 // level messages: ScheduleTopic queue offset
	key   timerKey
	// gone says the timer message's record is no longer in the commit log
	// (ext holds only its offset): it is logged and skipped.
	gone bool
	// skipped says it was logged and passed over, not written to its real
	// topic: the cursors move past it, Stats.Delivered does not count it.
	skipped bool
}

// Scheduler delivers delayed messages to their real topics when they fall
// due, in due-time order, and keeps its progress durable. Use [New], then
// [Scheduler.Run] in a goroutine (or [Scheduler.Start]); feed it
// [Scheduler.Notify] from the store's dispatch hook.
type Scheduler struct {
	opts  Options
	st    Store
	idx   *timerIndex
	stats *stats
	path  string // progress file

	mu        sync.Mutex // guards the delivery state below
	levelNext []int64    // per level (0-based): next queue offset to deliver
	readNext  []int64    // per level: next queue offset to read into heads
	heads     [][]due    // per level: read-ahead, not yet delivered, in order
	lastRound time.Time  // the clock at the last delivery round
	timer     timerKey   // last delivered timer message
	indexed   int64      // next TimerTopic queue offset to index
	// dropped are the progress file's cursors of levels past the
	// configured ones, written back so the next start still knows them.
	dropped []int64

	// life guards the timer index against Lowest (the store's retention)
	// while Close closes it; closed is set then.
	life   sync.RWMutex
	closed bool

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool

	// checkpointed, if set (tests only, before Start), is called after
	// each checkpoint written, with when its progress was taken: every
	// delivery stored before then is in it.
	checkpointed func(taken time.Time)
}

// New opens the scheduler's state in opts.Dir on top of st.
func New(st Store, opts Options) (*Scheduler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := fsutil.MkdirAllSync(opts.Dir); err != nil {
		return nil, err
	}
	idx, err := openTimerIndex(filepath.Join(opts.Dir, "timers"))
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		opts: opts, st: st, idx: idx, stats: newStats(len(opts.Levels)),
		path: filepath.Join(opts.Dir, "progress"),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	p, err := readProgress(s.path, len(opts.Levels))
	if err != nil {
		idx.close()
		return nil, err
	}
	if err := s.checkDroppedLevels(p.dropped); err != nil {
		idx.close()
		return nil, err
	}
	if s.indexed, err = idx.indexed(); err != nil {
		idx.close()
		return nil, err
	}
	if err := s.repairIndex(); err != nil {
		idx.close()
		return nil, err
	}
	s.levelNext = p.levelNext
	s.readNext = slices.Clone(p.levelNext)
	s.heads = make([][]due, len(opts.Levels))
	s.timer = p.timer
	s.dropped = p.dropped
	return s, nil
}

// Notify wakes the scheduler when topic is one of its topics. Wire it to
// the store's dispatch hook; it never blocks.
func (s *Scheduler) Notify(topic string) {
	if topic == ScheduleTopic || topic == TimerTopic {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Levels is the number of delay levels (queues of ScheduleTopic).
func (s *Scheduler) Levels() int { return len(s.opts.Levels) }

// Stats returns a snapshot of the scheduler's counters.
func (s *Scheduler) Stats() Stats { return s.stats.snapshot() }

// Start runs the scheduler in a goroutine until Close.
func (s *Scheduler) Start() {
	s.started = true
	go s.Run()
}

// Run delivers due messages until Close is called.
func (s *Scheduler) Run() {
	defer close(s.done)
	ctx := context.Background()
	checkpoint := s.opts.Clock.After(s.opts.CheckpointInterval)
	var fails failures
	// The backlog a start finds due (a restart after downtime or a crash)
	// is checkpointed as soon as it is delivered, not a CheckpointInterval
	// later: a broker that crashes again within the interval (a crash
	// loop) would otherwise deliver that backlog again on every start.
	backlog, caughtUp := false, false
	for {
		n, next, err := s.deliverDue(ctx)
		if err != nil {
			now := s.opts.Clock.Now()
			wait, log := fails.failed(now)
			if log {
				s.opts.Logger.Error("delay: delivery failed; retrying", "err", err, "failures", fails.n, "retryIn", wait)
			}
			next = now.Add(wait)
		} else if failed := fails.reset(); failed > 0 {
			s.opts.Logger.Info("delay: delivery resumed", "failures", failed)
		}
		if err == nil && n > 0 {
			backlog = backlog || !caughtUp
			select {
			case <-s.stop:
				return
			case <-checkpoint:
				s.checkpointLogged()
				checkpoint = s.opts.Clock.After(s.opts.CheckpointInterval)
			default:
			}
			continue
		}
		if err == nil && !caughtUp {
			caughtUp = true
			if backlog {
				s.checkpointLogged()
				checkpoint = s.opts.Clock.After(s.opts.CheckpointInterval)
			}
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = s.opts.Clock.After(next.Sub(s.opts.Clock.Now()))
		}
		select {
		case <-s.wake:
		case <-timer:
		case <-checkpoint:
			s.checkpointLogged()
			checkpoint = s.opts.Clock.After(s.opts.CheckpointInterval)
		case <-s.stop:
			return
		}
	}
}

// Retries of a failed delivery round (the store refusing writes: a full
// disk, an I/O error) wait retryMin, then twice as long each time up to
// retryMax; the error is logged on the first failure and then at most
// every failLogInterval. A wake (a message scheduled) retries at once.
const (
	retryMin        = 100 * time.Millisecond
	retryMax        = 5 * time.Second
	failLogInterval = 30 * time.Second
)

// failures paces the retries of failed delivery rounds.
type failures struct {
	n      int       // failed rounds in a row
	logged time.Time // when the last one was logged
}

// failed counts a failed round at now and returns how long to wait before
// the next and whether to log this one.
func (f *failures) failed(now time.Time) (wait time.Duration, log bool) {
	f.n++
	wait = retryMax
	if f.n <= 10 {
		wait = min(retryMin<<(f.n-1), retryMax)
	}
	if f.n == 1 || now.Sub(f.logged) >= failLogInterval {
		f.logged, log = now, true
	}
	return wait, log
}

// reset ends a run of failures and returns how many rounds it had.
func (f *failures) reset() int {
	n := f.n
	f.n = 0
	return n
}

func (s *Scheduler) checkpointLogged() {
	if err := s.Checkpoint(); err != nil {
		s.opts.Logger.Warn("delay: checkpoint failed", "err", err)
	}
}

// Close stops Run (if started), writes a final checkpoint and closes the index.
func (s *Scheduler) Close() error {
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	close(s.stop)
	if s.started {
		<-s.done
	}
	err := s.Checkpoint()
	s.life.Lock() // no Lowest reads the index while it closes
	s.closed = true
	cerr := s.idx.close()
	s.life.Unlock()
	if err == nil {
		err = cerr
	}
	return err
}

// Checkpoint makes the delivery progress durable: the deliveries it counts
// first (under AsyncFlush the store may not have fsynced them yet, and
// progress saved past a delivered copy an OS crash then loses would lose
// the message for good), then the timer index, then the progress file;
// then it drops delivered timer entries.
func (s *Scheduler) Checkpoint() error {
	s.mu.Lock()
	p := progress{levelNext: append(slices.Clone(s.levelNext), s.dropped...), timer: s.timer}
	taken := s.opts.Clock.Now()
	s.mu.Unlock()
	if err := s.st.Flush(); err != nil {
		return fmt.Errorf("delay: checkpoint: %w", err)
	}
	if err := s.idx.sync(); err != nil {
		return err
	}
	if err := writeProgress(s.path, p); err != nil {
		return err
	}
	if s.checkpointed != nil {
		s.checkpointed(taken)
	}
	if p.timer.phys >= 0 {
		return s.idx.dropThrough(p.timer)
	}
	return nil
}

// deliverDue indexes new timer messages, delivers everything due now (at
// most a few batches), and returns how many it delivered and when the next
// message falls due (zero if none is known).
func (s *Scheduler) deliverDue(ctx context.Context) (int, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.indexTimers(); err != nil {
		return 0, time.Time{}, err
	}
	now := s.wallNow()
	if now.Before(s.lastRound) {
		// The clock stepped back: the entries read ahead were checked
		// against a later now (fillLevel).
		for l := range s.heads {
			s.correctHeads(l, now)
		}
	}
	s.lastRound = now
	limit := s.opts.BatchSize * 8
	var ready []due
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for l := range s.heads {
		if err := s.fillLevel(l, limit, now); err != nil {
			return 0, next, err
		}
		h := s.heads[l]
		i := 0
		for ; i < len(h) && !h[i].at.After(now); i++ {
		}
		ready = append(ready, h[:i]...)
		if i < len(h) {
			consider(h[i].at)
		}
	}
	timers, nextTimer, ok, err := s.dueTimers(now, limit)
	if err != nil {
		return 0, next, err
	}
	ready = append(ready, timers...)
	if ok {
		consider(time.UnixMilli(nextTimer.key.due))
	}
	if len(ready) == 0 {
		return 0, next, nil
	}
	slices.SortStableFunc(ready, func(a, b due) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.ext.CommitLogOffset < b.ext.CommitLogOffset {
			return -1
		}
		return 1
	})
	if len(ready) > limit {
		next = ready[limit].at
		ready = ready[:limit]
	}
	n, err := s.deliver(ctx, ready)
	return n, next, err
}

// fillLevel reads level l's queue ahead into heads until it holds limit
// entries, its last entry is not yet due (an entry's at is never before
// the one ahead of it, so nothing behind it is due either), or the queue
// ends.
func (s *Scheduler) fillLevel(l, limit int, now time.Time) error {
	for len(s.heads[l]) < limit {
		if h := s.heads[l]; len(h) > 0 && h[len(h)-1].at.After(now) {
			return nil
		}
		r, err := s.st.GetMessages(ScheduleTopic, int32(l), s.readNext[l], store.GetOptions{MaxMessages: 256})
		if err != nil {
			return err
		}
		if r.Status == store.OffsetTooSmall || r.Status == store.OffsetOverflowBadly {
			if r.NextBeginOffset > s.readNext[l] {
				s.opts.Logger.Error("delay: skipping level messages no longer in the commit log",
					"level", l+1, "from", s.readNext[l], "to", r.NextBeginOffset)
			}
			s.readNext[l] = r.NextBeginOffset // removed by retention, or queue reset
			if len(s.heads[l]) == 0 {
				s.levelNext[l] = r.NextBeginOffset
			}
			continue
		}
		if r.Count == 0 {
			if r.NextBeginOffset > s.readNext[l] {
				s.readNext[l] = r.NextBeginOffset
				continue
			}
			return nil
		}
		exts, err := message.DecodeAll(r.Records)
		if err != nil {
			return fmt.Errorf("delay: level %d record: %w", l+1, err)
		}
		// Read after the records: now is the round's, and a record stored
		// since (by a producer meanwhile) would look due later than its
		// level's delay from then.
		read := s.wallNow()
		for _, e := range exts {
			dueAt := time.UnixMilli(e.StoreTimestamp).Add(levelDelay(&e, s.opts.Levels[l]))
			// As RocketMQ's correctDeliverTimestamp: one due later than
			// its level's delay from now (the level was shortened since,
			// or the clock stepped back) is due now, rather than holding
			// back the level's newer messages.
			if dueAt.After(read.Add(s.opts.Levels[l])) {
				dueAt = read
			}
			// A level is delivered strictly in queue order, as RocketMQ
			// does: an entry stored after the clock stepped back waits for
			// the one ahead of it.
			at := dueAt
			if h := s.heads[l]; len(h) > 0 && h[len(h)-1].at.After(at) {
				at = h[len(h)-1].at
			}
			s.heads[l] = append(s.heads[l], due{at: at, dueAt: dueAt, ext: e, level: l + 1, qoff: e.QueueOffset})
		}
		s.readNext[l] = r.NextBeginOffset
	}
	return nil
}

// correctHeads applies fillLevel's correction to level l's entries read
// ahead, as RocketMQ checks a due time each time it looks at it: after the
// clock stepped back, one due later than the level's delay from now is due
// now. at is worked out again as fillLevel does.
func (s *Scheduler) correctHeads(l int, now time.Time) {
	h := s.heads[l]
	for i := range h {
		if h[i].dueAt.After(now.Add(s.opts.Levels[l])) {
			h[i].dueAt = now
		}
		h[i].at = h[i].dueAt
		if i > 0 && h[i-1].at.After(h[i].at) {
			h[i].at = h[i-1].at
		}
	}
}

// wallNow reads the clock without its monotonic reading: due times are
// wall-clock times (store time plus delay), and time.Now's readings, when
// both times have one, compare by the monotonic clock alone, which never
// steps back: a wall clock stepped back would go unseen (correctHeads).
func (s *Scheduler) wallNow() time.Time { return s.opts.Clock.Now().Round(0) }

// levelDelay is the delay of a level message: its level's when it was
// stored, else (scheduled before that was recorded, or with no room for
// it) current, the level's now.
func levelDelay(e *message.Ext, current time.Duration) time.Duration {
	if v, ok := message.Property(e.Properties, propLevelDelay); ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return current
}

// dueTimers returns timer messages due by now (at most limit) and the next one.
func (s *Scheduler) dueTimers(now time.Time, limit int) ([]due, timerEntry, bool, error) {
	entries, next, ok, err := s.idx.scan(s.timer, now.UnixMilli(), limit)
	if err != nil {
		return nil, next, ok, err
	}
	out := make([]due, 0, len(entries))
	// Messages scheduled together sit next to each other in the log: read
	// each run of adjacent records with one read.
	for i := 0; i < len(entries); {
		j, size := i+1, int(entries[i].size)
		for j < len(entries) && entries[j].key.phys == entries[j-1].key.phys+int64(entries[j-1].size) && size < 4<<20 {
			size += int(entries[j].size)
			j++
		}
		recs, err := s.st.ReadRecords(entries[i].key.phys, size)
		if errors.Is(err, store.ErrOffsetNotFound) {
			// Removed from the log (retention before the broker held
			// pending timers): skipped, so the rest are still delivered.
			for _, e := range entries[i:j] {
				at := time.UnixMilli(e.key.due)
				out = append(out, due{at: at, dueAt: at, key: e.key, gone: true,
					ext: message.Ext{CommitLogOffset: e.key.phys}})
			}
			i = j
			continue
		}
		if err != nil {
			return nil, next, ok, fmt.Errorf("delay: timer records at %d: %w", entries[i].key.phys, err)
		}
		exts, err := message.DecodeAll(recs)
		if err != nil || len(exts) != j-i {
			return nil, next, ok, fmt.Errorf("delay: timer records at %d: %d of %d decoded: %v", entries[i].key.phys, len(exts), j-i, err)
		}
		for k, ext := range exts {
			at := time.UnixMilli(entries[i+k].key.due)
			dueAt := at
			if v, err := strconv.ParseInt(ext.Property(message.PropertyTimerDeliverMS), 10, 64); err == nil {
				dueAt = time.UnixMilli(v)
			}
			out = append(out, due{at: at, dueAt: dueAt, ext: ext, key: entries[i+k].key})
		}
		i = j
	}
	return out, next, ok, nil
}

// deliver writes ready (sorted by due time) to the real topics in batches
// and advances the cursors past each stored batch. Up to two batches are in
// flight: the next one is prepared while the store flushes the last. It
// waits for the store's answer to each, past the sync flush timeout and
// past ctx (the store answers every batch, the last ones as it closes):
// a batch left unanswered would be stored yet not counted, and delivered
// again.
func (s *Scheduler) deliver(ctx context.Context, ready []due) (int, error) {
	type flight struct {
		batch []due
		pend  *store.Pending
		sent  []Delivery // for OnDelivered
	}
	var inFlight []flight
	delivered := 0
	settle := func() error {
		f := inFlight[0]
		inFlight = inFlight[1:]
		if err := f.pend.Outcome(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		s.advance(f.batch)
		delivered += len(f.batch)
		if s.opts.OnDelivered != nil {
			s.opts.OnDelivered(f.sent)
		}
		return nil
	}
	for len(ready) > 0 || len(inFlight) > 0 {
		if len(ready) == 0 || len(inFlight) == 2 {
			if err := settle(); err != nil {
				return delivered, err
			}
			continue
		}
		n := min(len(ready), s.opts.BatchSize)
		batch := ready[:n]
		ready = ready[n:]
		msgs := make([]*message.Message, 0, n)
		from := make([]int, 0, n) // msgs[j] is batch[from[j]]
		var sent []Delivery
		for i := range batch {
			if batch[i].gone {
				batch[i].skipped = true
				s.opts.Logger.Error("delay: skipping a timer message no longer in the commit log",
					"offset", batch[i].ext.CommitLogOffset, "dueAt", batch[i].dueAt)
				continue
			}
			m, err := restore(&batch[i].ext, batch[i].dueAt)
			if err != nil {
				// A record that cannot be delivered is skipped, not retried
				// forever: it is logged and counted as done.
				s.opts.Logger.Error("delay: dropping undeliverable scheduled message", "offset", batch[i].ext.CommitLogOffset, "err", err)
				batch[i].skipped = true
				continue
			}
			msgs = append(msgs, m)
			from = append(from, i)
			if s.opts.OnDelivered != nil {
				sent = append(sent, Delivery{Message: m, Level: batch[i].level, DueAt: batch[i].dueAt,
					ScheduledAt: time.UnixMilli(batch[i].ext.StoreTimestamp)})
			}
		}
		res, pend, err := s.st.AppendBatchAsync(msgs)
		if errors.Is(err, store.ErrBadMessage) || errors.Is(err, store.ErrMessageTooLarge) {
			// The store refuses a copy for good (grown past a limit, or a
			// limit lowered since it was scheduled): dropped and logged like
			// any undeliverable record, so it cannot stop every delivery
			// behind it.
			var kept []*message.Message
			var keptSent []Delivery
			for i, m := range msgs {
				if cerr := s.st.Check(m); cerr != nil {
					s.opts.Logger.Error("delay: dropping a scheduled message the store refuses", "topic", m.Topic, "err", cerr)
					batch[from[i]].skipped = true
					continue
				}
				kept = append(kept, m)
				if i < len(sent) {
					keptSent = append(keptSent, sent[i])
				}
			}
			msgs, sent = kept, keptSent
			res, pend, err = s.st.AppendBatchAsync(msgs)
		}
		if err != nil {
			for len(inFlight) > 0 && settle() == nil {
			}
			return delivered, err
		}
		for i := range sent {
			if i < len(res) {
				sent[i].Result = res[i]
			}
		}
		inFlight = append(inFlight, flight{batch, pend, sent})
	}
	return delivered, nil
}

// Delivery is one message delivered from the schedule, as
// [Options.OnDelivered] reports it.
type Delivery struct {
	// Message is the message as delivered to its real topic.
	Message *message.Message
	// Result is where the store put it.
	Result store.AppendResult
	// Level is its delay level, 0 for a timer message.
	Level int
	// DueAt is when it fell due; ScheduledAt when it was scheduled.
	DueAt, ScheduledAt time.Time
}

// advance moves the cursors past an acknowledged batch. Batches are
// acknowledged in delivery order, which keeps each level in queue order
// (see due.at), so a level message is its level's head.
func (s *Scheduler) advance(batch []due) {
	now := s.opts.Clock.Now()
	for _, d := range batch {
		if d.level > 0 {
			l := d.level - 1
			s.heads[l] = s.heads[l][1:]
			s.levelNext[l] = s.readNext[l] // the lowest undelivered offset
			if len(s.heads[l]) > 0 {
				s.levelNext[l] = s.heads[l][0].qoff
			}
		} else if s.timer.less(d.key) {
			s.timer = d.key
		}
		if !d.skipped {
			s.stats.delivered(max(0, now.Sub(d.dueAt)))
		}
	}
}

// indexTimers adds TimerTopic messages stored since the last call to the
// due-time index. A message due before the last delivered one (late
// arrival, or re-indexing after a crash) is keyed at the delivered due time
// so it still sorts after the cursor and is delivered.
func (s *Scheduler) indexTimers() error {
	for {
		r, err := s.st.GetMessages(TimerTopic, 0, s.indexed, store.GetOptions{MaxMessages: 1024})
		if err != nil {
			return err
		}
		if r.Count == 0 {
			if r.NextBeginOffset != s.indexed && r.Status != store.OffsetOverflowOne && r.Status != store.NoMatchedLogicQueue && r.Status != store.NoMessageInQueue {
				if err := s.idx.add(nil, r.NextBeginOffset); err != nil {
					return err
				}
				s.indexed = r.NextBeginOffset
				continue
			}
			return nil
		}
		exts, err := message.DecodeAll(r.Records)
		if err != nil {
			return fmt.Errorf("delay: timer record: %w", err)
		}
		entries := make([]timerEntry, 0, len(exts))
		for _, e := range exts {
			ms, err := strconv.ParseInt(e.Property(message.PropertyTimerDeliverMS), 10, 64)
			if err != nil {
				ms = e.StoreTimestamp // malformed: deliver now rather than never
			}
			k := timerKey{due: max(ms, s.timer.due), phys: e.CommitLogOffset}
			entries = append(entries, timerEntry{key: k, size: e.StoreSize})
		}
		// The cursor moves only once the index holds the entries: after a
		// failed write the retry reads them again. Moved first, the retry
		// would skip them, and the next write would save the cursor past
		// them: never delivered, and no longer held from retention.
		if err := s.idx.add(entries, r.NextBeginOffset); err != nil {
			return err
		}
		s.indexed = r.NextBeginOffset
	}
}

// repairIndex drops what the timer index holds past the end of the
// TimerTopic queue. Under AsyncFlush an OS crash can keep the index's
// Pebble writes and lose the commit-log records they point at; the log
// then reuses those offsets for other records, which a stale entry would
// deliver early or fail to decode. The commit log loses a suffix, so the
// stale entries are exactly those past the queue's last record.
func (s *Scheduler) repairIndex() error {
	r, err := s.st.GetMessages(TimerTopic, 0, s.indexed, store.GetOptions{MaxMessages: 1})
	if err != nil {
		return err
	}
	hi := r.MaxOffset
	switch r.Status {
	case store.OffsetOverflowBadly:
	case store.NoMessageInQueue, store.NoMatchedLogicQueue:
		hi = 0
	default:
		return nil
	}
	if s.indexed <= hi {
		return nil
	}
	lastPhys := int64(-1)
	if hi > 0 {
		off, found, err := s.entryOffset(TimerTopic, 0, hi-1)
		if err != nil {
			return err
		}
		if found {
			lastPhys = off
		}
	}
	s.opts.Logger.Warn("delay: the timer index is ahead of the commit log (lost in a crash); dropping its stale entries",
		"indexed", s.indexed, "queueMax", hi)
	s.indexed = hi
	return s.idx.dropPast(lastPhys, hi)
}

// checkDroppedLevels refuses to start when a ScheduleTopic queue past the
// configured levels still holds a message not delivered (the levels were
// shortened): nothing would deliver it, and retention would delete it.
// dropped are those queues' delivery cursors from the progress file.
func (s *Scheduler) checkDroppedLevels(dropped []int64) error {
	for l := len(s.opts.Levels); l < 64; l++ {
		var next int64
		if i := l - len(s.opts.Levels); i < len(dropped) {
			next = dropped[i]
		}
		for {
			r, err := s.st.GetMessages(ScheduleTopic, int32(l), next, store.GetOptions{MaxMessages: 1})
			if err != nil {
				return err
			}
			if r.Count > 0 {
				return fmt.Errorf("%w: %s queue %d holds messages of delay level %d not delivered yet, but only %d levels are configured; configure at least %d",
					ErrInvalidOptions, ScheduleTopic, l, l+1, len(s.opts.Levels), l+1)
			}
			if r.Status != store.OffsetTooSmall || r.NextBeginOffset <= next {
				break
			}
			next = r.NextBeginOffset
		}
	}
	return nil
}
