package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/namesrv"
)

func TestRouteQueues(t *testing.T) {
	r := newTopicRoute("t", topicRouteData{
		QueueDatas: []queueData{
			{BrokerName: "b", ReadQueueNums: 2, WriteQueueNums: 1, Perm: permRead | permWrite},
			{BrokerName: "a", ReadQueueNums: 1, WriteQueueNums: 2, Perm: permRead | permWrite},
			{BrokerName: "ro", ReadQueueNums: 1, WriteQueueNums: 1, Perm: permRead},
			{BrokerName: "slave-only", ReadQueueNums: 1, WriteQueueNums: 1, Perm: permRead | permWrite},
		},
		BrokerDatas: []brokerData{
			{BrokerName: "a", BrokerAddrs: map[int64]string{0: "a:1"}},
			{BrokerName: "b", BrokerAddrs: map[int64]string{0: "b:1", 1: "b:2"}},
			{BrokerName: "ro", BrokerAddrs: map[int64]string{0: "ro:1"}},
			{BrokerName: "slave-only", BrokerAddrs: map[int64]string{1: "s:1"}},
		},
	})
	want := []MessageQueue{{"t", "a", 0}, {"t", "a", 1}, {"t", "b", 0}}
	if len(r.writeQueues) != len(want) {
		t.Fatalf("write queues %v, want %v", r.writeQueues, want)
	}
	for i := range want {
		if r.writeQueues[i] != want[i] {
			t.Fatalf("write queues %v, want %v", r.writeQueues, want)
		}
	}
	if len(r.readQueues) != 4 { // a#0, b#0, b#1, ro#0
		t.Fatalf("read queues %v", r.readQueues)
	}
}

func TestRouteFromNameServer(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	ctx := ctxT(t, 10*time.Second)
	qs, err := c.publishQueues(ctx, uniq("topic"))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 4 || qs[0].BrokerName != cl.name {
		t.Fatalf("queues %v", qs)
	}
	addr, err := c.brokerAddr(ctx, qs[0].BrokerName, "")
	if err != nil || addr != cl.b.Addr() {
		t.Fatalf("broker address %q, %v; broker at %s", addr, err, cl.b.Addr())
	}
	if _, err := c.brokerAddr(ctx, "no-such-broker", ""); !errors.Is(err, ErrBrokerNotFound) {
		t.Fatalf("unknown broker: %v", err)
	}
}

// A topic the name server does not route yet borrows TBW102's brokers; the
// broker creates it on the first send.
func TestSendToNewTopicWithoutNameServerAutoCreate(t *testing.T) {
	cl := startCluster(t, func(o *namesrv.Options) { o.DisableAutoCreateTopic = true }, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	ctx := ctxT(t, 10*time.Second)
	topic := uniq("fresh")
	if _, err := c.route(ctx, topic); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("route of an unknown topic: %v", err)
	}
	p := newProducer(t, c, ProducerOptions{})
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("first")})
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.waitStored(t, topic, 1); got[0].MsgID != res.MsgID {
		t.Fatalf("stored %v", got)
	}
}

// SubscribeQueues lists a topic's readable queues; a topic the name
// server does not know (auto-creation off) is ErrTopicNotFound.
func TestSubscribeQueues(t *testing.T) {
	cl := startCluster(t, func(o *namesrv.Options) { o.DisableAutoCreateTopic = true }, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	topic := uniq("subq")
	if _, err := c.SubscribeQueues(ctxT(t, 10*time.Second), topic); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("unknown topic: %v, want ErrTopicNotFound", err)
	}
	createTopic(t, newProducer(t, c, ProducerOptions{}), topic) // the broker creates it on the first send
	var mqs []MessageQueue
	waitFor(t, "the topic's route on the name server", func() bool {
		var err error
		mqs, err = c.SubscribeQueues(ctxT(t, 10*time.Second), topic)
		return err == nil
	})
	if len(mqs) != 4 {
		t.Fatalf("%d queues %v, want the topic's 4", len(mqs), mqs)
	}
	for i, mq := range mqs {
		if mq.Topic != topic || mq.QueueID != int32(i) {
			t.Errorf("queue %d = %+v", i, mq)
		}
	}
}

// A route is expanded into one MessageQueue per queue: one with queue
// counts past maxRouteQueueNums (from a broken or hostile name server) is
// refused rather than allocated (2^31-1 would exhaust memory).
func TestRouteWithHugeQueueCountsIsRefused(t *testing.T) {
	mux := remoting.NewMux()
	var addr string
	mux.HandleFunc(remoting.ReqGetRouteInfoByTopic, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(fmt.Sprintf(`{"queueDatas":[{"brokerName":"b","readQueueNums":500000,"writeQueueNums":500000,"perm":6}],`+
			`"brokerDatas":[{"cluster":"c","brokerName":"b","brokerAddrs":{"0":%q}}]}`, addr))
		return resp
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Handler: mux, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addr = srv.Addr().String()
	c := newClient(t, addr, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	mqs, err := c.SubscribeQueues(ctxT(t, 10*time.Second), "huge")
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("route with 500,000 queues per broker accepted: %d queues, %d MiB allocated",
			len(mqs), (after.TotalAlloc-before.TotalAlloc)>>20)
	}
}
