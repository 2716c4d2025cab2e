package client

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// lockExpiry is how long an orderly consumer trusts a queue lock after it
// was last granted (RocketMQ's REBALANCE_LOCK_MAX_LIVE_TIME, 30 s; the
// broker keeps it 60 s).
const lockExpiry = 30 * time.Second

// brokerLockLife is how long a broker keeps a queue lock that is not
// renewed (RocketMQ's rocketmq.broker.rebalance.lockMaxLiveTime, 60 s):
// once it passed since the last grant, another member may have held the
// queue in between (see processQueue.regrant).
const brokerLockLife = 60 * time.Second

// delivered is one pulled message and what acknowledging it needs, kept
// apart from the *MessageExt a handler may change.
type delivered struct {
	m               *MessageExt
	queueOffset     int64
	commitLogOffset int64
	msgID           string
	originTopic     string // the topic the handler sees (RETRY_TOPIC for a retried message)
	reconsumeTimes  int32  // as stored
	props           string // the record's properties, as stored (sendBackByContent)
}

// processQueue is one assigned queue: its pull position, the messages
// pulled and not acknowledged, and (orderly) the ones not yet consumed.
type processQueue struct {
	mq     MessageQueue
	sub    *subscription
	ctx    context.Context // cancelled when the queue is dropped or the consumer closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the queue's pull, consume and handler goroutines

	// commitMu is held while the queue's offset is read and committed, so
	// that its commits never overtake each other (see commitQueues).
	commitMu sync.Mutex
	// commitGate (one per broker: see PushConsumer.commitGate) is held by
	// the calls whose SyncCommit failed while they retry it: no queue of
	// that broker starts a new call meanwhile (see acquireFor), so a crash
	// of the broker replays only the calls that were in flight, and the
	// other brokers' queues go on.
	commitGate *commitGate

	mu        sync.Mutex
	started   bool  // next is known
	next      int64 // where the next pull starts; every offset below is acknowledged, in flight or filtered out
	inflight  map[int64]*delivered
	persisted int64 // last committed offset, -1 for none
	dropped   bool
	buffer    []*delivered  // orderly: pulled, not yet handed to the handler, in offset order
	ready     chan struct{} // signalled when buffer grows
	room      chan struct{} // signalled when inflight shrinks
	locked    bool          // orderly clustering: the broker granted the lock ...
	lockedAt  time.Time     // ... at this time
	// lockLost (orderly clustering): the broker refused the queue's lock,
	// which another member holds. That member consumes from the committed
	// offset and commits its own: this queue's offset is never committed
	// again (it would take the group back), and the queue is dropped.
	lockLost bool
	// resetTo is the offset a reset the broker pushed moves the queue to
	// once it is dropped (consumer_reset.go), -1 for none; set under the
	// consumer's mu while the queue is in its table.
	resetTo int64
	// startAt is where the queue starts when it takes the place of one a
	// reset dropped (PushConsumer.resetStarts), -1 for its committed offset.
	startAt int64
	// flowPaused: the queue's pulls wait for its unacknowledged messages
	// to shrink (waitRoom).
	flowPaused bool
	// lastPull and lastConsume are when a pull of the queue was last
	// answered and a message of it last acknowledged (running info:
	// RocketMQ's lastPullTimestamp and lastConsumeTimestamp); both start
	// at the queue's creation, as RocketMQ's ProcessQueue's.
	lastPull, lastConsume time.Time
}

func newProcessQueue(parent context.Context, mq MessageQueue, sub *subscription) *processQueue {
	ctx, cancel := context.WithCancel(parent)
	now := time.Now()
	return &processQueue{mq: mq, sub: sub, ctx: ctx, cancel: cancel, persisted: -1, lastPull: now, lastConsume: now,
		resetTo: -1, startAt: -1, inflight: map[int64]*delivered{}, ready: make(chan struct{}, 1), room: make(chan struct{}, 1),
		commitGate: newCommitGate()}
}

// commitGate counts the calls of a broker's queues that retry a failed
// SyncCommit. It is open while there are none. Waiting for it and asking
// whether it is open only read it: an earlier version probed a channel of
// capacity 1 by sending to it and taking the value back, and callers that
// probed at once saw each other's values as a call retrying, and could
// turn each other away for ever (their queues never consumed again).
type commitGate struct {
	mu      sync.Mutex
	holders int
	open    chan struct{} // closed while holders is 0
}

func newCommitGate() *commitGate {
	g := &commitGate{open: make(chan struct{})}
	close(g.open)
	return g
}

// hold counts a retrying call in; release counts it out.
func (g *commitGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holders == 0 {
		g.open = make(chan struct{})
	}
	g.holders++
}

func (g *commitGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holders--
	if g.holders == 0 {
		close(g.open)
	}
}

// isOpen reports whether no call retries now.
func (g *commitGate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holders == 0
}

// wait waits until no call retries; it reports false if ctx ended first.
func (g *commitGate) wait(ctx context.Context) bool {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return true
	case <-ctx.Done():
		return false
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// start sets the first pull offset.
func (q *processQueue) start(off int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.started, q.next = true, off
}

func (q *processQueue) nextOffset() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.next
}

// drop marks the queue given up and stops its goroutines; it reports
// false if it was dropped already.
func (q *processQueue) drop() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false
	}
	q.dropped = true
	q.cancel()
	return true
}

func (q *processQueue) isDropped() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// add records a pull's messages as in flight (and, orderly, buffered) and
// moves the pull position to next.
func (q *processQueue) add(ds []*delivered, next int64, orderly bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range ds {
		q.inflight[d.queueOffset] = d
	}
	if orderly && len(ds) > 0 {
		q.buffer = append(q.buffer, ds...)
		signal(q.ready)
	}
	q.next = next
	q.lastPull = time.Now()
}

// setReset records the offset a pushed reset moves q to; the latest wins.
// The caller holds the consumer's mu, and q is in its table.
func (q *processQueue) setReset(offset int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.resetTo = offset
}

// takeReset moves q to the offset of a reset recorded by setReset, if
// any, forgetting what is in flight, so that its next commit is that
// offset; it returns that offset, or -1 if there was none. Only for a
// queue whose goroutines stopped.
func (q *processQueue) takeReset() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	off := q.resetTo
	if off < 0 {
		return -1
	}
	q.started, q.next, q.persisted = true, off, -1
	q.resetTo = -1
	clear(q.inflight)
	q.buffer = nil
	return off
}

// resetPending reports whether a reset waits for takeReset.
func (q *processQueue) resetPending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.resetTo >= 0
}

// dropBuffered forgets the messages an orderly queue pulled and has not
// handed to its handler yet (see pullLoop); a batch taken is kept.
func (q *processQueue) dropBuffered() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range q.buffer {
		if q.inflight[d.queueOffset] == d {
			delete(q.inflight, d.queueOffset)
		}
	}
	q.buffer = nil
	signal(q.room)
}

// ack removes acknowledged messages from the in-flight set. A message
// pulled again at the same offset (after PULL_OFFSET_MOVED sent the queue
// back) replaced the first delivery there: acknowledging the first leaves
// the second in flight.
func (q *processQueue) ack(ds []*delivered) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(ds) > 0 {
		q.lastConsume = time.Now()
	}
	for _, d := range ds {
		if q.inflight[d.queueOffset] == d {
			delete(q.inflight, d.queueOffset)
		}
	}
	signal(q.room)
}

// ackOffset is the offset to commit: the smallest in-flight offset, or the
// pull position when nothing is in flight. It reports false before the
// start offset is known.
func (q *processQueue) ackOffset() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ackOffsetLocked()
}

// ackOffsetLocked is ackOffset; the caller holds q.mu.
func (q *processQueue) ackOffsetLocked() (int64, bool) {
	if !q.started {
		return 0, false
	}
	off := q.next
	for o := range q.inflight {
		off = min(off, o)
	}
	return off, true
}

// toPersist returns the offset to commit if it changed since the last
// commit, unless another member took the queue's lock (lockLost) or, for
// a queue consumed under a lock (locking: orderly clustering), the lock
// was last granted brokerLockLife or longer ago: the broker may have
// given it to another member meanwhile, whose commits this one would take
// back (see regrant, which gives the queue up once it learns it).
func (q *processQueue) toPersist(locking bool) (int64, bool) {
	off, ok := q.ackOffset()
	if !ok {
		return 0, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	lapsed := locking && lockAge(q.lockedAt) >= brokerLockLife
	return off, off != q.persisted && !q.lockLost && !lapsed
}

func (q *processQueue) markPersisted(off int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.persisted = off
}

// flowLimits bound a queue's unacknowledged messages: while they are
// count or more, their bodies take more than bytes, or (span > 0) more
// than span offsets lie between the oldest of them and the pull position,
// the queue does not pull (RocketMQ's pullThresholdForQueue,
// pullThresholdSizeForQueue and consumeConcurrentlyMaxSpan). RocketMQ
// measures the span to the newest message not yet consumed, which is the
// last one pulled while its batch waits for the handlers; measured to the
// pull position, it does not depend on how fast that batch is consumed:
// it is how far the committed offset lags behind what was pulled.
type flowLimits struct {
	count int
	bytes int64
	span  int64
}

// flowLimits returns the consumer's limits for a queue's pulls.
func (pc *PushConsumer) flowLimits() flowLimits {
	l := flowLimits{count: pc.opts.PullThresholdForQueue, bytes: int64(pc.opts.PullThresholdSizeForQueue) << 20}
	if !pc.opts.Orderly {
		l.span = int64(pc.opts.ConsumeConcurrentlyMaxSpan)
	}
	return l
}

// hasRoom reports whether q's unacknowledged messages are within l. The
// caller holds q.mu.
func (q *processQueue) hasRoom(l flowLimits) bool {
	if len(q.inflight) == 0 {
		return true
	}
	if len(q.inflight) >= l.count {
		return false
	}
	var size int64
	oldest := q.next
	for off, d := range q.inflight {
		size += int64(len(d.m.Body))
		oldest = min(oldest, off)
	}
	return size <= l.bytes && (l.span <= 0 || q.next-1-oldest <= l.span)
}

// waitRoom waits until q's unacknowledged messages are within l. It
// reports false if the queue's context ended.
func (q *processQueue) waitRoom(l flowLimits) bool {
	for {
		q.mu.Lock()
		room := q.hasRoom(l)
		q.flowPaused = !room
		q.mu.Unlock()
		if room {
			return true
		}
		select {
		case <-q.room:
		case <-q.ctx.Done():
			return false
		}
	}
}

// paused reports whether the queue's pulls wait for room (waitRoom).
func (q *processQueue) paused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flowPaused
}

// take waits for buffered messages (orderly) and removes up to n of them,
// in offset order, all for one topic's handler. It returns nil once the queue's context ended.
func (q *processQueue) take(n int) []*delivered {
	for {
		if q.ctx.Err() != nil {
			return nil
		}
		q.mu.Lock()
		if len(q.buffer) > 0 {
			k := batchLen(q.buffer, n)
			out := append([]*delivered(nil), q.buffer[:k]...)
			q.buffer = q.buffer[k:]
			q.mu.Unlock()
			return out
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.ctx.Done():
			return nil
		}
	}
}

// lockAge is how long ago a lock granted at at was, by whichever of the
// monotonic and the wall clock says longer. The monotonic clock (which
// time.Since uses) stops while the machine sleeps, but the broker's lock
// life goes on (RocketMQ's brokers date locks by the wall clock): a
// member that woke must not take a lapsed lock for a fresh one. A wall
// clock stepped forward makes a lock look older, which only renews it
// sooner or gives the queue up (to be taken again) early.
func lockAge(at time.Time) time.Duration {
	now := time.Now()
	return max(now.Sub(at), now.Round(0).Sub(at.Round(0)))
}

// setLocked records the outcome of a lock request for the queue.
func (q *processQueue) setLocked(ok bool, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.locked = ok
	if ok {
		q.lockedAt = at
	}
}

// regrant records a lock granted by a request sent at at, unless the lock
// was last granted brokerLockLife or longer ago: then the broker may have
// given it to another member in between, which consumed the queue from
// the committed offset and committed past what this queue pulled. The
// queue's buffer and pull position are stale, and its offset would take
// the group back: regrant records the lock lost instead (the caller drops
// the queue; a rebalance takes it again from the committed offset) and
// reports false. RocketMQ's consumer carries on from its buffer.
func (q *processQueue) regrant(at time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if lockAge(q.lockedAt) >= brokerLockLife {
		q.locked, q.lockLost = false, true
		return false
	}
	q.locked, q.lockedAt = true, at
	return true
}

// loseLock records that another member holds the queue's lock.
func (q *processQueue) loseLock() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.locked, q.lockLost = false, true
}

// lostLock reports whether another member took the queue's lock.
func (q *processQueue) lostLock() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lockLost
}

// lockValid reports whether the queue's lock was granted within lockExpiry.
func (q *processQueue) lockValid() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.locked && lockAge(q.lockedAt) < lockExpiry
}

// queueList returns the consumer's queues, dropped ones included, sorted.
func (pc *PushConsumer) queueList() []MessageQueue {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := make([]MessageQueue, 0, len(pc.queues))
	for mq := range pc.queues {
		out = append(out, mq)
	}
	sortQueues(out)
	return out
}

// processQueues returns the consumer's live (not dropped) queues.
func (pc *PushConsumer) processQueues() []*processQueue {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := make([]*processQueue, 0, len(pc.queues))
	for _, q := range pc.queues {
		if !q.isDropped() {
			out = append(out, q)
		}
	}
	return out
}

// sortQueues orders queues by topic, broker name and queue id.
func sortQueues(qs []MessageQueue) { slices.SortFunc(qs, compareQueues) }

// compareQueues orders queues by topic, broker and queue id.
func compareQueues(a, b MessageQueue) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.BrokerName, b.BrokerName), cmp.Compare(a.QueueID, b.QueueID))
}

// startQueueLocked registers q and runs its goroutines. The caller holds
// pc.mu.
func (pc *PushConsumer) startQueueLocked(q *processQueue) {
	pc.queues[q.mq] = q
	pc.wg.Add(1)
	q.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		defer q.wg.Done()
		pc.runQueue(q)
	}()
}

// runQueue finds the queue's start offset, then pulls until the queue is
// dropped or the consumer closes; an orderly consumer consumes the queue
// on a second goroutine.
func (pc *PushConsumer) runQueue(q *processQueue) {
	off, ok := q.startAt, q.startAt >= 0
	if !ok {
		off, ok = pc.startOffset(q)
	}
	if !ok {
		return
	}
	q.start(off)
	pc.log.Debug("client: consuming queue", "queue", q.mq, "offset", off)
	if pc.opts.Orderly {
		pc.wg.Add(1)
		q.wg.Add(1)
		go func() {
			defer pc.wg.Done()
			defer q.wg.Done()
			pc.consumeOrderly(q)
		}()
	}
	pc.pullLoop(q)
}

// dropQueue gives q up: its goroutines stop, and once its handler calls
// have returned its offset is committed (or that of a reset the broker
// pushed meanwhile: consumer_reset.go), its lock (orderly) released and
// it leaves the table; then a rebalance may take the queue again.
func (pc *PushConsumer) dropQueue(q *processQueue) {
	if !q.drop() {
		return
	}
	pc.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		q.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*pc.c.opts.RequestTimeout)
		defer cancel()
		reset := pc.commitDropped(ctx, q)
		pc.lockMu.Lock()
		if pc.opts.Orderly && pc.opts.Model == Clustering {
			pc.unlockQueues(ctx, []MessageQueue{q.mq})
		}
		for {
			q.commitMu.Lock() // no commit of q is under way when it leaves (commitQueues)
			pc.mu.Lock()
			if !q.resetPending() {
				if pc.queues[q.mq] == q {
					delete(pc.queues, q.mq)
					if reset >= 0 && !q.lostLock() {
						// Taken again from there, not from the broker's
						// offset: a pull sent before the reset may
						// still commit where the queue was.
						pc.resetStarts[q.mq] = reset
					}
				}
				pc.mu.Unlock()
				q.commitMu.Unlock()
				break
			}
			pc.mu.Unlock()
			q.commitMu.Unlock()
			if off := pc.commitDropped(ctx, q); off >= 0 { // a reset pushed since the commit above
				reset = off
			}
		}
		pc.lockMu.Unlock()
		pc.log.Debug("client: queue dropped", "queue", q.mq)
		pc.kickRebalance()
	}()
}

// commitDropped commits the offset of q, whose goroutines stopped: that of
// the latest reset pushed for it, if any (returned; -1 for none), else its
// own.
func (pc *PushConsumer) commitDropped(ctx context.Context, q *processQueue) int64 {
	reset := q.takeReset()
	if err := pc.persistQueues(ctx, []*processQueue{q}); err != nil {
		pc.log.Warn("client: offset of a dropped queue not committed", "queue", q.mq, "err", err)
	}
	return reset
}
