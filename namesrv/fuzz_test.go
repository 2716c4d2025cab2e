package namesrv

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
)

// fuzzCodes are request codes: the name server's, and two it does not
// serve (217 REGISTER_TOPIC_IN_NAMESRV, 10 SEND_MESSAGE). New codes go at
// the end: the seeds and the corpus pick codes by index.
var fuzzCodes = []int16{
	remoting.ReqRegisterBroker, remoting.ReqUnregisterBroker, remoting.ReqGetRouteInfoByTopic,
	remoting.ReqGetBrokerClusterInfo, remoting.ReqGetAllTopicListFromNameServer, remoting.ReqGetTopicsByCluster,
	remoting.ReqDeleteTopicInNameSrv, remoting.ReqPutKVConfig, remoting.ReqGetKVConfig, remoting.ReqDeleteKVConfig,
	remoting.ReqGetKVListByNamespace,
	remoting.ReqRegisterTopicInNameSrv, remoting.ReqQueryDataVersion, remoting.ReqBrokerHeartbeat, remoting.ReqSendMessage,
	remoting.ReqWipeWritePermOfBroker, remoting.ReqAddWritePermOfBroker,
}

// fuzzNames are the header field names the name server's handlers read.
var fuzzNames = []string{
	"brokerName", "brokerAddr", "clusterName", "brokerId", "haServerAddr", "compressed", "bodyCrc32",
	"topic", "cluster", "namespace", "key", "value", "enableActingMaster", "heartbeatTimeoutMillis",
}

// The canary broker: the fuzz input may not name it (inputs that do are
// skipped); every run checks that it is still registered and routed.
const (
	canaryToken  = "zcanary"
	canaryName   = "zcanary-b"
	canaryAddr   = "zcanary-host:10911"
	canaryTopic  = "zcanaryTopic"
	canaryRouted = "zcanaryAuto" // a topic no broker registers: auto-created
)

// canaryRegister registers the canary broker, serving canaryTopic and
// creating topics on first use (TBW102).
func canaryRegister(t testing.TB, c *remoting.Conn) {
	t.Helper()
	table := map[string]TopicConfig{
		canaryTopic:        {TopicName: canaryTopic, ReadQueueNums: 2, WriteQueueNums: 2, Perm: PermRW},
		AutoCreateTopicKey: {TopicName: AutoCreateTopicKey, ReadQueueNums: 8, WriteQueueNums: 8, Perm: PermRW | PermInherit},
	}
	body, err := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{TopicConfigTable: table}})
	if err != nil {
		t.Fatal(err)
	}
	resp := call(t, c, remoting.ReqRegisterBroker, registerExt(brokerReg{name: canaryName, addr: canaryAddr, cluster: "zcanaryCluster"}, body), body)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("canary registration: code %d %q", resp.Code, resp.Remark)
	}
}

// canaryCheck fails unless the canary broker is registered, routed (also
// for an auto-created topic, with whatever other brokers the fuzz input
// registered: every route must parse as the Go client parses it) and
// listed, and the name server holds nothing else once the fuzz
// connection closed.
func canaryCheck(t testing.TB, s *Server, c *remoting.Conn) {
	t.Helper()
	for _, topic := range []string{canaryTopic, canaryRouted} {
		r, ok := route(t, c, topic)
		if !ok || r.brokers[canaryName][MasterID] != canaryAddr {
			t.Fatalf("route of %s: %v (found %v), want %s at %s", topic, r.brokers, ok, canaryName, canaryAddr)
		}
	}
	resp := call(t, c, remoting.ReqGetBrokerClusterInfo, nil, nil)
	var ci ClusterInfo
	if resp.Code != remoting.RespSuccess || json.Unmarshal(resp.Body, &ci) != nil || ci.BrokerAddrTable[canaryName].BrokerAddrs[MasterID] != canaryAddr {
		t.Fatalf("cluster info: code %d %q %s", resp.Code, resp.Remark, resp.Body)
	}
	resp = call(t, c, remoting.ReqGetAllTopicListFromNameServer, nil, nil)
	var tl TopicList
	if resp.Code != remoting.RespSuccess || json.Unmarshal(resp.Body, &tl) != nil || !strings.Contains(string(resp.Body), `"`+canaryTopic+`"`) {
		t.Fatalf("topic list: code %d %q %s", resp.Code, resp.Remark, resp.Body)
	}
	// Every topic the input may have touched routes as the Go client parses.
	topics := map[string]bool{}
	s.reg.mu.RLock()
	for topic := range s.reg.topics {
		topics[topic] = true
	}
	s.reg.mu.RUnlock()
	if order, ok := s.kv.list(NamespaceOrderTopicConfig); ok {
		for topic := range order {
			topics[topic] = true
		}
	}
	for topic := range topics {
		route(t, c, topic)
	}
	waitFor(t, "the fuzz connection's brokers to go", func() bool {
		s.reg.mu.RLock()
		defer s.reg.mu.RUnlock()
		return len(s.reg.brokers) == 1 && len(s.reg.topics) == 2
	})
}

// FuzzNamesrvRequest sends one or two requests built from fuzz input (a
// request code the name server registers, header fields from the names
// its handlers read, a body; a bodyCrc32 of "$crc" is replaced with the
// body's CRC) to a fresh name server holding one canary broker, and
// requires an answer or a closed connection for each, no handler panic,
// and the canary still registered and routed, with nothing left behind
// once the connection closes.
func FuzzNamesrvRequest(f *testing.F) {
	reg := `{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6},` +
		`"TBW102":{"readQueueNums":8,"writeQueueNums":8,"perm":7}},"dataVersion":{"timestamp":1,"counter":1}},"filterServerList":[]}`
	regExt := "brokerName=broker-a\nbrokerAddr=127.0.0.1:10911\nclusterName=DefaultCluster\nbrokerId=0\nhaServerAddr=127.0.0.1:10912\ncompressed=false\nbodyCrc32=$crc\n"
	f.Add(uint8(0), regExt, []byte(reg), uint8(2), "topic=T\n", []byte(nil), false)
	f.Add(uint8(0), strings.Replace(regExt, "brokerId=0", "brokerId=1", 1), []byte(`{"topicConfigTable":{"T":{"readQueueNums":1}}}`),
		uint8(3), "", []byte(nil), true)
	f.Add(uint8(0), regExt, []byte(nil), uint8(1), "brokerName=broker-a\nbrokerAddr=127.0.0.1:10911\nbrokerId=0\n", []byte(nil), false)
	f.Add(uint8(0), regExt, []byte(reg), uint8(6), "topic=T\nclusterName=DefaultCluster\n", []byte(nil), false)
	f.Add(uint8(7), "namespace=ORDER_TOPIC_CONFIG\nkey=T\nvalue=broker-a:4\n", []byte(nil), uint8(0), regExt, []byte(reg), false)
	f.Add(uint8(8), "namespace=ns\nkey=k\n", []byte(nil), uint8(10), "namespace=ns\n", []byte(nil), false)
	f.Add(uint8(9), "namespace=ns\nkey=k\n", []byte(nil), uint8(5), "cluster=DefaultCluster\n", []byte(nil), false)
	f.Add(uint8(4), "", []byte(nil), uint8(11), "topic=T\n", []byte(nil), false)
	f.Add(uint8(0), "0=broker-b\n1=[::1]:10911\n2=c\n3=0\n", []byte(`{"topicConfigTable":{"TBW102":{}}}`), uint8(12), "", []byte(nil), false)

	goroutines := runtime.NumGoroutine() + 10
	f.Fuzz(func(t *testing.T, code1 uint8, ext1 string, body1 []byte, code2 uint8, ext2 string, body2 []byte, binary bool) {
		if strings.Contains(strings.ToLower(ext1+ext2+string(body1)+string(body2)), canaryToken) {
			return // the canary is not the fuzz input's to change
		}
		log := &remotetest.PanicLog{}
		s := startServer(t, Options{Logger: log.Logger()})
		canary := dial(t, s)
		canaryRegister(t, canary)
		c, err := remoting.Dial(context.Background(), s.Addr(), remoting.DialOptions{Logger: testLogger()})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		for _, cmd := range []struct {
			code uint8
			ext  string
			body []byte
		}{{code1, ext1, body1}, {code2, ext2, body2}} {
			req := remoting.NewRequest(remotetest.FuzzCode(cmd.code, fuzzCodes), remotetest.FuzzExt(cmd.ext, fuzzNames, nil))
			req.Body = cmd.body
			if req.ExtFields["bodyCrc32"] == "$crc" {
				req.ExtFields["bodyCrc32"] = strconv.FormatUint(uint64(crc32.ChecksumIEEE(cmd.body)&0x7fffffff), 10)
			}
			if binary {
				req.SerializeType = remoting.SerializeRocketMQ
			}
			if _, open := remotetest.FuzzCall(t, c, req, 10*time.Second); !open {
				break
			}
		}
		c.Close()
		log.Check(t)
		canaryRegister(t, canary) // heals what the input may do to any broker's topics (DELETE_TOPIC_IN_NAMESRV)
		canaryCheck(t, s, canary)
		canary.Close()
		s.Close()
		remotetest.WaitGoroutines(t, goroutines, 10*time.Second)
	})
}

// FuzzDecodeRegisterBody feeds REGISTER_BROKER bodies to
// decodeRegisterBody: it never panics, what it accepts has every topic
// under its own name with queue counts in bounds, and a registry given it
// answers routes that encode and parse as the Go client parses them.
func FuzzDecodeRegisterBody(f *testing.F) {
	f.Add([]byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6}},"dataVersion":{"timestamp":1,"counter":1}},"filterServerList":[]}`))
	f.Add([]byte(`{"topicConfigTable":{"T":{"readQueueNums":2,"writeQueueNums":2,"perm":6}},"dataVersion":{"timestamp":1,"counter":1}}`))
	f.Add([]byte(`{"topicConfigSerializeWrapper":null,"topicConfigTable":{"":{"readQueueNums":65536}}}`))
	f.Add([]byte(`{"topicConfigTable":{"T":{"topicName":"U"}}}`))
	f.Add([]byte(`{"topicConfigTable":{"T":{"readQueueNums":-1}}}`))
	f.Add([]byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, ok, err := decodeRegisterBody(body)
		if err != nil || !ok {
			if ok || (err == nil && len(body) != 0) {
				t.Fatalf("ok %v, err %v for a %d-byte body", ok, err, len(body))
			}
			return
		}
		for name, tc := range w.TopicConfigTable {
			if tc.TopicName != name || tc.ReadQueueNums < 0 || tc.WriteQueueNums < 0 ||
				tc.ReadQueueNums > maxRegisteredQueueNums || tc.WriteQueueNums > maxRegisteredQueueNums {
				t.Fatalf("accepted topic %q as %+v", name, tc)
			}
		}
		r := newRegistry(Options{BrokerExpiry: time.Minute, DefaultQueueNums: 4, now: time.Now})
		if _, _, _, err := r.register(registration{cluster: "c", name: "b", addr: "127.0.0.1:10911", topics: &w}, nil); err != nil {
			t.Fatalf("register: %v", err)
		}
		for name := range w.TopicConfigTable {
			rd, ok := r.route(name)
			if !ok {
				t.Fatalf("no route for registered topic %q", name)
			}
			body, err := json.Marshal(rd)
			if err != nil {
				t.Fatalf("route of %q: %v", name, err)
			}
			if cr := parseLikeGoClient(t, body); cr.brokers["b"][MasterID] != "127.0.0.1:10911" {
				t.Fatalf("route of %q parses as %+v", name, cr)
			}
		}
	})
}
