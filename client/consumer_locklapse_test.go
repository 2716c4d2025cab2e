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
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 1
	})
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
	// The broker tells the name server of the topic after CreateTopic
	// answers; until then the name server routes the topic to TBW102's
	// four queues, which the consumer, rebalancing once an hour, would
	// keep.
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 1
	})
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
