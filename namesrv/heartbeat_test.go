package namesrv

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// registerVersion registers r with data version v, adding ext to the
// header.
func registerVersion(t testing.TB, c *remoting.Conn, r brokerReg, v DataVersion, ext map[string]string) {
	t.Helper()
	table := map[string]TopicConfig{}
	for name, q := range r.topics {
		table[name] = TopicConfig{TopicName: name, ReadQueueNums: q[0], WriteQueueNums: q[1], Perm: PermRW}
	}
	body, err := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: table, DataVersion: v}, FilterServerList: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	h := registerExt(r, body)
	for k, x := range ext {
		h[k] = x
	}
	if resp := call(t, c, remoting.ReqRegisterBroker, h, body); resp.Code != remoting.RespSuccess {
		t.Fatalf("REGISTER_BROKER: code %d %q", resp.Code, resp.Remark)
	}
}

// queryDataVersion sends QUERY_DATA_VERSION as a RocketMQ broker does
// (BrokerOuterAPI.needRegister: QueryDataVersionRequestHeader, the
// broker's DataVersion as the body).
func queryDataVersion(t testing.TB, c *remoting.Conn, addr string, v DataVersion) *remoting.Command {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return call(t, c, remoting.ReqQueryDataVersion, map[string]string{
		"brokerName": "broker-a", "brokerAddr": addr, "clusterName": "DefaultCluster", "brokerId": "0"}, body)
}

// A RocketMQ broker with forceRegister=false (and every 5.x broker with
// enableSlaveActingMaster, once a second) asks QUERY_DATA_VERSION instead of
// registering while its topics have not changed; it registers only when the
// answer says "changed". RocketMQ's name server answers SUCCESS with the
// changed header and the version it holds as the body, and counts the
// query as a sign of life (DefaultRequestProcessor.queryBrokerTopicConfig,
// updateBrokerInfoUpdateTimestamp): such a broker must stay routed.
func TestQueryDataVersionKeepsBrokerAlive(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{BrokerExpiry: 10 * time.Second, DisableAutoCreateTopic: true, now: clock.Now})
	c := dial(t, s)
	v := DataVersion{StateVersion: 2, Timestamp: 1_700_000_000_123, Counter: 7}
	registerVersion(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}}, v, nil)

	for i := range 3 {
		clock.Advance(8 * time.Second)
		resp := queryDataVersion(t, c, addrA, v)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("QUERY_DATA_VERSION: code %d %q, want SUCCESS", resp.Code, resp.Remark)
		}
		if got := resp.Ext("changed"); got != "false" {
			t.Fatalf("QUERY_DATA_VERSION with the registered version: changed=%q, want false", got)
		}
		var held DataVersion
		if err := json.Unmarshal(resp.Body, &held); err != nil || held != v {
			t.Fatalf("QUERY_DATA_VERSION body %s (%v), want the registered version %+v", resp.Body, err, v)
		}
		if _, ok := route(t, c, "Orders"); !ok {
			t.Fatalf("route gone %d s after registration although the broker queried its data version every 8 s", 8*(i+1))
		}
	}

	// Another version: changed, and the broker registers.
	resp := queryDataVersion(t, c, addrA, DataVersion{Timestamp: v.Timestamp, Counter: v.Counter + 1})
	if resp.Code != remoting.RespSuccess || resp.Ext("changed") != "true" {
		t.Fatalf("QUERY_DATA_VERSION with a newer version: code %d changed=%q, want SUCCESS and true", resp.Code, resp.Ext("changed"))
	}
	// A broker the name server does not know: changed, no body.
	resp = queryDataVersion(t, c, addrB, v)
	if resp.Code != remoting.RespSuccess || resp.Ext("changed") != "true" || len(resp.Body) != 0 {
		t.Fatalf("QUERY_DATA_VERSION of an unknown broker: code %d changed=%q body %q", resp.Code, resp.Ext("changed"), resp.Body)
	}
	if _, ok := route(t, c, "Orders"); !ok {
		t.Fatal("route gone after the queries")
	}
	// A body that is no DataVersion is an error, as Java's decode fails.
	bad := call(t, c, remoting.ReqQueryDataVersion, map[string]string{
		"brokerName": "broker-a", "brokerAddr": addrA, "clusterName": "DefaultCluster", "brokerId": "0"}, []byte("{"))
	if bad.Code != remoting.RespSystemError {
		t.Fatalf("QUERY_DATA_VERSION with a bad body: code %d, want SYSTEM_ERROR", bad.Code)
	}
}

// A 5.x broker with enableSlaveActingMaster registers with
// heartbeatTimeoutMillis (brokerNotActiveTimeoutMillis, 10 s) and sends
// BROKER_HEARTBEAT (or QUERY_DATA_VERSION) oneway every second; the name
// server refreshes it on each (DefaultRequestProcessor.brokerHeartbeat).
func TestBrokerHeartbeatKeepsBrokerAlive(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{BrokerExpiry: 10 * time.Second, DisableAutoCreateTopic: true, now: clock.Now})
	c := dial(t, s)
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	ext := map[string]string{"clusterName": "DefaultCluster", "brokerAddr": addrA, "brokerName": "broker-a", "brokerId": "0"}
	for i := range 4 {
		clock.Advance(8 * time.Second)
		if i%2 == 0 {
			if resp := call(t, c, remoting.ReqBrokerHeartbeat, ext, nil); resp.Code != remoting.RespSuccess {
				t.Fatalf("BROKER_HEARTBEAT: code %d %q, want SUCCESS", resp.Code, resp.Remark)
			}
		} else { // oneway, as the broker sends it
			if err := c.InvokeOneway(remoting.NewRequest(remoting.ReqBrokerHeartbeat, ext)); err != nil {
				t.Fatal(err)
			}
			now := clock.Now()
			waitFor(t, "the oneway heartbeat to be handled", func() bool {
				s.reg.mu.RLock()
				defer s.reg.mu.RUnlock()
				b := s.reg.brokers[addrA]
				return b != nil && b.lastSeen.Equal(now)
			})
		}
		if _, ok := route(t, c, "Orders"); !ok {
			t.Fatalf("route gone after %d heartbeats 8 s apart (expiry 10 s)", i+1)
		}
	}
	clock.Advance(11 * time.Second)
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route still there 11 s after the last heartbeat (expiry 10 s)")
	}
	// Another cluster's broker of that address is not this one.
	register(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	clock.Advance(8 * time.Second)
	ext["clusterName"] = "OtherCluster"
	call(t, c, remoting.ReqBrokerHeartbeat, ext, nil)
	clock.Advance(3 * time.Second)
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("a heartbeat naming another cluster kept the broker alive")
	}
}

// RocketMQ's name server drops a broker heartbeatTimeoutMillis after its
// last registration or heartbeat when it registered with that header
// (RouteInfoManager.scanNotActiveBroker uses each BrokerLiveInfo's own
// timeout; a 5.x broker with enableSlaveActingMaster sends 10 s), not after
// the name server's 120 s: a hung broker whose connection stays open must
// leave the routes as soon.
func TestRegistrationHeartbeatTimeoutMillis(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{DisableAutoCreateTopic: true, now: clock.Now}) // default expiry, 120 s
	c := dial(t, s)
	v := DataVersion{Timestamp: 1_700_000_000_123, Counter: 1}
	registerVersion(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}}, v,
		map[string]string{"heartbeatTimeoutMillis": "10000", "enableActingMaster": "true"})
	// Without the header, the name server's expiry applies.
	registerVersion(t, c, brokerReg{name: "broker-b", addr: addrB, topics: map[string][2]int{"Payments": {4, 4}}}, v, nil)

	clock.Advance(9 * time.Second)
	if _, ok := route(t, c, "Orders"); !ok {
		t.Fatal("route gone 9 s after registration with heartbeatTimeoutMillis=10000")
	}
	clock.Advance(2 * time.Second)
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route still there 11 s after the registration of a broker with heartbeatTimeoutMillis=10000")
	}
	clock.Advance(60 * time.Second)
	if _, ok := route(t, c, "Payments"); !ok {
		t.Fatal("a broker registered without heartbeatTimeoutMillis expired before BrokerExpiry")
	}

	body := []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{}}}`)
	for _, v := range []string{"soon", "99999999999999999"} {
		ext := registerExt(brokerReg{name: "broker-c", addr: "127.0.0.1:10931"}, body)
		ext["heartbeatTimeoutMillis"] = v
		if resp := call(t, c, remoting.ReqRegisterBroker, ext, body); resp.Code != remoting.RespSystemError {
			t.Fatalf("heartbeatTimeoutMillis %q: code %d, want SYSTEM_ERROR", v, resp.Code)
		}
	}
}

// A QUERY_DATA_VERSION whose version differs from the one registered is
// answered changed and is no sign of life, as RocketMQ refreshes a broker
// only when its version is unchanged: the broker is alive once it
// registers its new table, and one that never does expires.
func TestQueryDataVersionOfAChangedTableKeepsNoBrokerAlive(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{BrokerExpiry: 10 * time.Second, DisableAutoCreateTopic: true, now: clock.Now})
	c := dial(t, s)
	v := DataVersion{Timestamp: 1_700_000_000_123, Counter: 7}
	registerVersion(t, c, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}}, v, nil)
	newer := DataVersion{Timestamp: v.Timestamp, Counter: v.Counter + 1}
	for range 2 {
		clock.Advance(6 * time.Second)
		if resp := queryDataVersion(t, c, addrA, newer); resp.Code != remoting.RespSuccess || resp.Ext("changed") != "true" {
			t.Fatalf("QUERY_DATA_VERSION with a newer version: code %d changed=%q", resp.Code, resp.Ext("changed"))
		}
	}
	if _, ok := route(t, c, "Orders"); ok {
		t.Fatal("route still there 12 s after the registration: queries of a changed version kept the broker alive")
	}
}
