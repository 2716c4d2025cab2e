package namesrv

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

const (
	addrA = "127.0.0.1:10911"
	addrB = "127.0.0.1:10921"
)

func TestRegisterRouteExpire(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{BrokerExpiry: 10 * time.Second, DisableAutoCreateTopic: true, now: clock.Now})
	c := dial(t, s)
	reg := brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {3, 5}}}
	register(t, c, reg)

	r, ok := route(t, c, "Orders")
	if !ok {
		t.Fatal("no route after registration")
	}
	want := []clientQueue{{BrokerName: "broker-a", ReadQueueNums: 3, WriteQueueNums: 5, Perm: PermRW}}
	if !reflect.DeepEqual(r.queues, want) {
		t.Errorf("queues %+v, want %+v", r.queues, want)
	}
	if got := r.brokers["broker-a"][MasterID]; got != addrA {
		t.Errorf("master address %q, want %q (brokers %v)", got, addrA, r.brokers)
	}

	// A heartbeat (re-registration) within the expiry keeps it routed.
	clock.Advance(8 * time.Second)
	register(t, c, reg)
	clock.Advance(8 * time.Second)
	if _, ok := route(t, c, "Orders"); !ok {
		t.Fatal("route gone although the broker re-registered 8 s ago")
	}

	clock.Advance(3 * time.Second)
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route still there 11 s after the last registration (expiry 10 s)")
	}
	if gone := s.reg.sweep(); len(gone) != 1 || gone[0].addr != addrA {
		t.Errorf("sweep removed %v, want broker-a", gone)
	}
	if len(s.reg.topicList("")) != 0 {
		t.Errorf("topics left after the only broker expired: %v", s.reg.topicList(""))
	}
}

func TestExpirySweeper(t *testing.T) {
	s := startServer(t, Options{BrokerExpiry: 100 * time.Millisecond})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	waitFor(t, "the sweeper to drop the expired broker", func() bool {
		s.reg.mu.RLock()
		defer s.reg.mu.RUnlock()
		return len(s.reg.brokers) == 0 && len(s.reg.topics) == 0
	})
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route for an expired broker")
	}
}

func TestAutoCreateRoute(t *testing.T) {
	s := startServer(t, Options{DefaultQueueNums: 6})
	c := dial(t, s)
	if _, ok := route(t, c, "NewTopic"); ok {
		t.Fatal("auto-created route with no broker registered")
	}
	tbw := [2]int{8, 8}
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{AutoCreateTopicKey: tbw}})
	register(t, c, brokerReg{name: "broker-b", addr: "127.0.0.1:20911", topics: map[string][2]int{"Other": {1, 1}, AutoCreateTopicKey: tbw}})
	register(t, c, brokerReg{name: "broker-c", addr: "127.0.0.1:30912", id: 1, topics: map[string][2]int{AutoCreateTopicKey: tbw}}) // a slave alone gets no queues
	// A broker that does not create topics (it registers no TBW102) gets
	// no route to an unknown topic: it would refuse its sends and pulls.
	register(t, c, brokerReg{name: "broker-d", addr: "127.0.0.1:40911", topics: map[string][2]int{"Mine": {1, 1}}})

	r, ok := route(t, c, "NewTopic")
	if !ok {
		t.Fatal("no route for an unknown topic with auto-create on")
	}
	want := []clientQueue{
		{BrokerName: "broker-a", ReadQueueNums: 6, WriteQueueNums: 6, Perm: PermRW},
		{BrokerName: "broker-b", ReadQueueNums: 6, WriteQueueNums: 6, Perm: PermRW},
	}
	if !reflect.DeepEqual(r.queues, want) {
		t.Errorf("queues %+v, want %+v", r.queues, want)
	}
	if r.brokers["broker-a"][MasterID] != addrA || r.brokers["broker-b"][MasterID] != "127.0.0.1:20911" || len(r.brokers) != 2 {
		t.Errorf("brokers %v", r.brokers)
	}
	// A topic a broker registered is routed as registered, not auto-created.
	if r, _ := route(t, c, "Other"); len(r.queues) != 1 || r.queues[0].WriteQueueNums != 1 {
		t.Errorf("registered topic routed as %+v", r.queues)
	}
	// An illegal topic name is never auto-created, nor a group's retry or
	// dead-letter topic (the broker registers those with one queue).
	for _, topic := range []string{"bad topic!", "%RETRY%group", "%DLQ%group"} {
		if _, ok := route(t, c, topic); ok {
			t.Errorf("auto-created route for %q", topic)
		}
	}
}

func TestTopicNotExistWithoutAutoCreate(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	resp := call(t, c, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": "Nope"}, nil)
	if resp.Code != remoting.RespTopicNotExist {
		t.Fatalf("code %d %q, want TOPIC_NOT_EXIST", resp.Code, resp.Remark)
	}
}

// A route request without its topic field is a malformed request, which
// RocketMQ's header decoding answers SYSTEM_ERROR naming the field; it was
// answered TOPIC_NOT_EXIST, as if a topic "" had been looked up.
func TestRouteRequestWithoutTopicIsMalformed(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	for _, ext := range []map[string]string{nil, {"topic": ""}} {
		if resp := call(t, c, remoting.ReqGetRouteInfoByTopic, ext, nil); resp.Code != remoting.RespSystemError || !strings.Contains(resp.Remark, "topic") {
			t.Errorf("route request with ext %v: code %d %q, want SYSTEM_ERROR naming the topic field", ext, resp.Code, resp.Remark)
		}
	}
}

func TestClusterInfoAndSlaves(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	resp := register(t, c, brokerReg{name: "broker-a", addr: "127.0.0.1:10921", id: 1, topics: map[string][2]int{"Ignored": {1, 1}}})
	if resp.Ext("masterAddr") != addrA {
		t.Errorf("slave's registration answered masterAddr %q, want %q", resp.Ext("masterAddr"), addrA)
	}
	register(t, c, brokerReg{cluster: "Other", name: "broker-b", addr: "127.0.0.1:20911"})

	resp = call(t, c, remoting.ReqGetBrokerClusterInfo, nil, nil)
	var ci ClusterInfo
	if err := json.Unmarshal(resp.Body, &ci); err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("cluster info: code %d, %v", resp.Code, err)
	}
	want := ClusterInfo{
		BrokerAddrTable: map[string]BrokerData{
			"broker-a": {Cluster: "DefaultCluster", BrokerName: "broker-a", BrokerAddrs: map[int64]string{0: addrA, 1: "127.0.0.1:10921"}},
			"broker-b": {Cluster: "Other", BrokerName: "broker-b", BrokerAddrs: map[int64]string{0: "127.0.0.1:20911"}},
		},
		ClusterAddrTable: map[string][]string{"DefaultCluster": {"broker-a"}, "Other": {"broker-b"}},
	}
	if !reflect.DeepEqual(ci, want) {
		t.Errorf("cluster info\n got %+v\nwant %+v", ci, want)
	}
	// The route lists both members; a slave's table does not change queues.
	r, _ := route(t, c, "Orders")
	if len(r.brokers["broker-a"]) != 2 || len(r.queues) != 1 {
		t.Errorf("route %+v", r)
	}
	if slices.Contains(s.reg.topicList(""), "Ignored") {
		t.Error("a slave's topic table was routed")
	}
}

func TestTopicListAndDelete(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"B": {1, 1}, "A": {1, 1}}})
	register(t, c, brokerReg{cluster: "Other", name: "broker-b", addr: "127.0.0.1:20911", topics: map[string][2]int{"C": {1, 1}, "A": {2, 2}}})

	topics := func(code int16, ext map[string]string) []string {
		resp := call(t, c, code, ext, nil)
		var tl TopicList
		if err := json.Unmarshal(resp.Body, &tl); err != nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("topic list: code %d %q, %v", resp.Code, resp.Remark, err)
		}
		return tl.TopicList
	}
	if got := topics(remoting.ReqGetAllTopicListFromNameServer, nil); !reflect.DeepEqual(got, []string{"A", "B", "C"}) {
		t.Errorf("all topics %v", got)
	}
	if got := topics(remoting.ReqGetTopicsByCluster, map[string]string{"cluster": "Other"}); !reflect.DeepEqual(got, []string{"A", "C"}) {
		t.Errorf("topics of cluster Other %v", got)
	}

	// Delete in one cluster, then everywhere.
	if resp := call(t, c, remoting.ReqDeleteTopicInNameSrv, map[string]string{"topic": "A", "clusterName": "Other"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("delete: code %d %q", resp.Code, resp.Remark)
	}
	if r, _ := route(t, c, "A"); len(r.queues) != 1 || r.queues[0].BrokerName != "broker-a" {
		t.Errorf("after deleting A in cluster Other: %+v", r.queues)
	}
	call(t, c, remoting.ReqDeleteTopicInNameSrv, map[string]string{"topic": "A"}, nil)
	if _, ok := route(t, c, "A"); ok {
		t.Error("A still routed after delete")
	}

	// A registration of the whole table (a halfback broker's) replaces the
	// broker's topics: B left its table.
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"D": {1, 1}}, full: true})
	if got := topics(remoting.ReqGetAllTopicListFromNameServer, nil); !reflect.DeepEqual(got, []string{"C", "D"}) {
		t.Errorf("after re-registration without B: %v", got)
	}
}

func TestUnregisterAndConnectionClose(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	// A wrong id does not unregister.
	call(t, c, remoting.ReqUnregisterBroker, map[string]string{"brokerName": "broker-a", "brokerAddr": addrA, "brokerId": "1", "clusterName": "DefaultCluster"}, nil)
	if _, ok := route(t, c, "Orders"); !ok {
		t.Fatal("unregistering another id removed the master")
	}
	resp := call(t, c, remoting.ReqUnregisterBroker, map[string]string{"brokerName": "broker-a", "brokerAddr": addrA, "brokerId": "0", "clusterName": "DefaultCluster"}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("unregister: code %d %q", resp.Code, resp.Remark)
	}
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route after unregister")
	}

	// A broker whose registering connection closes is dropped at once.
	c2 := dial(t, s)
	register(t, c2, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	if _, ok := route(t, c, "Orders"); !ok {
		t.Fatal("no route after re-registration")
	}
	c2.Close()
	waitFor(t, "the broker to go with its connection", func() bool {
		_, ok := route(t, c, "Orders")
		return !ok
	})
}

func TestBadRegistrations(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	good := brokerReg{name: "broker-a", addr: addrA}
	body := []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":1,"writeQueueNums":1,"perm":6}}}}`)
	for _, tc := range []struct {
		name string
		ext  func(map[string]string)
		body []byte
	}{
		{"malformed JSON", func(m map[string]string) { delete(m, "bodyCrc32") }, []byte(`{"topicConfigSerializeWrapper":`)},
		{"body not an object", func(m map[string]string) { delete(m, "bodyCrc32") }, []byte(`[1,2]`)},
		{"negative queues", func(m map[string]string) { delete(m, "bodyCrc32") },
			[]byte(`{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":-1}}}`)},
		{"topic under another name", func(m map[string]string) { delete(m, "bodyCrc32") },
			[]byte(`{"topicConfigTable":{"T":{"topicName":"U"}}}`)},
		{"missing brokerAddr", func(m map[string]string) { delete(m, "brokerAddr") }, body},
		{"brokerAddr not host:port", func(m map[string]string) { m["brokerAddr"] = "nowhere" }, body},
		{"brokerAddr with a comma", func(m map[string]string) { m["brokerAddr"] = "10.0.0.1,10.0.0.2:10911" }, body},
		{"brokerAddr port out of range", func(m map[string]string) { m["brokerAddr"] = "10.0.0.1:70000" }, body},
		{"haServerAddr not host:port", func(m map[string]string) { m["haServerAddr"] = "nowhere" }, body},
		// Clients expand a route into one entry per queue: 2^30 would
		// exhaust every client's memory.
		{"huge queue counts", func(m map[string]string) { delete(m, "bodyCrc32") },
			[]byte(`{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":1073741824,"writeQueueNums":1073741824}}}`)},
		{"missing brokerName", func(m map[string]string) { delete(m, "brokerName") }, body},
		{"bad brokerId", func(m map[string]string) { m["brokerId"] = "x" }, body},
		{"negative brokerId", func(m map[string]string) { m["brokerId"] = "-1" }, body},
		{"CRC mismatch", func(m map[string]string) { m["bodyCrc32"] = "12345" }, body},
		{"compressed", func(m map[string]string) { m["compressed"] = "true" }, body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := registerExt(good, tc.body)
			tc.ext(ext)
			resp := call(t, c, remoting.ReqRegisterBroker, ext, tc.body)
			if resp.Code != remoting.RespSystemError || resp.Remark == "" {
				t.Fatalf("code %d %q, want SYSTEM_ERROR with a remark", resp.Code, resp.Remark)
			}
		})
	}
	if _, ok := route(t, c, "T"); ok {
		t.Fatal("a refused registration was routed")
	}
	// The server keeps serving the same connection.
	ext := registerExt(good, body)
	if resp := call(t, c, remoting.ReqRegisterBroker, ext, body); resp.Code != remoting.RespSuccess {
		t.Fatalf("good registration after bad ones: code %d %q", resp.Code, resp.Remark)
	}
	if _, ok := route(t, c, "T"); !ok {
		t.Fatal("no route after a good registration")
	}
}

func TestLegacyAndEmptyBodies(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	r := brokerReg{name: "broker-a", addr: addrA}
	// A bare TopicConfigSerializeWrapper (brokers before 3.0.11), no CRC.
	legacy := []byte(`{"topicConfigTable":{"T":{"readQueueNums":2,"writeQueueNums":2,"perm":6}},"dataVersion":{"timestamp":1,"counter":1}}`)
	ext := registerExt(r, legacy)
	delete(ext, "bodyCrc32")
	if resp := call(t, c, remoting.ReqRegisterBroker, ext, legacy); resp.Code != remoting.RespSuccess {
		t.Fatalf("legacy body: code %d %q", resp.Code, resp.Remark)
	}
	if rt, ok := route(t, c, "T"); !ok || rt.queues[0].WriteQueueNums != 2 {
		t.Fatalf("legacy body routed as %+v, %v", rt.queues, ok)
	}
	// No body: a heartbeat that leaves the topics alone.
	ext = registerExt(r, nil)
	delete(ext, "bodyCrc32")
	if resp := call(t, c, remoting.ReqRegisterBroker, ext, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("empty body: code %d %q", resp.Code, resp.Remark)
	}
	if _, ok := route(t, c, "T"); !ok {
		t.Fatal("an empty-body registration dropped the topics")
	}
}

func TestKVConfig(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	ns := NamespaceOrderTopicConfig
	if resp := call(t, c, remoting.ReqGetKVConfig, map[string]string{"namespace": ns, "key": "Orders"}, nil); resp.Code != remoting.RespQueryNotFound {
		t.Fatalf("get of a missing key: code %d", resp.Code)
	}
	call(t, c, remoting.ReqPutKVConfig, map[string]string{"namespace": ns, "key": "Orders", "value": "broker-a:4"}, nil)
	resp := call(t, c, remoting.ReqGetKVConfig, map[string]string{"namespace": ns, "key": "Orders"}, nil)
	if resp.Code != remoting.RespSuccess || resp.Ext("value") != "broker-a:4" {
		t.Fatalf("get: code %d value %q", resp.Code, resp.Ext("value"))
	}
	// The order-topic namespace comes back with a registration and in routes.
	resp = register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	var kv KVTable
	if err := json.Unmarshal(resp.Body, &kv); err != nil || kv.Table["Orders"] != "broker-a:4" {
		t.Errorf("registration response body %s, %v", resp.Body, err)
	}
	resp = call(t, c, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": "Orders"}, nil)
	var rd TopicRouteData
	if err := json.Unmarshal(resp.Body, &rd); err != nil || rd.OrderTopicConf != "broker-a:4" {
		t.Errorf("route %s, %v", resp.Body, err)
	}
	call(t, c, remoting.ReqDeleteKVConfig, map[string]string{"namespace": ns, "key": "Orders"}, nil)
	if resp := call(t, c, remoting.ReqGetKVListByNamespace, map[string]string{"namespace": ns}, nil); resp.Code != remoting.RespQueryNotFound {
		t.Errorf("list of an emptied namespace: code %d", resp.Code)
	}
}

// An ORDER_TOPIC_CONFIG value goes into the topic's route, where the
// official Go client splits it on ';' and ':' and reads item[1] unchecked,
// then makes that many queues: a value that is not "name:n;name:n" pairs
// would crash every Go producer of the topic (an entry with no ':', a
// trailing ';') or exhaust its memory. It is refused.
func TestOrderTopicConfThatWouldCrashClientsIsRefused(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{AutoCreateTopicKey: {8, 8}}})
	put := func(v string) *remoting.Command {
		return call(t, c, remoting.ReqPutKVConfig, map[string]string{"namespace": NamespaceOrderTopicConfig, "key": "Orders", "value": v}, nil)
	}
	for _, v := range []string{"broker-a", "broker-a:4;", "broker-a:4;;broker-b:4", ":4", "broker-a:x", "broker-a:-1", "broker-a:1073741824"} {
		if resp := put(v); resp.Code != remoting.RespSystemError || resp.Remark == "" {
			t.Errorf("PUT_KV_CONFIG %q: code %d %q, want SYSTEM_ERROR", v, resp.Code, resp.Remark)
		}
		route(t, c, "Orders") // parses as the Go client would
	}
	for _, v := range []string{"broker-a:4", "broker-a:4;broker-b:8", ""} {
		if resp := put(v); resp.Code != remoting.RespSuccess {
			t.Errorf("PUT_KV_CONFIG %q: code %d %q, want SUCCESS", v, resp.Code, resp.Remark)
		}
	}
	// Other namespaces hold anything.
	if resp := call(t, c, remoting.ReqPutKVConfig, map[string]string{"namespace": "ns", "key": "k", "value": "a;b:"}, nil); resp.Code != remoting.RespSuccess {
		t.Errorf("PUT_KV_CONFIG elsewhere: code %d %q", resp.Code, resp.Remark)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{ListenAddr: "nowhere"},
		{BrokerExpiry: -time.Second},
		{DefaultQueueNums: -1},
		{DefaultQueueNums: 5000},
	} {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
		if _, err := Open(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	d := Options{}.withDefaults()
	if d.ListenAddr != "127.0.0.1:9876" || d.BrokerExpiry != 120*time.Second || d.DefaultQueueNums != 4 || d.DisableAutoCreateTopic {
		t.Errorf("defaults %+v", d)
	}
	s := startServer(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

// A second broker registering a name and id that a live, connected broker
// holds from another address is refused, saying why: it would take the
// name over (and the routes of the first one's topics) at every
// registration, the two taking turns. A broker that really moved (its old
// registration's connection closed) takes its name back.
func TestDuplicateBrokerNameIsRefused(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	first := dial(t, s)
	register(t, first, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	second := dial(t, s)
	r := brokerReg{name: "broker-a", addr: addrB, topics: map[string][2]int{"Payments": {4, 4}}}
	body, _ := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]TopicConfig{"Payments": {TopicName: "Payments", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW}}}})
	resp := call(t, second, remoting.ReqRegisterBroker, registerExt(r, body), body)
	if resp.Code == remoting.RespSuccess || !strings.Contains(resp.Remark, "own brokerName") {
		t.Fatalf("second broker-a from %s: code %d %q, want a refusal", addrB, resp.Code, resp.Remark)
	}
	if rt, ok := route(t, first, "Orders"); !ok || rt.brokers["broker-a"][0] != addrA {
		t.Fatalf("Orders' route after the refusal: %+v %v, want broker-a at %s", rt, ok, addrA)
	}
	if _, ok := route(t, first, "Payments"); ok {
		t.Fatal("the refused broker's topic is routed")
	}
	// The first broker's connection closes: the name is free again.
	first.Close()
	waitFor(t, "broker-a to register from its new address", func() bool {
		resp := call(t, second, remoting.ReqRegisterBroker, registerExt(r, body), body)
		return resp.Code == remoting.RespSuccess
	})
	if rt, ok := route(t, second, "Payments"); !ok || rt.brokers["broker-a"][0] != addrB {
		t.Fatalf("Payments' route: %+v %v, want broker-a at %s", rt, ok, addrB)
	}
}
