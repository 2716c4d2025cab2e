package client

import (
	"bytes"
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// An orderly member closes while a rebalance asks for the locks of new
// queues on two brokers, neither of which answers. Close waits for that
// request (its answer may grant locks Close must release), but the
// brokers were asked one after the other: Close waited a RequestTimeout
// per broker that does not answer, and a rebalance's renewals held the
// lock mutex as long. The brokers are now asked at once.
//
// The proxies in front of both brokers hold every lock request of the
// topic.
func TestCloseWaitsForARebalanceLockRequestOnceNotPerBroker(t *testing.T) {
	const rt = 3 * time.Second
	topic, group := uniq("ledger"), uniq("og")
	ns := startNamesrv(t, "127.0.0.1:0")
	var holding atomic.Bool
	var held atomic.Int32
	hold := func(req *remoting.Command) bool {
		if !holding.Load() || req.Code != remoting.ReqLockBatchMQ || !bytes.Contains(req.Body, []byte(`"`+topic+`"`)) {
			return false
		}
		held.Add(1)
		return true
	}
	var listens []string
	for range 2 {
		listen := testutil.FreeAddr(t)
		px := startHoldProxy(t, listen, hold)
		o := brokerOptions(t.TempDir(), ns.Addr(), uniq("broker"))
		o.ListenAddr, o.AdvertiseAddr = listen, px.addr
		openBroker(t, o)
		listens = append(listens, listen)
	}
	for _, l := range listens {
		createTopicOn(t, l, topic, 1)
	}
	probe := newClient(t, ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})
	h := func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }
	c := newClient(t, ns.Addr(), func(o *Options) { o.RequestTimeout = rt })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, RebalanceInterval: time.Hour}, topic, "*", h)
	waitFor(t, "both queues taken", func() bool { return len(ownQueues(pc, topic)) == 2 })

	// Two other members (their ids sort first) join: the member gives
	// both queues up. They leave again: the member's rebalance asks for
	// both queues' locks, and both brokers keep silent.
	others := []string{"0-other-a", "0-other-b"}
	var conns []*remoting.Conn
	for _, l := range listens {
		conn := remotetest.Dial(t, l)
		conns = append(conns, conn)
		for _, id := range others {
			joinAs(t, conn, pc, id)
		}
	}
	pc.kickRebalance()
	waitFor(t, "both queues given up", func() bool {
		return !slices.ContainsFunc(pc.queueList(), func(mq MessageQueue) bool { return mq.Topic == topic })
	})
	holding.Store(true)
	for _, conn := range conns {
		for _, id := range others {
			if resp := remotetest.Call(t, conn, remoting.ReqUnregisterClient,
				map[string]string{"clientID": id, "consumerGroup": group}, nil); resp.Code != remoting.RespSuccess {
				t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
			}
		}
	}
	pc.kickRebalance()
	waitFor(t, "a lock request held", func() bool { return held.Load() > 0 })

	start := time.Now()
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= rt+rt/2 {
		t.Fatalf("Close took %v with a rebalance's lock request on two silent brokers (RequestTimeout %v): it waited for them one after the other", took, rt)
	}
}
