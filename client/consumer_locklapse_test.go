package client

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// An orderly member's queue lock is granted again after more than the
// broker's lock lifetime without one (its broker was out of reach for
// over a minute, say). In between, the broker could give the lock to
// another member, which consumed the queue from the committed offset and
// committed past what this member had pulled. This member used to go on
// from its own buffer and pull position: it consumed those messages a
// second time, and its commits took the group's offset back. It now
// gives the queue up without committing, and takes it again from the
// committed offset.
//
// The proxy holds the member's lock request while another member locks
// the queue (this member's lock gone, as if expired), commits past the
// buffered message and unlocks it.
func TestOrderlyLockRegainedAfterLapseRestartsFromCommittedOffset(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const other = "0-other"
	var holding, held atomic.Bool
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		if !holding.Load() || req.Code != remoting.ReqLockBatchMQ || !bytes.Contains(req.Body, []byte(`"`+topic+`"`)) {
			return false
		}
		held.Store(true)
		return true
	})
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	createTopicOn(t, listen, topic, 1)
	waitRouted(t, cl.ns.Addr(), topic, 1)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), listen) // around the proxy
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	send := func(body string) {
		if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			got = append(got, string(m.Body))
		}
		return ConsumeSuccess, nil
	}
	consumed := func(body string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(got, body) }
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 10 * time.Second })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		RebalanceInterval: time.Hour, LockRenewInterval: 29 * time.Second, PersistInterval: 50 * time.Millisecond}, topic, "*", h)
	t.Cleanup(func() { holding.Store(false); px.releaseAll() }) // before the consumer's Close
	send("m0")
	waitFor(t, "m0 consumed", consumed("m0"))
	waitFor(t, "the retry topic's queue taken", func() bool { return len(ownQueues(pc, retryTopic(group))) == 1 })
	mq := ownQueues(pc, topic)[0]
	var q *processQueue
	for _, pq := range pc.processQueues() {
		if pq.mq == mq {
			q = pq
		}
	}
	waitFor(t, "m0's offset committed", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.persisted == 1
	})

	// The member's lock was last granted more than a broker lock lifetime
	// ago: the next batch asks for it, and the proxy holds the request.
	holding.Store(true)
	q.mu.Lock()
	q.locked, q.lockedAt = false, time.Now().Add(-brokerLockLife-time.Second)
	q.mu.Unlock()
	send("m1")
	waitFor(t, "the member's lock request held", held.Load)

	// Meanwhile the broker let its lock go; another member took the
	// queue, consumed m1, committed past it and left.
	conn := remotetest.Dial(t, listen)
	lockRequestAs(t, conn, remoting.ReqUnlockBatchMQ, group, c.id, mq)
	if !lockGranted(t, conn, group, other, mq) {
		t.Fatal("the other member's lock refused")
	}
	if resp := remotetest.Call(t, conn, remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(mq.QueueID)), "commitOffset": "2"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("the other member's commit: %d %s", resp.Code, resp.Remark)
	}
	lockRequestAs(t, conn, remoting.ReqUnlockBatchMQ, group, other, mq)

	// The member's request reaches the broker and is granted.
	holding.Store(false)
	px.releaseAll()
	send("m2")
	testutil.WaitFor(t, 10*time.Second, "m2 consumed", consumed("m2"))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"m0", "m2"}) {
		t.Fatalf("the member consumed %q, want [m0 m2]: m1 was the other member's, committed before the member's lock was granted again", got)
	}
}

// A renewal granted after the broker's lock lifetime without one gives the
// queue up as well (the lock loop's path to the same lapse).
func TestOrderlyRenewalAfterLapseGivesTheQueueUp(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	cl := startCluster(t, nil, nil)
	createTopicOn(t, cl.b.Addr(), topic, 1)
	// Routed as created first: a route read before the name server had the
	// topic names TBW102's four queues, which the consumer, rebalancing
	// once an hour, would keep.
	waitRouted(t, cl.ns.Addr(), topic, 1)
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }
	c := newClient(t, cl.ns.Addr(), nil)
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, RebalanceInterval: time.Hour}, topic, "*", h)
	waitFor(t, "the queue taken", func() bool { return len(ownQueues(pc, topic)) == 1 })
	var q *processQueue
	for _, pq := range pc.processQueues() {
		if pq.mq.Topic == topic {
			q = pq
		}
	}
	q.mu.Lock()
	q.lockedAt = time.Now().Add(-brokerLockLife - time.Second)
	q.mu.Unlock()
	pc.renewLocks(ctxT(t, 10*time.Second))
	if !q.isDropped() || !q.lostLock() {
		t.Fatalf("queue dropped %v, lock lost %v after a renewal granted past the broker's lock lifetime; want both",
			q.isDropped(), q.lostLock())
	}
	waitFor(t, "the queue taken again", func() bool {
		for _, pq := range pc.processQueues() {
			if pq.mq == q.mq && pq != q {
				return true
			}
		}
		return false
	})
}

// An orderly member's lock lapsed (no grant for longer than the broker's
// lock lifetime: its broker was out of its reach, say), and another
// member took the queue, consumed it and committed past this member's
// offset. Before this member learns it (its next lock request or
// renewal: regrant), its periodic commit runs: it used to commit its own
// older offset over the other member's, taking the group back. A queue
// whose lock was last granted a broker lock lifetime ago or longer is no
// longer committed.
func TestOrderlyLapsedLockIsNotCommittedOverTheNewOwner(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const other = "0-other"
	cl := startCluster(t, nil, nil)
	createTopicOn(t, cl.b.Addr(), topic, 1)
	waitRouted(t, cl.ns.Addr(), topic, 1)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	var consumed atomic.Int32
	blocked, unblock := make(chan struct{}), make(chan struct{})
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) == "m1" {
			close(blocked)
			<-unblock
		}
		consumed.Add(int32(len(msgs)))
		return ConsumeSuccess, nil
	}
	c := newClient(t, cl.ns.Addr(), nil)
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		RebalanceInterval: time.Hour, PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "the queue taken", func() bool { return len(ownQueues(pc, topic)) == 1 })
	mq := ownQueues(pc, topic)[0]
	var q *processQueue
	for _, pq := range pc.processQueues() {
		if pq.mq == mq {
			q = pq
		}
	}
	send := func(body string) {
		if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send("m0")
	waitFor(t, "m0 consumed and acknowledged", func() bool {
		off, ok := q.ackOffset()
		return consumed.Load() == 1 && ok && off == 1
	})
	// m1's handler call runs on (a slow downstream system, say).
	send("m1")
	t.Cleanup(func() { close(unblock) }) // before the consumer's Close
	select {
	case <-blocked:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("m1 never reached the handler")
	}

	// The member's lock was last granted more than a broker lock lifetime
	// ago; meanwhile another member locked the queue and committed 2, past m1.
	q.mu.Lock()
	q.lockedAt = time.Now().Add(-brokerLockLife - time.Second)
	q.mu.Unlock()
	conn := remotetest.Dial(t, cl.b.Addr())
	lockRequestAs(t, conn, remoting.ReqUnlockBatchMQ, group, c.id, mq)
	if !lockGranted(t, conn, group, other, mq) {
		t.Fatal("the other member's lock refused")
	}
	if resp := remotetest.Call(t, conn, remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(mq.QueueID)), "commitOffset": "2"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("the other member's commit: %d %s", resp.Code, resp.Remark)
	}

	// The member's periodic commit.
	if err := pc.persist(ctxT(t, 5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	resp := remotetest.Call(t, conn, remoting.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(mq.QueueID)), "setZeroIfNotFound": "false"}, nil)
	if got := resp.Ext("offset"); resp.Code != remoting.RespSuccess || got != "2" {
		t.Fatalf("the group's offset after the member's periodic commit: %s (code %d), want the new owner's 2: a member whose lock lapsed committed over it",
			got, resp.Code)
	}
}

// A queue a rebalance gave up keeps its lock renewed while its handler
// call runs, and its offset is committed once the call returns: a
// renewal granted meanwhile counts, however long ago the lock was granted
// before (the commit of a queue whose lock lapsed is skipped).
func TestOrderlyDroppedQueueRenewedDuringALongCallIsCommitted(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	cl := startCluster(t, nil, nil)
	createTopicOn(t, cl.b.Addr(), topic, 1)
	waitRouted(t, cl.ns.Addr(), topic, 1)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	blocked, unblock := make(chan struct{}), make(chan struct{})
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		close(blocked)
		<-unblock
		return ConsumeSuccess, nil
	}
	c := newClient(t, cl.ns.Addr(), nil)
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		RebalanceInterval: time.Hour, PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "the queue taken", func() bool { return len(ownQueues(pc, topic)) == 1 })
	mq := ownQueues(pc, topic)[0]
	var q *processQueue
	for _, pq := range pc.processQueues() {
		if pq.mq == mq {
			q = pq
		}
	}
	if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte("m0")}); err != nil {
		t.Fatal(err)
	}
	once := sync.OnceFunc(func() { close(unblock) })
	t.Cleanup(once)
	select {
	case <-blocked:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("m0 never reached the handler")
	}
	// Another member joins: the member gives the queue up, and waits for
	// the call, whose lock the renewals keep.
	conn := remotetest.Dial(t, cl.b.Addr())
	joinAs(t, conn, pc, "0-other")
	pc.kickRebalance()
	waitFor(t, "the queue given up", q.isDropped)
	// The call has run long: the lock was last granted to it 45 s ago.
	// The next renewal's grant counts for it.
	before := time.Now().Add(-45 * time.Second)
	q.mu.Lock()
	q.lockedAt = before
	q.mu.Unlock()
	pc.renewLocks(ctxT(t, 10*time.Second))
	q.mu.Lock()
	at := q.lockedAt
	q.mu.Unlock()
	if !at.After(before) {
		t.Fatal("a renewal granted to a given-up queue whose call runs is not recorded: its commit would be skipped once the lock looks a broker lock lifetime old")
	}
	once()
	waitFor(t, "the queue gone from the table", func() bool { return !slices.Contains(pc.queueList(), mq) })
	resp := remotetest.Call(t, conn, remoting.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(mq.QueueID)), "setZeroIfNotFound": "false"}, nil)
	if got := resp.Ext("offset"); resp.Code != remoting.RespSuccess || got != "1" {
		t.Fatalf("the group's offset after the dropped queue's call returned: %s (code %d), want 1 (m0's call done under a renewed lock)", got, resp.Code)
	}
}

// A member whose machine slept through the broker's lock life wakes with
// a monotonic clock that stopped meanwhile: by it the lock is fresh, by
// the wall clock (and the broker's) it lapsed. The lock counts as lapsed:
// it is not valid to consume under, and a grant after it gives the queue
// up (regrant) instead of carrying on from the buffer.
func TestLockAgeCountsTheTimeTheMachineSlept(t *testing.T) {
	q := newProcessQueue(t.Context(), MessageQueue{Topic: "t", BrokerName: "b"}, nil)
	now := time.Now()
	// Granted just now by the monotonic clock, a lock life ago by the wall clock.
	q.setLocked(true, testutil.WithWall(t, now, now.Add(-brokerLockLife-time.Second)))
	if q.lockValid() {
		t.Error("a lock granted a broker lock life ago by the wall clock is valid after the machine slept")
	}
	if q.regrant(time.Now()) {
		t.Error("a grant after the lock lapsed while the machine slept was taken as a renewal")
	}

	q = newProcessQueue(t.Context(), MessageQueue{Topic: "t", BrokerName: "b"}, nil)
	q.setLocked(true, time.Now())
	if !q.lockValid() || !q.regrant(time.Now()) {
		t.Error("a lock granted just now is not valid or not renewed")
	}
}
