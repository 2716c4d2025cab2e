package client

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// A broker restarted on a new port (same name, same store) is found again
// by an existing producer, within its route refresh, without recreating
// anything.
func TestProducerFollowsABrokerToANewPort(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	dir, name := t.TempDir(), uniq("broker")
	b := openBroker(t, brokerOptions(dir, ns.Addr(), name))
	c := newClient(t, ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 200 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("t")
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	old := b.Addr()
	b.Close()
	b2 := openBroker(t, brokerOptions(dir, ns.Addr(), name))
	if b2.Addr() == old {
		t.Fatalf("the broker came back on the same address %s", old)
	}
	waitFor(t, "a send to succeed after the broker moved", func() bool {
		res, err := p.Send(ctxT(t, 5*time.Second), &Message{Topic: topic, Body: []byte("2")})
		return err == nil && res.QueueOffset >= 0
	})
}

// A name server restarted on its address gets the broker's registration
// back, and an existing producer sends to a new topic again.
func TestProducerOutlivesANameServerRestart(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	nsAddr := ns.Addr()
	o := brokerOptions(t.TempDir(), nsAddr, uniq("broker"))
	o.RegisterInterval = 200 * time.Millisecond
	openBroker(t, o)
	c := newClient(t, nsAddr, nil)
	p := newProducer(t, c, ProducerOptions{})
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: uniq("t"), Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	startNamesrv(t, nsAddr)
	topic := uniq("t")
	waitFor(t, "a send to a new topic after the name server restarted", func() bool {
		_, err := p.Send(ctxT(t, 5*time.Second), &Message{Topic: topic, Body: []byte("2")})
		return err == nil
	})
}

// After the broker restarts on the same address, an existing producer's
// check listener is asked about a half message nobody ended.
func TestCheckBackAfterABrokerRestart(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	o := brokerOptions(t.TempDir(), ns.Addr(), uniq("broker"))
	o.Txn.Timeout = 300 * time.Millisecond
	o.Txn.CheckInterval = 300 * time.Millisecond
	o.ListenAddr = testutil.FreeAddr(t) // not an ephemeral port, which another connection could take while it is down
	b := openBroker(t, o)
	c := newClient(t, ns.Addr(), func(o *Options) { o.HeartbeatInterval = 200 * time.Millisecond })
	asked := make(chan string, 100)
	p := newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(_ context.Context, r *CheckRequest) TransactionState {
			asked <- r.Receipt.MsgID
			return Unknown
		})})
	r, err := p.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: uniq("t"), Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	openBroker(t, o)
	for len(asked) > 0 { // checks before the restart do not count
		<-asked
	}
	testutil.WaitFor(t, 10*time.Second, "a check-back after the restart", func() bool {
		select {
		case id := <-asked:
			return id == r.MsgID
		default:
			return false
		}
	})
}

// A broker group that left the cluster (unregistered, named by no cached
// route) is forgotten, as RocketMQ's cleanOfflineBroker does: heartbeats
// stop dialling it (each failed dial cost up to RequestTimeout, before
// the live brokers).
func TestDepartedBrokerIsForgotten(t *testing.T) {
	cl := startCluster(t, nil, nil)
	name2 := uniq("broker2")
	b2 := openBroker(t, brokerOptions(t.TempDir(), cl.ns.Addr(), name2))
	c := newClient(t, cl.ns.Addr(), func(o *Options) {
		o.HeartbeatInterval = 50 * time.Millisecond
		o.RouteRefreshInterval = 50 * time.Millisecond
	})
	newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { return Unknown })})
	addr2 := b2.Addr()
	waitFor(t, "the client to learn both brokers", func() bool {
		return slices.Contains(c.routes.brokerAddrs(false), addr2) && slices.Contains(c.routes.brokerAddrs(false), cl.b.Addr())
	})
	b2.Close() // unregisters from the name server
	waitFor(t, "the name server to forget broker 2", func() bool {
		resp, _, err := c.invokeNamesrv(ctxT(t, 5*time.Second), "GET_BROKER_CLUSTER_INFO", remoting.ReqGetBrokerClusterInfo, nil)
		var ci clusterInfo
		if err != nil || json.Unmarshal(fastjson.QuoteNumericKeys(resp.Body), &ci) != nil {
			return false
		}
		_, ok := ci.BrokerAddrTable[name2]
		return !ok
	})
	waitFor(t, "the client to forget the departed broker", func() bool {
		return !slices.Contains(c.routes.brokerAddrs(false), addr2)
	})
	if !slices.Contains(c.routes.brokerAddrs(false), cl.b.Addr()) {
		t.Fatal("the client forgot the live broker too")
	}
}
