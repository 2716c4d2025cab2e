package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// groupClient is a raw client connection that records the
// NOTIFY_CONSUMER_IDS_CHANGED requests the broker sends it.
type groupClient struct {
	*remoting.Conn
	notified chan string // consumerGroup of each notification
}

func dialGroupClient(t *testing.T, b *Broker) *groupClient {
	t.Helper()
	gc := &groupClient{notified: make(chan string, 64)}
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code == remoting.ReqNotifyConsumerIdsChanged {
			gc.notified <- req.Ext("consumerGroup")
		}
		return nil
	})
	c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	gc.Conn = c
	return gc
}

// expectNotify waits for a notification about group.
func (gc *groupClient) expectNotify(t *testing.T, group string) {
	t.Helper()
	select {
	case g := <-gc.notified:
		if g != group {
			t.Fatalf("notified about group %q, want %q", g, group)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no NOTIFY_CONSUMER_IDS_CHANGED for %s", group)
	}
}

// consumerHeartbeat is a Go-client-shaped heartbeat body: one push
// consumer per group, subscribed to topic, codeSet as strings.
func consumerHeartbeat(clientID, topic string, groups ...string) []byte {
	var cds []string
	for _, g := range groups {
		cds = append(cds, fmt.Sprintf(`{"groupName":%q,"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",`+
			`"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,"subscriptionDataSet":[{"classFilterMode":false,`+
			`"topic":%q,"subString":"a || b","tagsSet":["a","b"],"codeSet":["97","98"],"subVersion":1700000000000000000,"expressionType":"TAG"}]}`, g, topic))
	}
	body := fmt.Sprintf(`{"clientID":%q,"producerDataSet":[],"consumerDataSet":[%s]}`, clientID, strings.Join(cds, ","))
	return []byte(body)
}

func hbOK(t *testing.T, c *remoting.Conn, body []byte) {
	t.Helper()
	if resp := call(t, c, remoting.ReqHeartBeat, nil, body); resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: code %d %s", resp.Code, resp.Remark)
	}
}

func listConsumers(t *testing.T, c *remoting.Conn, group string) (int16, []string) {
	t.Helper()
	resp := call(t, c, remoting.ReqGetConsumerListByGroup, map[string]string{"consumerGroup": group}, nil)
	var body struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	if resp.Code == remoting.RespSuccess {
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			t.Fatalf("consumer list body %q: %v", resp.Body, err)
		}
	}
	return resp.Code, body.ConsumerIDList
}

func TestHeartbeatConsumerList(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	hbOK(t, c, consumerHeartbeat("10.0.0.1@1", "orders", "g1"))

	if code, ids := listConsumers(t, c, "g1"); code != remoting.RespSuccess || !slices.Equal(ids, []string{"10.0.0.1@1"}) {
		t.Fatalf("consumer list = %d %v", code, ids)
	}
	if code, _ := listConsumers(t, c, "nobody"); code != remoting.RespSystemError {
		t.Fatalf("unknown group: code %d, want SYSTEM_ERROR", code)
	}
	tc, ok := b.topics.get("%RETRY%g1")
	if !ok || tc.WriteQueueNums != 1 || tc.ReadQueueNums != 1 || tc.Perm != PermRW {
		t.Fatalf("retry topic = %+v %v", tc, ok)
	}
	info, ok := b.consumerGroupInfo("g1")
	if !ok || info.ConsumeType != ConsumePassively || info.MessageModel != Clustering || len(info.Subscriptions) != 1 {
		t.Fatalf("group info = %+v", info)
	}
	sub, ok := b.groupSubscription("g1", "orders")
	if !ok || !slices.Equal(sub.CodeSet, hashCodes{97, 98}) || !slices.Equal(sub.TagsSet, []string{"a", "b"}) {
		t.Fatalf("subscription = %+v %v", sub, ok)
	}
	if !slices.Equal(b.consumerGroups(), []string{"g1"}) {
		t.Fatalf("groups = %v", b.consumerGroups())
	}

	// A Java-shaped heartbeat: numeric codeSet, a producer group too.
	java := `{"clientID":"10.0.0.2@2","producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"consumerDataSet":[{"groupName":"g1",` +
		`"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET",` +
		`"subscriptionDataSet":[{"classFilterMode":false,"codeSet":[97],"expressionType":"TAG","subString":"a","subVersion":1,"tagsSet":["a"],"topic":"orders"}],"unitMode":false}]}`
	c2 := dial(t, b)
	hbOK(t, c2, []byte(java))
	if _, ids := listConsumers(t, c, "g1"); !slices.Equal(ids, []string{"10.0.0.1@1", "10.0.0.2@2"}) {
		t.Fatalf("consumer list = %v", ids)
	}
}

func TestNotifyOnJoinAndLeave(t *testing.T) {
	b := startBroker(t, testOptions(t))
	a := dialGroupClient(t, b)
	hbOK(t, a.Conn, consumerHeartbeat("A", "orders", "g"))
	a.expectNotify(t, "g") // RocketMQ notifies every channel of the group, the new one too

	second := dialGroupClient(t, b)
	hbOK(t, second.Conn, consumerHeartbeat("B", "orders", "g"))
	a.expectNotify(t, "g")
	second.expectNotify(t, "g")

	// A repeated heartbeat changes nothing and notifies nobody.
	hbOK(t, a.Conn, consumerHeartbeat("A", "orders", "g"))
	if _, ids := listConsumers(t, a.Conn, "g"); !slices.Equal(ids, []string{"A", "B"}) {
		t.Fatalf("consumer list = %v", ids)
	}
	select {
	case g := <-a.notified:
		t.Fatalf("unexpected notification for %s", g)
	default:
	}

	second.Close()
	a.expectNotify(t, "g")
	if _, ids := listConsumers(t, a.Conn, "g"); !slices.Equal(ids, []string{"A"}) {
		t.Fatalf("consumer list after B left = %v", ids)
	}
}

func TestHeartbeatExpiry(t *testing.T) {
	b := startBroker(t, testOptions(t))
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b.groupTable().setClock(clock, 2*time.Second)

	a := dialGroupClient(t, b)
	stale := dialGroupClient(t, b)
	hbOK(t, a.Conn, consumerHeartbeat("A", "orders", "g"))
	hbOK(t, stale.Conn, consumerHeartbeat("S", "orders", "g"))
	hbOK(t, stale.Conn, []byte(`{"clientID":"S","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`))
	if len(b.producerConns("pg")) != 1 {
		t.Fatalf("producer conns = %d", len(b.producerConns("pg")))
	}
	a.expectNotify(t, "g") // A's own join
	a.expectNotify(t, "g") // the second member's join

	advance(time.Second)
	hbOK(t, a.Conn, consumerHeartbeat("A", "orders", "g"))
	b.scanExpiredClients() // nobody is 2 s stale yet
	if _, ids := listConsumers(t, a.Conn, "g"); len(ids) != 2 {
		t.Fatalf("consumer list = %v", ids)
	}
	advance(1500 * time.Millisecond) // S: 2.5 s since its heartbeat, A: 1.5 s
	b.scanExpiredClients()
	a.expectNotify(t, "g")
	if _, ids := listConsumers(t, a.Conn, "g"); !slices.Equal(ids, []string{"A"}) {
		t.Fatalf("consumer list after expiry = %v", ids)
	}
	if n := len(b.producerConns("pg")); n != 0 {
		t.Fatalf("expired producer still listed: %d", n)
	}
	// The connection stays usable: a new heartbeat brings S back.
	hbOK(t, stale.Conn, consumerHeartbeat("S", "orders", "g"))
	a.expectNotify(t, "g")
}

func TestUnregisterClient(t *testing.T) {
	b := startBroker(t, testOptions(t))
	a := dialGroupClient(t, b)
	c := dialGroupClient(t, b)
	hbOK(t, a.Conn, consumerHeartbeat("A", "orders", "g"))
	hbOK(t, c.Conn, consumerHeartbeat("C", "orders", "g"))
	hbOK(t, c.Conn, []byte(`{"clientID":"C","producerDataSet":[{"groupName":"pg"}]}`))
	a.expectNotify(t, "g") // A's own join
	a.expectNotify(t, "g") // the second member's join

	// Another connection cannot unregister C.
	call(t, a.Conn, remoting.ReqUnregisterClient, map[string]string{"clientID": "C", "consumerGroup": "g"}, nil)
	if _, ids := listConsumers(t, a.Conn, "g"); len(ids) != 2 {
		t.Fatalf("consumer list = %v", ids)
	}
	resp := call(t, c.Conn, remoting.ReqUnregisterClient, map[string]string{"clientID": "C", "consumerGroup": "g", "producerGroup": "pg"}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
	}
	a.expectNotify(t, "g")
	if _, ids := listConsumers(t, a.Conn, "g"); !slices.Equal(ids, []string{"A"}) {
		t.Fatalf("consumer list = %v", ids)
	}
	if n := len(b.producerConns("pg")); n != 0 {
		t.Fatalf("producer conns = %d", n)
	}
}

func TestProducerConnsFollowConnections(t *testing.T) {
	b := startBroker(t, testOptions(t))
	p1, p2 := dial(t, b), dial(t, b)
	for i, c := range []*remoting.Conn{p1, p2} {
		hbOK(t, c, []byte(fmt.Sprintf(`{"clientID":"P%d","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`, i)))
	}
	if n := len(b.producerConns("pg")); n != 2 {
		t.Fatalf("producer conns = %d", n)
	}
	p1.Close()
	waitFor(t, "closed producer to leave", func() bool { return len(b.producerConns("pg")) == 1 })
	if len(b.producerConns("other")) != 0 {
		t.Fatal("unknown producer group has connections")
	}
}

func TestHeartbeatBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for name, body := range map[string]string{
		"not json":      `{"clientID":`,
		"no client id":  `{"consumerDataSet":[{"groupName":"g"}]}`,
		"no group":      `{"clientID":"X","consumerDataSet":[{"groupName":""}]}`,
		"bad group":     `{"clientID":"X","consumerDataSet":[{"groupName":"a b/c"}]}`,
		"bad code set":  `{"clientID":"X","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"t","codeSet":["x"]}]}]}`,
		"wrong shape":   `{"clientID":"X","consumerDataSet":{"groupName":"g"}}`,
		"empty body":    ``,
		"producer name": `{"clientID":"X","producerDataSet":[{}]}`,
	} {
		if resp := call(t, c, remoting.ReqHeartBeat, nil, []byte(body)); resp.Code != remoting.RespSystemError {
			t.Errorf("%s: code %d, want SYSTEM_ERROR", name, resp.Code)
		}
	}
	if len(b.consumerGroups()) != 0 {
		t.Fatalf("a refused heartbeat registered groups %v", b.consumerGroups())
	}
	hbOK(t, c, consumerHeartbeat("X", "orders", "g"))
	if _, ids := listConsumers(t, c, "g"); !slices.Equal(ids, []string{"X"}) {
		t.Fatalf("consumer list = %v", ids)
	}
}

// A consumer group whose name is too long for its retry topic (the clients
// allow 255 characters, a topic 127) is still a member: its heartbeat is
// accepted, with the other groups in it, and only its send-backs are
// refused.
func TestHeartbeatLongGroupNameStillAMember(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	long := strings.Repeat("g", 130)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@1", "lg", long, "short"))
	for _, g := range []string{long, "short"} {
		if code, ids := listConsumers(t, c, g); code != remoting.RespSuccess || len(ids) != 1 {
			t.Fatalf("group of %d characters: consumer list code %d %v, want the member", len(g), code, ids)
		}
	}
	if _, ok := b.topics.get(RetryTopic("short")); !ok {
		t.Fatal("the short group got no retry topic")
	}
	// Its send-backs cannot be stored; an answer would lose the message
	// (the Go client acknowledges it whatever the code), a closed
	// connection makes the client consume it again.
	offs := appendTestMsgs(t, b, "lg", 0, 1)
	r, err := c.Invoke(t.Context(), remoting.NewRequest(remoting.ReqConsumerSendMsgBack, sendBackExt(offs[0], long, "lg", 0, -1)))
	if err == nil {
		t.Fatalf("send-back for a group with no retry topic answered %d %q, want the connection closed", r.Code, r.Remark)
	}
}

// A group too long for %RETRY%<group> but not for %DLQ%<group> (121 or
// 122 characters) still has a dead-letter queue: a send-back that goes
// there (the official Go client's orderly consumer sends delay level -1
// after its retries; a message out of retries) is stored. Closing the
// connection instead would make that client retry it forever, its queue
// blocked, and cut every other request on the connection each time.
func TestSendBackLongGroupStillDeadLetters(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	long := strings.Repeat("g", 122)
	offs := appendTestMsgs(t, b, "lg", 0, 2)
	for i, ext := range []map[string]string{
		sendBackExt(offs[0], long, "lg", -1, -1), // asks for the DLQ
		sendBackExt(offs[1], long, "lg", 0, 0),   // out of retries
	} {
		r, err := c.Invoke(t.Context(), remoting.NewRequest(remoting.ReqConsumerSendMsgBack, ext))
		if err != nil {
			t.Fatalf("send-back %d to the dead-letter queue: %v", i, err)
		}
		if r.Code != remoting.RespSuccess {
			t.Fatalf("send-back %d to the dead-letter queue: %d %q", i, r.Code, r.Remark)
		}
	}
	waitQueueMsgs(t, b, DLQTopic(long), 0, 2)
}

// Two consumers with one client id: two processes on one host whose
// InstanceName is the same, as RocketMQ's Java client keeps DEFAULT for
// broadcasting consumers (ClientIP@DEFAULT). The broker keeps them apart
// by connection, as RocketMQ's ConsumerGroupInfo (by channel): the
// connection list shows both, the consumer list names the id once (a
// clustering allocation counts members by id), and the one that leaves
// takes only itself out of the group, not the other, which stays online
// with its subscription.
func TestTwoConsumersWithOneClientID(t *testing.T) {
	b := startBroker(t, testOptions(t))
	hb := bytes.Replace(consumerHeartbeat("127.0.0.1@DEFAULT", "orders", "bg"), []byte("CLUSTERING"), []byte("BROADCASTING"), 1)
	first, second := dial(t, b), dial(t, b)
	hbOK(t, second, hb)
	hbOK(t, first, hb) // the last heartbeat
	members := func() []string {
		info, ok := b.consumerGroupInfo("bg")
		if !ok {
			return nil
		}
		var addrs []string
		for _, m := range info.Clients {
			addrs = append(addrs, m.ClientAddr)
		}
		slices.Sort(addrs)
		return addrs
	}
	both := []string{first.LocalAddr().String(), second.LocalAddr().String()}
	slices.Sort(both)
	if got := members(); !slices.Equal(got, both) {
		t.Fatalf("members at %v, want both connections %v", got, both)
	}
	if _, ids := listConsumers(t, second, "bg"); !slices.Equal(ids, []string{"127.0.0.1@DEFAULT"}) {
		t.Fatalf("consumer list = %v, want the id once", ids)
	}
	first.Close()
	waitFor(t, "the closed connection to leave the group", func() bool { return len(members()) != 2 })
	if got := members(); !slices.Equal(got, []string{second.LocalAddr().String()}) {
		t.Fatalf("after the first consumer left, members at %v, want the second (%s) still online", got, second.LocalAddr())
	}
	if _, ok := b.groupSubscription("bg", "orders"); !ok {
		t.Fatal("the remaining consumer's subscription left with the other")
	}
	// UNREGISTER_CLIENT names the id: it takes out the asking connection only.
	third := dial(t, b)
	hbOK(t, third, hb)
	if resp := call(t, third, remoting.ReqUnregisterClient, map[string]string{"clientID": "127.0.0.1@DEFAULT", "consumerGroup": "bg"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: %d %s", resp.Code, resp.Remark)
	}
	if got := members(); !slices.Equal(got, []string{second.LocalAddr().String()}) {
		t.Fatalf("after the third consumer unregistered, members at %v, want the second (%s)", got, second.LocalAddr())
	}
}
