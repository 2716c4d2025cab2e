package namesrv

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// registerTable registers a master with the given table and data version.
func registerTable(t testing.TB, c *remoting.Conn, name, addr string, table map[string]TopicConfig, v DataVersion, full bool) {
	t.Helper()
	body, err := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: table, DataVersion: v}, FilterServerList: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if resp := call(t, c, remoting.ReqRegisterBroker, registerExt(brokerReg{name: name, addr: addr, full: full}, body), body); resp.Code != remoting.RespSuccess {
		t.Fatalf("REGISTER_BROKER %s: code %d %q", name, resp.Code, resp.Remark)
	}
}

// Routes over two brokers with their own read/write queue counts and
// permissions, and a re-registration with a newer data version that
// changes them (RouteInfoManager.createAndUpdateQueueData).
func TestRoutesOfTwoBrokersFollowTheirTables(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	v1 := DataVersion{Timestamp: 1000, Counter: 1}
	registerTable(t, c, "broker-a", addrA, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 8, WriteQueueNums: 4, Perm: PermRW},
	}, v1, false)
	registerTable(t, c, "broker-b", addrB, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 2, WriteQueueNums: 6, Perm: PermRead},
	}, v1, false)
	r, ok := route(t, c, "Orders")
	want := []clientQueue{
		{BrokerName: "broker-a", ReadQueueNums: 8, WriteQueueNums: 4, Perm: PermRW},
		{BrokerName: "broker-b", ReadQueueNums: 2, WriteQueueNums: 6, Perm: PermRead},
	}
	if !ok || !reflect.DeepEqual(r.queues, want) || r.brokers["broker-a"][MasterID] != addrA || r.brokers["broker-b"][MasterID] != addrB {
		t.Fatalf("route %+v %v, want %+v on both brokers", r, ok, want)
	}

	// broker-a turns read-only, broker-b writable again: a newer version.
	v2 := DataVersion{Timestamp: 2000, Counter: 2}
	registerTable(t, c, "broker-a", addrA, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 8, WriteQueueNums: 4, Perm: PermRead},
	}, v2, false)
	registerTable(t, c, "broker-b", addrB, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 2, WriteQueueNums: 6, Perm: PermRW},
	}, v2, false)
	r, _ = route(t, c, "Orders")
	want[0].Perm, want[1].Perm = PermRead, PermRW
	if !reflect.DeepEqual(r.queues, want) {
		t.Fatalf("after permission changes: %+v, want %+v", r.queues, want)
	}
	// A queue count change.
	v3 := DataVersion{Timestamp: 3000, Counter: 3}
	registerTable(t, c, "broker-b", addrB, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 16, WriteQueueNums: 16, Perm: PermRW},
	}, v3, false)
	r, _ = route(t, c, "Orders")
	want[1].ReadQueueNums, want[1].WriteQueueNums = 16, 16
	if !reflect.DeepEqual(r.queues, want) {
		t.Fatalf("after a queue count change: %+v, want %+v", r.queues, want)
	}
	// One broker leaves: the other keeps its queues.
	call(t, c, remoting.ReqUnregisterBroker, map[string]string{"brokerName": "broker-a", "brokerAddr": addrA, "brokerId": "0", "clusterName": "DefaultCluster"}, nil)
	r, _ = route(t, c, "Orders")
	if !reflect.DeepEqual(r.queues, want[1:]) || len(r.brokers) != 1 {
		t.Fatalf("after broker-a left: %+v %v", r.queues, r.brokers)
	}
}

// mqadmin wipeWritePerm -b broker-a (WIPE_WRITE_PERM_OF_BROKER) takes the
// write permission off every topic of broker-a in the name server's routes,
// so that producers drain away from it before it is stopped; addWritePerm
// (ADD_WRITE_PERM_OF_BROKER) gives it back (RouteInfoManager
// operateWritePermOfBroker). The broker's periodic re-registration with an
// unchanged data version does not undo it: RocketMQ updates a broker's
// queue data only when its data version changed
// (isTopicConfigChanged).
func TestWipeAndAddWritePermOfBroker(t *testing.T) {
	s := startServer(t, Options{DisableAutoCreateTopic: true})
	c := dial(t, s)
	v1 := DataVersion{Timestamp: 1000, Counter: 1}
	tableA := map[string]TopicConfig{
		"Orders":   {TopicName: "Orders", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW},
		"Payments": {TopicName: "Payments", ReadQueueNums: 2, WriteQueueNums: 2, Perm: PermRW},
	}
	registerTable(t, c, "broker-a", addrA, tableA, v1, true)
	registerTable(t, c, "broker-b", addrB, map[string]TopicConfig{
		"Orders": {TopicName: "Orders", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW},
	}, v1, true)
	perms := func(topic string) map[string]int {
		t.Helper()
		r, ok := route(t, c, topic)
		if !ok {
			t.Fatalf("no route for %s", topic)
		}
		out := map[string]int{}
		for _, q := range r.queues {
			out[q.BrokerName] = q.Perm
		}
		return out
	}

	resp := call(t, c, remoting.ReqWipeWritePermOfBroker, map[string]string{"brokerName": "broker-a"}, nil)
	if resp.Code != remoting.RespSuccess || resp.Ext("wipeTopicCount") != "2" {
		t.Fatalf("WIPE_WRITE_PERM_OF_BROKER: code %d %q wipeTopicCount=%q, want SUCCESS and 2", resp.Code, resp.Remark, resp.Ext("wipeTopicCount"))
	}
	want := map[string]int{"broker-a": PermRead, "broker-b": PermRW}
	if got := perms("Orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Orders after wipe: %v, want %v", got, want)
	}
	// The broker's next periodic registration: same table, same version.
	registerTable(t, c, "broker-a", addrA, tableA, v1, true)
	if got := perms("Orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Orders after broker-a re-registered an unchanged table: %v, want %v (the wipe undone)", got, want)
	}
	if got := perms("Payments")["broker-a"]; got != PermRead {
		t.Fatalf("Payments on broker-a: perm %d, want %d", got, PermRead)
	}

	resp = call(t, c, remoting.ReqAddWritePermOfBroker, map[string]string{"brokerName": "broker-a"}, nil)
	if resp.Code != remoting.RespSuccess || resp.Ext("addTopicCount") != "2" {
		t.Fatalf("ADD_WRITE_PERM_OF_BROKER: code %d %q addTopicCount=%q, want SUCCESS and 2", resp.Code, resp.Remark, resp.Ext("addTopicCount"))
	}
	if got := perms("Orders"); got["broker-a"] != PermRW {
		t.Fatalf("Orders after addWritePerm: %v", got)
	}

	// A newer version is applied as registered.
	call(t, c, remoting.ReqWipeWritePermOfBroker, map[string]string{"brokerName": "broker-a"}, nil)
	registerTable(t, c, "broker-a", addrA, map[string]TopicConfig{
		"Orders":   {TopicName: "Orders", ReadQueueNums: 8, WriteQueueNums: 8, Perm: PermRW},
		"Payments": tableA["Payments"],
		"Refunds":  {TopicName: "Refunds", ReadQueueNums: 1, WriteQueueNums: 1, Perm: PermRW},
	}, DataVersion{Timestamp: 2000, Counter: 2}, true)
	if got := perms("Orders"); got["broker-a"] != PermRW {
		t.Fatalf("Orders after a newer registration: %v", got)
	}
	if got := perms("Refunds"); got["broker-a"] != PermRW {
		t.Fatalf("Refunds after a newer registration: %v", got)
	}
	// An unknown broker: nothing to change.
	if resp := call(t, c, remoting.ReqWipeWritePermOfBroker, map[string]string{"brokerName": "nobody"}, nil); resp.Code != remoting.RespSuccess || resp.Ext("wipeTopicCount") != "0" {
		t.Fatalf("wipe of an unknown broker: code %d count %q", resp.Code, resp.Ext("wipeTopicCount"))
	}
	if resp := call(t, c, remoting.ReqWipeWritePermOfBroker, nil, nil); resp.Code != remoting.RespSystemError {
		t.Fatalf("wipe without brokerName: code %d, want SYSTEM_ERROR", resp.Code)
	}
}

// A wiped broker gets no new topics either: the name server's route for an
// unknown topic (AutoCreateTopic) goes to the brokers whose TBW102 is
// writable, as a RocketMQ client borrowing TBW102's route skips a broker
// whose TBW102 queue data lost PERM_WRITE.
func TestWipedBrokerGetsNoAutoCreatedTopics(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	v1 := DataVersion{Timestamp: 1000, Counter: 1}
	tbw := map[string]TopicConfig{AutoCreateTopicKey: {TopicName: AutoCreateTopicKey, ReadQueueNums: 8, WriteQueueNums: 8, Perm: PermRW | PermInherit}}
	registerTable(t, c, "broker-a", addrA, tbw, v1, true)
	registerTable(t, c, "broker-b", addrB, tbw, v1, true)
	if r, ok := route(t, c, "NewTopic"); !ok || len(r.queues) != 2 {
		t.Fatalf("auto-created route %+v, %v; want both brokers", r.queues, ok)
	}
	call(t, c, remoting.ReqWipeWritePermOfBroker, map[string]string{"brokerName": "broker-a"}, nil)
	r, ok := route(t, c, "NewTopic")
	if !ok || len(r.queues) != 1 || r.queues[0].BrokerName != "broker-b" {
		t.Fatalf("auto-created route after wiping broker-a: %+v, %v; want broker-b only", r.queues, ok)
	}
}
