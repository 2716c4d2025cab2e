package namesrv

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// A RocketMQ broker that creates a topic (mqadmin updateTopic, the Go
// client's admin CreateTopic: AdminBrokerProcessor.updateAndCreateTopic)
// re-registers at once with a table holding that one topic
// (BrokerController.registerIncrementBrokerData); its periodic full
// registration follows up to 30 s later. The broker's other topics must
// stay routed meanwhile, as RocketMQ's name server keeps them.
func TestIncrementalRegistrationKeepsOtherTopics(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}, "Payments": {2, 2}}})

	// The increment: only the new topic, as a Java broker of 4.9 sends it.
	table := map[string]TopicConfig{"Refunds": {TopicName: "Refunds", ReadQueueNums: 8, WriteQueueNums: 8, Perm: PermRW}}
	body, err := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: table, DataVersion: DataVersion{Timestamp: time.Now().UnixMilli(), Counter: 2}}, FilterServerList: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := call(t, c, remoting.ReqRegisterBroker, registerExt(brokerReg{name: "broker-a", addr: addrA}, body), body); resp.Code != remoting.RespSuccess {
		t.Fatalf("incremental REGISTER_BROKER: code %d %q", resp.Code, resp.Remark)
	}
	for _, topic := range []string{"Refunds", "Orders", "Payments"} {
		if _, ok := route(t, c, topic); !ok {
			t.Errorf("%s: TOPIC_NOT_EXIST after the broker registered a new topic", topic)
		}
	}
}

// gateClock is a clock whose next reading, once armed, waits for release.
type gateClock struct {
	armed   chan struct{} // holds a token while armed
	blocked chan struct{} // closed when a reading waits
	release chan struct{}
}

func newGateClock() *gateClock {
	return &gateClock{armed: make(chan struct{}, 1), blocked: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateClock) Now() time.Time {
	select {
	case <-g.armed:
		close(g.blocked)
		<-g.release
	default:
	}
	return time.Now()
}

// A registration that the name server gets to only after the broker gave
// up on its connection, and registered again on a new one, must not take
// the broker down when that old connection's close is handled: the broker
// is alive, registered on its new connection.
func TestLateRegistrationOnAbandonedConnKeepsBroker(t *testing.T) {
	clock := newGateClock()
	// An hour's expiry: the sweeper (every 10 s) does not read the clock
	// during the test.
	s := startServer(t, Options{BrokerExpiry: time.Hour, DisableAutoCreateTopic: true, now: clock.Now})
	client := dial(t, s)
	reg := brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}, full: true}

	old, err := remoting.Dial(t.Context(), s.Addr(), remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	register(t, old, reg)

	// The next registration on the old connection is held inside the name
	// server (a slow handler); the broker times out and closes it.
	body, _ := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]TopicConfig{"Orders": {TopicName: "Orders", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW}}}})
	clock.armed <- struct{}{}
	late := remoting.NewRequest(remoting.ReqRegisterBroker, registerExt(reg, body))
	late.Body = body
	if err := old.InvokeOneway(late); err != nil {
		t.Fatal(err)
	}
	<-clock.blocked
	var serverSide *remoting.Conn
	for _, c := range s.srv.Conns() {
		if c.RemoteAddr().String() == old.LocalAddr().String() {
			serverSide = c
		}
	}
	if serverSide == nil {
		t.Fatal("the old connection is not among the server's")
	}
	old.Close()
	waitFor(t, "the name server to see the old connection closed", func() bool { return serverSide.Err() != nil })

	// The broker registers again on a new connection.
	register(t, dial(t, s), reg)
	if _, ok := route(t, client, "Orders"); !ok {
		t.Fatal("no route after registering on the new connection")
	}

	// The held registration finishes; the old connection's close is handled.
	close(clock.release)
	select {
	case <-serverSide.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection's close was not handled")
	}
	if _, ok := route(t, client, "Orders"); !ok {
		t.Fatal("TOPIC_NOT_EXIST: the live broker was dropped with the connection it had abandoned")
	}
}

// A broker creates an unknown topic on its first send with its own default
// queue count, the one it registers TBW102 with, and refuses a send to a
// queue beyond it ("queueId[5] is illegal"). The route the name server
// makes up for an unknown topic must not offer more queues than that, as
// RocketMQ's clients take min(defaultTopicQueueNums, TBW102's writeQueueNums).
func TestAutoCreateRouteRespectsBrokerQueueCount(t *testing.T) {
	s := startServer(t, Options{DefaultQueueNums: 8})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{AutoCreateTopicKey: {4, 4}}, full: true})
	r, ok := route(t, c, "NewTopic")
	if !ok || len(r.queues) != 1 {
		t.Fatalf("route of an unknown topic: %+v (found %v)", r.queues, ok)
	}
	if q := r.queues[0]; q.WriteQueueNums > 4 || q.ReadQueueNums > 4 {
		t.Errorf("route offers %d/%d queues on broker-a, which creates the topic with 4", q.ReadQueueNums, q.WriteQueueNums)
	}
}
