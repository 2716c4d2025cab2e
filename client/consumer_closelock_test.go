package client

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// An orderly member closes while a rebalance's request for a new queue's
// lock is on its way. Close used to end that request: the member never
// learned that the broker, which had the request only then, granted it
// the lock, and Close released the locks of the queues in its table
// only. The broker kept the lock for a minute, in which the member the
// queue went to could not lock it, and the queue was not consumed.
//
// The proxy holds the rebalance's lock request until Close has begun.
func TestCloseReleasesALockItsRebalanceWasWaitingFor(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const other, next = "0-other", "1-next-owner"
	var holding atomic.Bool
	var held atomic.Pointer[remoting.Command]
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
		if r := held.Load(); r != nil && !holding.Load() && resp.IsResponse() && resp.Opaque == r.Opaque {
			answerOnce.Do(func() { close(answered) })
		}
	}
	px.answered.Store(&onAnswer)
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	createTopicOn(t, listen, topic, 1)
	waitRouted(t, cl.ns.Addr(), topic, 1)
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 10 * time.Second })
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: group, Orderly: true, RebalanceInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, "*", h); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		holding.Store(false)
		px.releaseAll()
		if !closed {
			_ = pc.Close()
		}
	})
	waitFor(t, "the queue taken", func() bool { return len(ownQueues(pc, topic)) == 1 })
	mq := ownQueues(pc, topic)[0]
	conn := remotetest.Dial(t, listen)

	// Another member (its id sorts first) joins: the member gives the
	// queue up and releases its lock.
	joinAs(t, conn, pc, other)
	pc.kickRebalance()
	waitFor(t, "the queue dropped and gone from the member's table", func() bool {
		return !slices.Contains(pc.queueList(), mq)
	})
	// It leaves again: the member's rebalance asks for the queue's lock,
	// and the proxy holds the request.
	holding.Store(true)
	if resp := remotetest.Call(t, conn, remoting.ReqUnregisterClient,
		map[string]string{"clientID": other, "consumerGroup": group}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
	}
	pc.kickRebalance()
	waitFor(t, "the rebalance's lock request held", func() bool { return held.Load() != nil })

	// The member closes; the request reaches the broker once Close began.
	done := make(chan error, 1)
	go func() { done <- pc.Close() }()
	closed = true
	<-pc.Closing()
	holding.Store(false)
	px.releaseAll()
	select {
	case <-answered:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("the held lock request not answered")
	}
	select {
	case <-done:
	case <-ctxT(t, 20*time.Second).Done():
		t.Fatal("Close did not return")
	}
	// The member that takes the queue over locks it at once.
	joinAs(t, conn, pc, next)
	testutil.WaitFor(t, 5*time.Second, "the next owner granted the queue's lock (the broker keeps a lock 60 s)",
		func() bool { return lockGranted(t, conn, group, next, mq) })
}

// As TestCloseReleasesALockItsRebalanceWasWaitingFor, with n queues
// whose locks the broker grants once Close began, and then no answer to
// the unlocks: the late locks were released one request per queue, one
// after the other, and Close waited a RequestTimeout for each.
func TestCloseReleasesLateLocksWithOneRequest(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	const other = "0-other-"
	const rt, n = 2 * time.Second, 4
	var holding, holdUnlocks atomic.Bool
	var held atomic.Pointer[remoting.Command]
	answered := make(chan struct{})
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		if holdUnlocks.Load() && req.Code == remoting.ReqUnlockBatchMQ && bytes.Contains(req.Body, []byte(`"`+topic+`"`)) {
			return true
		}
		if !holding.Load() || req.Code != remoting.ReqLockBatchMQ || !bytes.Contains(req.Body, []byte(`"`+topic+`"`)) {
			return false
		}
		held.Store(req)
		return true
	})
	var answerOnce sync.Once
	onAnswer := func(resp *remoting.Command) {
		if r := held.Load(); r != nil && !holding.Load() && resp.IsResponse() && resp.Opaque == r.Opaque {
			answerOnce.Do(func() { close(answered) })
		}
	}
	px.answered.Store(&onAnswer)
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	createTopicOn(t, listen, topic, n)
	waitRouted(t, cl.ns.Addr(), topic, n)
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = rt })
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: group, Orderly: true, RebalanceInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, "*", h); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		holding.Store(false)
		holdUnlocks.Store(false)
		px.releaseAll()
		if !closed {
			_ = pc.Close()
		}
	})
	waitFor(t, "the queues taken", func() bool { return len(ownQueues(pc, topic)) == n })

	// n other members (their ids sort first) join: the member gives the
	// queues up and releases their locks.
	others := remotetest.Dial(t, listen)
	for i := range n {
		joinAs(t, others, pc, other+strconv.Itoa(i))
	}
	pc.kickRebalance()
	waitFor(t, "the queues dropped and gone from the member's table", func() bool {
		return !slices.ContainsFunc(pc.queueList(), func(mq MessageQueue) bool { return mq.Topic == topic })
	})
	// They leave again, at once (their connection closes): the member's
	// rebalance asks for the queues' locks, and the proxy holds the
	// request.
	holding.Store(true)
	others.Close()
	pc.kickRebalance()
	waitFor(t, "the rebalance's lock request of the n queues held", func() bool {
		var b lockBatchBody
		r := held.Load()
		return r != nil && json.Unmarshal(r.Body, &b) == nil && len(b.MQSet) == n
	})

	// The member closes; the request reaches the broker once Close
	// began, and is granted; the broker then stops answering unlocks.
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- pc.Close() }()
	closed = true
	<-pc.Closing()
	holdUnlocks.Store(true)
	holding.Store(false)
	px.releaseAll()
	select {
	case <-answered:
	case <-ctxT(t, 10*time.Second).Done():
		t.Fatal("the held lock request not answered")
	}
	select {
	case <-done:
	case <-ctxT(t, 30*time.Second).Done():
		t.Fatal("Close did not return")
	}
	if took := time.Since(start); took >= 2*rt {
		t.Fatalf("Close took %v releasing %d late locks on a broker that does not answer (RequestTimeout %v): one unlock request each, one after the other", took, n, rt)
	}
}
