package client

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// An orderly member whose queue lock has to be taken again (it expired)
// while its broker cannot be reached asks for it again shortly, as
// RocketMQ's tryLockLaterAndReconsume does, and consumes the queue as soon
// as the broker is back, rather than giving the queue up to the next
// rebalance rounds, which back off up to RebalanceInterval (an hour here).
// The proxy in front of the broker holds every request but pulls (so the
// message still arrives) while the broker is down, for 20 s: the rounds
// after the failed one, had the queue been given up, ask after 0.5, 1, 2,
// 4, 8 and then 16 s, so the first to find the broker back would come
// about 11 s after it, well past the 6 s allowed.
func TestOrderlyRetriesLockSoonAfterBrokerUnreachable(t *testing.T) {
	topic, group := uniq("ledger"), uniq("og")
	var downUntil atomic.Int64 // UnixNano
	var asked atomic.Bool      // a lock request was held
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		if time.Now().UnixNano() >= downUntil.Load() || req.Code == remoting.ReqPullMessage {
			return false
		}
		if req.Code == remoting.ReqLockBatchMQ {
			asked.Store(true)
		}
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
		got = append(got, string(msgs[0].Body))
		return ConsumeSuccess, nil
	}
	consumed := func(body string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(got, body) }
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 150 * time.Millisecond })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		RebalanceInterval: time.Hour, LockRenewInterval: 29 * time.Second}, topic, "*", h)
	t.Cleanup(func() { downUntil.Store(0); px.releaseAll() }) // before the consumer's Close
	send("m0")
	waitFor(t, "m0 consumed", consumed("m0"))
	// Once the retry topic is routed too, no round is due for an hour.
	waitFor(t, "the retry topic's queue taken", func() bool { return len(ownQueues(pc, retryTopic(group))) == 1 })

	// The lock expired (its renewals failed, say): the next batch asks
	// for it, while the broker is down.
	for _, q := range pc.processQueues() {
		if q.mq.Topic == topic {
			q.setLocked(false, time.Time{})
		}
	}
	up := time.Now().Add(20 * time.Second)
	downUntil.Store(up.UnixNano())
	send("m1")
	waitFor(t, "the lock asked for while the broker is down", asked.Load)
	testutil.WaitFor(t, time.Until(up)+6*time.Second, "m1 consumed within 6 s of the broker being back", consumed("m1"))
	t.Logf("m1 consumed %v after the broker was back", time.Since(up))
}
