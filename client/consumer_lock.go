package client

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Queue locks of orderly clustering consumers (LOCK_BATCH_MQ,
// UNLOCK_BATCH_MQ): a member consumes a queue only while the broker grants
// it the queue's lock, so that two members never consume one queue at once
// even while they disagree about the assignment. A new queue is locked
// before it is pulled; the locks are renewed every LockRenewInterval; a
// queue whose lock was not granted for lockExpiry stops being consumed
// until it is granted again (asked for again before each batch, and soon
// again while its broker cannot be reached); its offset is no longer
// committed once the broker's lock lifetime passed since the last grant,
// and one granted again only then (another member may have consumed it
// in between) is given up without committing, and taken again from the
// committed offset; a queue whose lock the broker refused (another member
// holds it) is given up (a later rebalance takes it again if it can; its
// offset is not committed, the new owner's is); locks are released when a
// queue is given up and on Close, and a lock granted to a request the
// member stopped waiting for is released when its answer comes.

// lockBatchBody is the LOCK_BATCH_MQ and UNLOCK_BATCH_MQ body.
type lockBatchBody struct {
	ConsumerGroup string         `json:"consumerGroup"`
	ClientID      string         `json:"clientId"`
	MQSet         []MessageQueue `json:"mqSet"`
}

// byBroker groups queues by broker name.
func byBroker(mqs []MessageQueue) map[string][]MessageQueue {
	out := map[string][]MessageQueue{}
	for _, mq := range mqs {
		out[mq.BrokerName] = append(out[mq.BrokerName], mq)
	}
	return out
}

// lockQueues asks each broker to lock (or renew) its queues of mqs for
// this client and returns those granted, and those a broker answered for
// without granting them (another member holds them). A broker that
// cannot be asked grants and refuses nothing. The brokers are asked at
// once: one that does not answer holds up the others' answers (renewals,
// and a rebalance's request, which Close waits for) by one
// RequestTimeout, not one per broker that does not answer.
func (pc *PushConsumer) lockQueues(ctx context.Context, mqs []MessageQueue) (got, refused []MessageQueue) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, qs := range byBroker(mqs) {
		wg.Go(func() {
			g, r := pc.lockAt(ctx, name, qs)
			mu.Lock()
			defer mu.Unlock()
			got, refused = append(got, g...), append(refused, r...)
		})
	}
	wg.Wait()
	sortQueues(got)
	sortQueues(refused)
	return got, refused
}

// lockAt asks broker name to lock qs, its queues, for lockQueues.
func (pc *PushConsumer) lockAt(ctx context.Context, name string, qs []MessageQueue) (got, refused []MessageQueue) {
	const op = "LOCK_BATCH_MQ"
	resp, addr, err := pc.lockRequest(ctx, remoting.ReqLockBatchMQ, op, name, qs)
	if err == nil && resp.Code != remoting.RespSuccess {
		err = &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	var body struct {
		LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
	}
	if err == nil {
		err = json.Unmarshal(resp.Body, &body)
	}
	if err != nil {
		if ctx.Err() == nil {
			pc.lockFailed(name, err)
		}
		return nil, nil
	}
	pc.lockWorked(name)
	for _, want := range qs {
		if slices.Contains(body.LockOKMQSet, want) {
			got = append(got, want)
		} else {
			refused = append(refused, want)
		}
	}
	return got, refused
}

// lockFailed logs a failed lock request to broker: a warning when
// locking there starts to fail, a debug record while it goes on failing.
// A queue with a batch waiting asks again every second at most, and the
// renewals every LockRenewInterval: one warning each would repeat, per
// queue, for as long as the broker is down.
func (pc *PushConsumer) lockFailed(broker string, err error) {
	pc.lockLogMu.Lock()
	failing := pc.lockFailing[broker]
	pc.lockFailing[broker] = true
	pc.lockLogMu.Unlock()
	if failing {
		pc.log.Debug("client: locking queues still failing", "broker", broker, "err", err)
		return
	}
	pc.log.Warn("client: locking queues failed", "broker", broker, "err", err)
}

// lockWorked logs, once, that locking at broker works again after
// lockFailed.
func (pc *PushConsumer) lockWorked(broker string) {
	pc.lockLogMu.Lock()
	failing := pc.lockFailing[broker]
	delete(pc.lockFailing, broker)
	pc.lockLogMu.Unlock()
	if failing {
		pc.log.Info("client: locking queues works again", "broker", broker)
	}
}

// unlockQueues releases this client's locks of mqs; failures are logged
// (the broker frees the locks after a minute).
func (pc *PushConsumer) unlockQueues(ctx context.Context, mqs []MessageQueue) {
	const op = "UNLOCK_BATCH_MQ"
	for name, qs := range byBroker(mqs) {
		resp, addr, err := pc.lockRequest(ctx, remoting.ReqUnlockBatchMQ, op, name, qs)
		if err == nil && resp.Code != remoting.RespSuccess {
			err = &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
		}
		if err != nil {
			pc.log.Debug("client: unlocking queues failed", "broker", name, "err", err)
		}
	}
}

// lockRequest sends a lock or unlock request for qs to their broker.
func (pc *PushConsumer) lockRequest(ctx context.Context, code int16, op, brokerName string, qs []MessageQueue) (*remoting.Command, string, error) {
	addr, err := pc.c.brokerAddr(ctx, brokerName, qs[0].Topic)
	if err != nil {
		return nil, "", err
	}
	body, err := json.Marshal(lockBatchBody{ConsumerGroup: pc.opts.Group, ClientID: pc.c.id, MQSet: qs})
	if err != nil {
		return nil, addr, err
	}
	req := newRequest(code, nil)
	req.Body = body
	resp, err := pc.c.invoke(ctx, addr, op, req)
	return resp, addr, err
}

// lockLoop renews the locks of the live queues every LockRenewInterval.
func (pc *PushConsumer) lockLoop(ctx context.Context) {
	t := time.NewTicker(pc.opts.LockRenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pc.renewLocks(ctx)
	}
}

// renewLocks locks every queue in the table again, and records which
// were granted. A dropped queue stays in the table until its handler call
// has returned: its lock is renewed until then, so that the member the
// queue moves to cannot take it (once it expires) while that call runs.
func (pc *PushConsumer) renewLocks(ctx context.Context) {
	pc.lockMu.Lock()
	defer pc.lockMu.Unlock()
	pc.mu.Lock()
	qs := make([]*processQueue, 0, len(pc.queues))
	for _, q := range pc.queues {
		if !q.lostLock() { // another member's now
			qs = append(qs, q)
		}
	}
	pc.mu.Unlock()
	if len(qs) == 0 {
		return
	}
	mqs := make([]MessageQueue, len(qs))
	for i, q := range qs {
		mqs[i] = q.mq
	}
	at := time.Now()
	got, refused := pc.lockQueues(ctx, mqs)
	for _, q := range qs {
		switch {
		case q.isDropped():
			// Its handler call still runs: the grant counts for the
			// commit once the call returns (toPersist).
			if slices.Contains(got, q.mq) {
				q.regrant(at)
			}
		case slices.Contains(got, q.mq) && q.regrant(at):
		case slices.Contains(got, q.mq):
			pc.log.Warn("client: queue lock renewed after it lapsed; taking the queue again from the committed offset", "queue", q.mq)
			pc.dropRefused(q)
		case slices.Contains(refused, q.mq):
			// The broker gave the lock to another member (after a broker
			// restart, say): stop at once rather than when the last grant
			// expires, as the Java client does, and give the queue up
			// without committing its offset over the new owner's.
			q.loseLock()
			pc.log.Info("client: queue lock refused on renewal; another member holds it", "queue", q.mq)
			pc.dropRefused(q)
		case ctx.Err() == nil:
			pc.log.Debug("client: queue lock not renewed (broker not reached)", "queue", q.mq)
		}
	}
}

// dropRefused gives up q, whose lock renewal was refused. The lock loop is
// not one of the goroutines Close waits for (it outlives them): a drop is
// counted while the consumer is started, as resetOffsets does. Once Close
// began, q is only stopped; Close, which waits for its handler calls and
// for this loop, then skips its commit (lockLost) and releases its lock
// with the others, as the drop would have.
func (pc *PushConsumer) dropRefused(q *processQueue) {
	pc.mu.Lock()
	if pc.state != consumerStarted {
		pc.mu.Unlock()
		q.drop()
		return
	}
	pc.wg.Add(1)
	defer pc.wg.Done()
	pc.mu.Unlock()
	pc.dropQueue(q)
}

// lockRetryMin and lockRetryMax bound the pause before holdLock asks again
// for a lock whose request did not reach the broker; it doubles from the
// first to the second. RocketMQ asks 10 ms after the first failure, then
// 3 s after each: here each try itself already waits up to RequestTimeout
// when the broker does not answer.
const (
	lockRetryMin = 10 * time.Millisecond
	lockRetryMax = time.Second
)

// holdLock reports whether q may be consumed now: its lock is valid, or
// was taken again. A queue whose lock another member holds is dropped. One
// whose broker was not reached is kept, and its lock asked for again
// shortly until it is granted or q stops: given up, it would be taken
// again only by the rebalance rounds, which back off up to
// RebalanceInterval while the broker is down, and so could leave the
// queue idle that long after the broker is back.
func (pc *PushConsumer) holdLock(q *processQueue) bool {
	if pc.opts.Model != Clustering {
		return true
	}
	for wait := lockRetryMin; ; wait = min(2*wait, lockRetryMax) {
		if q.lockValid() { // a renewal may have granted it meanwhile
			return true
		}
		at := time.Now()
		got, refused := pc.lockQueue(q)
		if len(got) == 1 && !q.lostLock() && q.regrant(at) {
			return true
		}
		if len(refused) == 1 {
			q.loseLock()
		}
		if q.lostLock() {
			if q.ctx.Err() == nil {
				pc.log.Warn("client: orderly queue lock lost or lapsed; giving the queue up", "queue", q.mq)
				pc.dropQueue(q)
			}
			return false
		}
		if !sleepCtx(q.ctx, wait) {
			return false
		}
	}
}

// lockQueue asks for q's lock for holdLock, which stops waiting for the
// answer once q stops (then it grants and refuses nothing). The request is
// not abandoned when a rebalance drops q: the drop releases the lock
// meanwhile, and the broker may have the request only after that,
// granting the lock to this member, which would keep it from the queue's
// new owner for a minute. A lock granted once q stopped is released
// (releaseStale). The consumer's Close ends the request, as before, so
// that it does not wait for the answer: q is in the table, whose locks
// Close releases.
func (pc *PushConsumer) lockQueue(q *processQueue) (got, refused []MessageQueue) {
	return pc.lockAwait(q.ctx, pc.ctx, []MessageQueue{q.mq}) // pc.ctx: q.ctx's parent
}

// lockNew asks for the locks of the queues a rebalance takes; the
// rebalance stops waiting for the answer once ctx ends (the consumer
// closes, or Start's ctx ends), and then gets and is refused nothing. The
// request is not ended with ctx: the broker may have it only after that,
// and grant this member the locks of queues that never enter its table,
// which Close does not release; no other member could lock them for a
// minute. The answer is waited for (a RequestTimeout at most, the
// brokers asked at once and their addresses known; Close waits too), and
// the locks it grants are released (releaseStale).
func (pc *PushConsumer) lockNew(ctx context.Context, mqs []MessageQueue) (got, refused []MessageQueue) {
	return pc.lockAwait(ctx, context.WithoutCancel(ctx), mqs)
}

// lockAwait asks for the locks of mqs under reqCtx, waiting for the answer
// until stop ends: then it returns nothing, and the locks the answer grants
// later are released (releaseStale). The caller runs on a goroutine of
// pc.wg, whose count is then not 0; the request's goroutine is counted in
// it too, so that Close waits for the release.
func (pc *PushConsumer) lockAwait(stop, reqCtx context.Context, mqs []MessageQueue) (got, refused []MessageQueue) {
	type answer struct{ got, refused []MessageQueue }
	ch := make(chan answer, 1)
	var mu sync.Mutex
	abandoned := false
	pc.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		got, refused := pc.lockQueues(reqCtx, mqs)
		mu.Lock()
		gone := abandoned
		ch <- answer{got, refused}
		mu.Unlock()
		if gone && len(got) > 0 {
			pc.releaseStale(got)
		}
	}()
	select {
	case a := <-ch:
		return a.got, a.refused
	case <-stop.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case a := <-ch: // answered meanwhile: the caller takes (or releases) what it got
		return a.got, a.refused
	default:
		abandoned = true
		return nil, nil
	}
}

// releaseStale releases the locks of mqs, granted to a request that had
// stopped waiting for them, with one request (per broker): one per queue,
// one after the other, would keep Close waiting a RequestTimeout for each
// if the broker stopped answering. A queue in the table is left out: the
// queue that stopped has not left yet, and its drop releases the lock
// after this (both hold lockMu), or Close does; or the queue was taken
// again and its lock is its own.
func (pc *PushConsumer) releaseStale(mqs []MessageQueue) {
	pc.lockMu.Lock()
	defer pc.lockMu.Unlock()
	pc.mu.Lock()
	var stale []MessageQueue
	for _, mq := range mqs {
		if _, in := pc.queues[mq]; !in {
			stale = append(stale, mq)
		}
	}
	pc.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	pc.log.Debug("client: releasing queue locks granted after the queues were given up", "queues", stale)
	ctx, cancel := context.WithTimeout(context.Background(), pc.c.opts.RequestTimeout)
	defer cancel()
	pc.unlockQueues(ctx, stale)
}
