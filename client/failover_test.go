package client

import (
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/namesrv"
)

// createTopicOn creates topic with n queues on the broker at addr.
func createTopicOn(t testing.TB, addr, topic string, n int) {
	t.Helper()
	ac, err := admin.Dial(ctxT(t, 5*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.CreateTopic(ctxT(t, 5*time.Second), topic, n); err != nil {
		t.Fatal(err)
	}
}

// sendAll sends n messages and fails the test on any error; it returns
// how many went to each broker.
func sendAll(t testing.TB, p *Producer, topic string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		got[res.BrokerName]++
	}
	return got
}

// Two brokers serve a topic; one stops cleanly (unregisters) and comes
// back: no send fails meanwhile (a send that picked the stopped broker is
// retried on the other, retryTimesWhenSendFailed), the route refresh takes
// the stopped broker out, and sends reach it again once it is back.
func TestProducerFailsOverAndBack(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	nameA, nameB := uniq("broker-a"), uniq("broker-b")
	dirA := t.TempDir()
	oa := brokerOptions(dirA, ns.Addr(), nameA)
	a := openBroker(t, oa)
	openBroker(t, brokerOptions(t.TempDir(), ns.Addr(), nameB))
	topic := uniq("t")
	createTopicOn(t, a.Addr(), topic, 4)
	c := newClient(t, ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 100 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	// broker-b gets the topic too.
	bAddr := ""
	waitFor(t, "both brokers in the cluster info", func() bool {
		ci := clusterOf(t, c)
		bAddr = ci.BrokerAddrTable[nameB].BrokerAddrs[masterID]
		return bAddr != "" && ci.BrokerAddrTable[nameA].BrokerAddrs[masterID] != ""
	})
	createTopicOn(t, bAddr, topic, 2)
	waitFor(t, "the route to list both brokers", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 6
	})
	if got := sendAll(t, p, topic, 12); got[nameA] != 8 || got[nameB] != 4 {
		t.Fatalf("sends over both brokers: %v, want 8 to %s and 4 to %s (round robin over 4+2 queues)", got, nameA, nameB)
	}

	addrA := a.Addr()
	a.Close()
	// Straight away: the cached route still lists broker-a.
	if got := sendAll(t, p, topic, 12); got[nameB] != 12 {
		t.Fatalf("sends with broker-a stopped: %v", got)
	}
	waitFor(t, "the route refresh to drop broker-a", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})

	oa.ListenAddr = addrA
	openBroker(t, oa)
	waitFor(t, "sends to reach broker-a again", func() bool {
		return sendAll(t, p, topic, 6)[nameA] > 0
	})
}

func clusterOf(t testing.TB, c *Client) clusterInfo {
	t.Helper()
	resp, _, err := c.invokeNamesrv(ctxT(t, 5*time.Second), "GET_BROKER_CLUSTER_INFO", remoting.ReqGetBrokerClusterInfo, nil)
	var ci clusterInfo
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(resp.Body, &ci); err != nil {
		t.Fatal(err)
	}
	return ci
}

// A broker killed (its port refuses, its name-server connection closes
// without UNREGISTER_BROKER) leaves the routes at once; a producer whose
// cached route still names it loses no send.
func TestProducerSurvivesAKilledBroker(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic := uniq("t")
	createTopicOn(t, cl.b.Addr(), topic, 4)

	// The "killed" broker: registered from a raw connection, at an
	// address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()
	nc, err := remoting.Dial(ctxT(t, 5*time.Second), cl.ns.Addr(), remoting.DialOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := json.Marshal(namesrv.RegisterBrokerBody{TopicConfigSerializeWrapper: namesrv.TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]namesrv.TopicConfig{topic: {TopicName: topic, ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		DataVersion:      namesrv.DataVersion{Timestamp: time.Now().UnixMilli(), Counter: 1}}})
	req := remoting.NewRequest(remoting.ReqRegisterBroker, map[string]string{
		"brokerName": "dead-broker", "brokerAddr": deadAddr, "clusterName": "DefaultCluster", "brokerId": "0"})
	req.Body = body
	if resp, err := nc.Invoke(ctxT(t, 5*time.Second), req); err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("register the dead broker: %v %v", resp, err)
	}

	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 100 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	waitFor(t, "the route to list both brokers", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 8
	})
	if got := sendAll(t, p, topic, 16); got[cl.name] != 16 {
		t.Fatalf("sends: %v", got)
	}
	nc.Close() // the process dies: its connection closes
	waitFor(t, "the route refresh to drop the killed broker", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 4
	})
}

// A topic made read-only on one broker (UPDATE_AND_CREATE_TOPIC with
// perm=PERM_READ, as mqadmin updateTopic -p 4 sends it) stops getting
// sends once the producer's route refresh sees the broker's new
// registration; consumers still read its queues.
func TestReadOnlyBrokerGetsNoSends(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	nameA, nameB := uniq("broker-a"), uniq("broker-b")
	a := openBroker(t, brokerOptions(t.TempDir(), ns.Addr(), nameA))
	b := openBroker(t, brokerOptions(t.TempDir(), ns.Addr(), nameB))
	topic := uniq("t")
	createTopicOn(t, a.Addr(), topic, 4)
	createTopicOn(t, b.Addr(), topic, 4)
	c := newClient(t, ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 100 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	waitFor(t, "the route to list both brokers", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 8
	})
	conn, err := remoting.Dial(ctxT(t, 5*time.Second), a.Addr(), remoting.DialOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := conn.Invoke(ctxT(t, 5*time.Second), remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4", "perm": "4",
		"topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("make %s read-only on %s: %v %v", topic, nameA, resp, err)
	}
	waitFor(t, "the route refresh to see broker-a read-only", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 4 && qs[0].BrokerName == nameB
	})
	if got := sendAll(t, p, topic, 8); got[nameB] != 8 {
		t.Fatalf("sends: %v, want all to %s", got, nameB)
	}
	if qs, err := c.SubscribeQueues(ctxT(t, 5*time.Second), topic); err != nil || len(qs) != 8 {
		t.Fatalf("SubscribeQueues = %v, %v; want both brokers' 8 queues", qs, err)
	}
}

// A topic with an ORDER_TOPIC_CONFIG entry ("brokerName:queueNums" pairs,
// mqadmin updateOrderConf) is sent only to the queues it lists: RocketMQ's
// clients build the publish queues from the route's orderTopicConf when it
// is set (MQClientInstance.topicRouteData2TopicPublishInfo, the Go
// client's routeData2PublishInfo), so that a globally ordered topic has
// one queue for producers although its brokers serve more.
func TestOrderTopicConfDecidesPublishQueues(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic := uniq("t")
	createTopicOn(t, cl.b.Addr(), topic, 4)
	c := newClient(t, cl.ns.Addr(), nil)
	resp, _, err := c.invokeNamesrv(ctxT(t, 5*time.Second), "PUT_KV_CONFIG", remoting.ReqPutKVConfig,
		map[string]string{"namespace": namesrv.NamespaceOrderTopicConfig, "key": topic, "value": cl.name + ":1"})
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("PUT_KV_CONFIG: %v %v", resp, err)
	}
	waitFor(t, "the broker to register the topic", func() bool {
		r, err := c.fetchRoute(ctxT(t, 5*time.Second), topic)
		return err == nil && len(r.readQueues) == 4
	})
	qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
	if err != nil || len(qs) != 1 || qs[0] != (MessageQueue{Topic: topic, BrokerName: cl.name, QueueID: 0}) {
		t.Fatalf("publish queues %v, %v; want only %s#0 (orderTopicConf %s:1)", qs, err, cl.name, cl.name)
	}
	p := newProducer(t, c, ProducerOptions{})
	for i := range 4 {
		res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte(strconv.Itoa(i))})
		if err != nil || res.QueueID != 0 {
			t.Fatalf("send %d: queue %d, %v; want queue 0", i, res.QueueID, err)
		}
	}
	// Consumers still read every readable queue.
	if rq, err := c.SubscribeQueues(ctxT(t, 5*time.Second), topic); err != nil || len(rq) != 4 {
		t.Fatalf("SubscribeQueues = %v, %v", rq, err)
	}
}

// mqadmin wipeWritePerm on the name server drains producers off a broker
// before it is stopped, although the broker keeps re-registering its
// unchanged table; addWritePerm brings them back.
func TestWipeWritePermDrainsProducers(t *testing.T) {
	ns := startNamesrv(t, "127.0.0.1:0")
	nameA, nameB := uniq("broker-a"), uniq("broker-b")
	oa := brokerOptions(t.TempDir(), ns.Addr(), nameA)
	oa.RegisterInterval = 20 * time.Millisecond
	a := openBroker(t, oa)
	b := openBroker(t, brokerOptions(t.TempDir(), ns.Addr(), nameB))
	topic := uniq("t")
	createTopicOn(t, a.Addr(), topic, 4)
	createTopicOn(t, b.Addr(), topic, 4)
	c := newClient(t, ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 20 * time.Millisecond })
	p := newProducer(t, c, ProducerOptions{})
	waitFor(t, "the route to list both brokers", func() bool {
		qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 8
	})
	writable := func(want int) func() bool {
		return func() bool {
			qs, err := c.publishQueues(ctxT(t, 5*time.Second), topic)
			return err == nil && len(qs) == want
		}
	}
	resp, _, err := c.invokeNamesrv(ctxT(t, 5*time.Second), "WIPE_WRITE_PERM_OF_BROKER", remoting.ReqWipeWritePermOfBroker,
		map[string]string{"brokerName": nameA})
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("WIPE_WRITE_PERM_OF_BROKER: %v %v", resp, err)
	}
	waitFor(t, "the producer to see broker-a wiped", writable(4))
	// broker-a re-registers every 20 ms meanwhile.
	if got := sendAll(t, p, topic, 8); got[nameB] != 8 {
		t.Fatalf("sends after the wipe: %v, want all to %s", got, nameB)
	}
	resp, _, err = c.invokeNamesrv(ctxT(t, 5*time.Second), "ADD_WRITE_PERM_OF_BROKER", remoting.ReqAddWritePermOfBroker,
		map[string]string{"brokerName": nameA})
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("ADD_WRITE_PERM_OF_BROKER: %v %v", resp, err)
	}
	waitFor(t, "the producer to see broker-a writable again", writable(8))
}

// A cached route with no writable queue (the topic's only broker had its
// write permission wiped) is asked for again by the next send, as
// RocketMQ's producers do (tryToFindTopicPublishInfo refetches a route
// that is not ok()): once the permission is back, sends go through at
// once rather than failing until the next route refresh.
func TestSendRefetchesRouteWithoutWritableQueues(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic := uniq("t")
	createTopicOn(t, cl.b.Addr(), topic, 4)
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RouteRefreshInterval = time.Hour })
	p := newProducer(t, c, ProducerOptions{})
	writable := func(want int) func() bool {
		return func() bool {
			r, err := c.fetchRoute(ctxT(t, 5*time.Second), topic)
			return err == nil && len(r.writeQueues) == want
		}
	}
	waitFor(t, "the broker to register the topic", writable(4))
	perm := func(op string, code int16) {
		t.Helper()
		resp, _, err := c.invokeNamesrv(ctxT(t, 5*time.Second), op, code, map[string]string{"brokerName": cl.name})
		if err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("%s: %v %v", op, resp, err)
		}
	}
	waitFor(t, "the cached route to have no writable queue", func() bool {
		// again while a registration of the new topic undoes it
		perm("WIPE_WRITE_PERM_OF_BROKER", remoting.ReqWipeWritePermOfBroker)
		return writable(0)()
	})
	perm("ADD_WRITE_PERM_OF_BROKER", remoting.ReqAddWritePermOfBroker)
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("back")})
	if err != nil {
		t.Fatalf("Send after the write permission is back = %v, want it stored without waiting for the route refresh", err)
	}
	if got := cl.waitStored(t, topic, 1); got[0].MsgID != res.MsgID {
		t.Fatalf("stored %v, want %s", got, res.MsgID)
	}
}
