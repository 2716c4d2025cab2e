package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// An orderly member asks for a queue's lock again before a batch (it
// expired, say), and a rebalance gives the queue to another member while
// that request is on its way. The member stops waiting for the answer,
// and its drop releases the lock, before the broker has the request,
// which then grants the lock to the member that no longer owns the queue:
// the broker kept it for a minute, in which the new owner could not lock
// the queue. The member now releases a lock granted to it after the queue
// was dropped (it is not in the table any more).
//
// The proxy holds the member's lock request until the drop is done; the
// new owner here is a member that only heartbeats (its id sorts first:
// it gets the topic's one queue), and it locks the queue itself.
func TestLockGrantedAfterDropIsReleased(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const newOwner = "0-new-owner"
	var holding atomic.Bool
	var held atomic.Pointer[remoting.Command] // the member's lock request
	answered := make(chan struct{})
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		if !holding.Load() || req.Code != remoting.ReqLockBatchMQ || !bytes.Contains(req.Body, []byte(`"`+topic+`"`)) {
			return false
		}
		held.CompareAndSwap(nil, req)
		return true
	})
	var answerOnce sync.Once
	onAnswer := func(resp *remoting.Command) {
		if r := held.Load(); r != nil && !holding.Load() && resp.Opaque == r.Opaque && resp.IsResponse() {
			answerOnce.Do(func() { close(answered) })
		}
	}
	px.answered.Store(&onAnswer)
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
	var consumed atomic.Int32
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) {
		consumed.Add(1)
		return ConsumeSuccess, nil
	}
	// The answer comes long before the request times out.
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 10 * time.Second })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		RebalanceInterval: time.Hour}, topic, "*", h)
	t.Cleanup(func() { holding.Store(false); px.releaseAll() }) // before the consumer's Close
	send("m0")
	waitFor(t, "m0 consumed", func() bool { return consumed.Load() == 1 })
	waitFor(t, "the retry topic's queue taken", func() bool { return len(ownQueues(pc, retryTopic(group))) == 1 })
	mq := ownQueues(pc, topic)[0]

	// The next batch asks for the lock again; the request is held.
	for _, q := range pc.processQueues() {
		if q.mq == mq {
			q.setLocked(false, time.Time{})
		}
	}
	holding.Store(true)
	send("m1")
	waitFor(t, "the member's lock request held", func() bool { return held.Load() != nil })

	// The new owner joins; the member's rebalance gives it the queue.
	conn := remotetest.Dial(t, listen)
	joinAs(t, conn, pc, newOwner)
	pc.kickRebalance()
	waitFor(t, "the queue dropped and gone from the member's table", func() bool {
		return !slices.Contains(pc.queueList(), mq)
	})

	// The held request reaches the broker now, and is granted.
	holding.Store(false)
	px.releaseAll()
	select {
	case <-answered:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("the held lock request not answered")
	}
	lockedBy := func(id string) bool { return lockGranted(t, conn, group, id, mq) }
	testutil.WaitFor(t, 5*time.Second, "the new owner granted the queue's lock (the broker keeps a lock 60 s)",
		func() bool { return lockedBy(newOwner) })
	if consumed.Load() != 1 {
		t.Fatalf("%d messages consumed by the member, want 1 (m1 is the new owner's)", consumed.Load())
	}
}

// A lock granted after the queue was dropped is released (releaseStale)
// while a rebalance gives the member the queue back: the release must not
// reach the broker after the rebalance's lock of the queue, or the member
// consumes the queue as locked while the broker holds no lock for it, and
// another member can take the lock and consume the queue at the same time.
// The proxy holds the release; the rebalance's lock request is held too
// if it is sent meanwhile, and then reaches the broker first.
func TestStaleLockReleaseDoesNotUndoARebalancesLock(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const newOwner, intruder = "0-new-owner", "1-intruder"
	var holdLock, holdUnlock, lockHeld, unlockHeld atomic.Bool
	isFor := func(req *remoting.Command, code int16) bool {
		return req.Code == code && bytes.Contains(req.Body, []byte(`"`+topic+`"`))
	}
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		switch {
		case holdLock.Load() && isFor(req, remoting.ReqLockBatchMQ):
			lockHeld.Store(true)
			return true
		case holdUnlock.Load() && isFor(req, remoting.ReqUnlockBatchMQ):
			unlockHeld.Store(true)
			return true
		}
		return false
	})
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	createTopicOn(t, listen, topic, 1)
	waitRouted(t, cl.ns.Addr(), topic, 1)
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 10 * time.Second })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, RebalanceInterval: time.Hour}, topic, "*", h)
	t.Cleanup(func() { holdLock.Store(false); holdUnlock.Store(false); px.releaseAll() }) // before the consumer's Close
	waitFor(t, "the queue taken", func() bool { return len(ownQueues(pc, topic)) == 1 })
	mq := ownQueues(pc, topic)[0]
	conn := remotetest.Dial(t, listen)
	lockedBy := func(id string) bool { return lockGranted(t, conn, group, id, mq) }

	// The new owner joins; the member gives the queue up.
	joinAs(t, conn, pc, newOwner)
	pc.kickRebalance()
	waitFor(t, "the queue dropped and gone from the member's table", func() bool {
		return !slices.Contains(pc.queueList(), mq)
	})
	// The member's late lock request is granted (the broker had it after
	// the drop's release), and the member releases that lock; the proxy
	// holds the release.
	if !lockedBy(c.id) {
		t.Fatal("the member's late lock request refused")
	}
	holdUnlock.Store(true)
	released := make(chan struct{})
	go func() {
		defer close(released)
		pc.releaseStale([]MessageQueue{mq})
	}()
	waitFor(t, "the stale lock's release held", unlockHeld.Load)

	// The new owner leaves: a rebalance gives the member the queue back.
	holdLock.Store(true)
	if resp := remotetest.Call(t, conn, remoting.ReqUnregisterClient,
		map[string]string{"clientID": newOwner, "consumerGroup": group}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
	}
	pc.kickRebalance()
	waitLockMu := fmt.Sprintf("(*Mutex).lockSlow(%p)", &pc.lockMu)
	waitFor(t, "the rebalance's lock request sent, or the rebalance waiting for the release", func() bool {
		return lockHeld.Load() || len(stacksWith("(*PushConsumer).updateQueues", waitLockMu)) > 0
	})
	holdLock.Store(false)
	if lockHeld.Load() { // it reaches the broker before the release
		px.releaseWhere(func(req *remoting.Command) bool { return req.Code == remoting.ReqLockBatchMQ })
		waitFor(t, "the queue taken again", func() bool { return len(ownQueues(pc, topic)) == 1 })
	}
	holdUnlock.Store(false)
	px.releaseAll()
	select {
	case <-released:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("the stale lock's release did not return")
	}
	waitFor(t, "the queue taken again", func() bool { return len(ownQueues(pc, topic)) == 1 })
	if lockedBy(intruder) {
		t.Fatal("another member was granted the lock of the queue the member consumes as locked: the stale lock's release undid the rebalance's lock")
	}
}

// joinAs heartbeats on conn as member id of pc's group, subscribed as pc.
func joinAs(t *testing.T, conn *remoting.Conn, pc *PushConsumer, id string) {
	t.Helper()
	d := pc.heartbeatData()
	d.GroupName = pc.opts.Group
	hb, err := json.Marshal(heartbeatData{ClientID: id, ProducerDataSet: []producerData{},
		ConsumerDataSet: []consumerData{d}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := remotetest.Call(t, conn, remoting.ReqHeartBeat, nil, hb); resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: %d %s", resp.Code, resp.Remark)
	}
}

// lockGranted asks on conn for mq's lock as member id of group and
// reports whether the broker granted it.
func lockGranted(t *testing.T, conn *remoting.Conn, group, id string, mq MessageQueue) bool {
	t.Helper()
	var body struct {
		LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
	}
	if err := json.Unmarshal(lockRequestAs(t, conn, remoting.ReqLockBatchMQ, group, id, mq), &body); err != nil {
		t.Fatal(err)
	}
	return slices.Contains(body.LockOKMQSet, mq)
}
