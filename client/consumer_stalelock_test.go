package client

import (
	"bytes"
	"context"
	"encoding/json"
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
	d := pc.heartbeatData()
	d.GroupName = group
	hb, err := json.Marshal(heartbeatData{ClientID: newOwner, ProducerDataSet: []producerData{},
		ConsumerDataSet: []consumerData{d}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := remotetest.Call(t, conn, remoting.ReqHeartBeat, nil, hb); resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: %d %s", resp.Code, resp.Remark)
	}
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
	lockedBy := func(id string) bool {
		var body struct {
			LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
		}
		if err := json.Unmarshal(lockRequestAs(t, conn, remoting.ReqLockBatchMQ, group, id, mq), &body); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(body.LockOKMQSet, mq)
	}
	testutil.WaitFor(t, 5*time.Second, "the new owner granted the queue's lock (the broker keeps a lock 60 s)",
		func() bool { return lockedBy(newOwner) })
	if consumed.Load() != 1 {
		t.Fatalf("%d messages consumed by the member, want 1 (m1 is the new owner's)", consumed.Load())
	}
}
