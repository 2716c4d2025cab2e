package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/halfbackmq/halfback/broker/remoting"
)

func TestGetConsumeStats(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	if resp := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "T", "readQueueNums": "2", "writeQueueNums": "2"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("create: %v", resp)
	}
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "T", "queueId": "1", "commitOffset": "0"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %v", resp)
	}
	resp := call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "g"}, nil)
	want := `{"consumeTps":0.0,"offsetTable":{` +
		`{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0},` +
		`{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0}}}`
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Fatalf("GET_CONSUME_STATS: code %d %q\n got %s\nwant %s", resp.Code, resp.Remark, resp.Body, want)
	}
	resp = call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "nobody"}, nil)
	if resp.Code != remoting.RespSuccess || !strings.HasSuffix(string(resp.Body), `"offsetTable":{}}`) {
		t.Errorf("unknown group: code %d body %s", resp.Code, resp.Body)
	}
	if resp = call(t, c, remoting.ReqGetConsumeStats, nil, nil); resp.Code != remoting.RespSystemError {
		t.Errorf("no group: code %d, want SYSTEM_ERROR", resp.Code)
	}
}

// A broadcasting group's members keep their offsets themselves: the
// broker lists none of the topics they subscribe to (as RocketMQ's), where
// every message would show as lag, however far they consumed. Topics the
// group committed offsets on (as a clustering group, say) still show.
func TestGetConsumeStatsOfABroadcastingGroup(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for _, topic := range []string{"orders", "old"} {
		if resp := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": topic, "readQueueNums": "1", "writeQueueNums": "1"}, nil); resp.Code != remoting.RespSuccess {
			t.Fatalf("create %s: %v", topic, resp)
		}
	}
	mustSend(t, c, "orders", 0, "", "m")
	waitQueue(t, b, "orders", 0, 1)
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "bg", "topic": "old", "queueId": "0", "commitOffset": "0"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %v", resp)
	}
	hbOK(t, c, bytes.Replace(consumerHeartbeat("127.0.0.1@b1", "orders", "bg"), []byte("CLUSTERING"), []byte("BROADCASTING"), 1))
	resp := call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "bg"}, nil)
	want := `{"consumeTps":0.0,"offsetTable":{` +
		`{"brokerName":"broker-a","queueId":0,"topic":"old"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0}}}`
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Fatalf("GET_CONSUME_STATS of a broadcasting group: code %d %q\n got %s\nwant %s", resp.Code, resp.Remark, resp.Body, want)
	}
	// The same group consuming by clustering: the broker keeps its
	// offsets, and a subscribed topic with none committed is all lag.
	hbOK(t, c, consumerHeartbeat("127.0.0.1@b1", "orders", "bg"))
	resp = call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "bg"}, nil)
	if !strings.Contains(string(resp.Body), `"topic":"orders"}:{"brokerOffset":1,"consumerOffset":0`) {
		t.Fatalf("GET_CONSUME_STATS of a clustering group leaves out its subscription: %s", resp.Body)
	}
}

func TestGetTopicStats(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	if resp := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "T", "readQueueNums": "2", "writeQueueNums": "2"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("create: %v", resp)
	}
	for _, body := range []string{"a", "b", "c"} {
		mustSend(t, c, "T", 1, "", body)
	}
	waitQueue(t, b, "T", 1, 3)
	resp := call(t, c, remoting.ReqGetTopicStatsInfo, map[string]string{"topic": "T"}, nil)
	last := b.queueStoreTime("T", 1, 2)
	want := fmt.Sprintf(`{"offsetTable":{`+
		`{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"lastUpdateTimestamp":0,"maxOffset":0,"minOffset":0},`+
		`{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"lastUpdateTimestamp":%d,"maxOffset":3,"minOffset":0}},"topicPutTps":0.0}`, last)
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want || last == 0 {
		t.Fatalf("GET_TOPIC_STATS_INFO: code %d %q\n got %s\nwant %s", resp.Code, resp.Remark, resp.Body, want)
	}
	for _, topic := range []string{"missing", ""} {
		if resp := call(t, c, remoting.ReqGetTopicStatsInfo, map[string]string{"topic": topic}, nil); resp.Code != remoting.RespTopicNotExist {
			t.Errorf("topic %q: code %d %q, want TOPIC_NOT_EXIST", topic, resp.Code, resp.Remark)
		}
	}
}

func TestGetConsumerConnections(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "cc"))
	resp := call(t, c, remoting.ReqGetConsumerConnectionList, map[string]string{"consumerGroup": "cc"}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("GET_CONSUMER_CONNECTION_LIST: %d %s", resp.Code, resp.Remark)
	}
	var got struct {
		ConnectionSet []struct {
			ClientID, ClientAddr, Language string
			Version                        int
		}
		SubscriptionTable                           map[string]struct{ Topic, SubString string }
		ConsumeType, MessageModel, ConsumeFromWhere string
	}
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatalf("body %s: %v", resp.Body, err)
	}
	if len(got.ConnectionSet) != 1 || got.ConnectionSet[0].ClientID != "127.0.0.1@c1" || got.ConnectionSet[0].ClientAddr != c.LocalAddr().String() ||
		got.ConnectionSet[0].Language != "GO" || got.ConnectionSet[0].Version != int(remoting.DefaultVersion) {
		t.Errorf("connectionSet %+v, want the one client at %s, GO, version %d", got.ConnectionSet, c.LocalAddr(), remoting.DefaultVersion)
	}
	if s := got.SubscriptionTable["orders"]; len(got.SubscriptionTable) != 1 || s.Topic != "orders" || s.SubString != "a || b" {
		t.Errorf("subscriptionTable %+v", got.SubscriptionTable)
	}
	if got.ConsumeType != "CONSUME_PASSIVELY" || got.MessageModel != "CLUSTERING" || got.ConsumeFromWhere != "CONSUME_FROM_LAST_OFFSET" {
		t.Errorf("settings %+v", got)
	}
	if resp := call(t, c, remoting.ReqGetConsumerConnectionList, map[string]string{"consumerGroup": "nobody"}, nil); resp.Code != remoting.RespConsumerNotOnline {
		t.Errorf("offline group: %d %q, want CONSUMER_NOT_ONLINE", resp.Code, resp.Remark)
	}
}

func TestQueryTopicConsumeByWho(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	if resp := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "1", "writeQueueNums": "1"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("create: %v", resp)
	}
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "offline", "topic": "orders", "queueId": "0", "commitOffset": "0"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", resp.Code, resp.Remark)
	}
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c1", "orders", "online"))
	hbOK(t, c, consumerHeartbeat("127.0.0.1@c2", "payments", "elsewhere"))
	resp := call(t, c, remoting.ReqQueryTopicConsumeByWho, map[string]string{"topic": "orders"}, nil)
	if want := `{"groupList":["offline","online"]}`; resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Errorf("QUERY_TOPIC_CONSUME_BY_WHO: %d %q %s, want %s", resp.Code, resp.Remark, resp.Body, want)
	}
	if resp := call(t, c, remoting.ReqQueryTopicConsumeByWho, map[string]string{"topic": "nobody-reads"}, nil); string(resp.Body) != `{"groupList":[]}` {
		t.Errorf("unread topic: %d %s", resp.Code, resp.Body)
	}
	if resp := call(t, c, remoting.ReqQueryTopicConsumeByWho, map[string]string{"topic": "bad topic"}, nil); resp.Code != remoting.RespSystemError {
		t.Errorf("illegal topic: %d %q, want SYSTEM_ERROR", resp.Code, resp.Remark)
	}
}

func TestRuntimeInfo(t *testing.T) {
	o := testOptions(t)
	o.Version = "v9.9.9"
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "a")
	mustSend(t, c, "orders", 0, "", "b")
	waitQueue(t, b, "orders", 0, 2)
	resp := pull(t, c, "orders", 0, 0, 0, "*", 0)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("pull: %d %s", resp.Code, resp.Remark)
	}
	pulled := decodeAll(t, resp.Body)
	if len(pulled) != 2 {
		t.Fatalf("pulled %d messages", len(pulled))
	}
	resp = call(t, c, remoting.ReqGetBrokerRuntimeInfo, nil, nil)
	var body struct{ Table map[string]string }
	if resp.Code != remoting.RespSuccess || json.Unmarshal(resp.Body, &body) != nil {
		t.Fatalf("GET_BROKER_RUNTIME_INFO: %d %q %s", resp.Code, resp.Remark, resp.Body)
	}
	rt := body.Table
	for k, want := range map[string]string{"brokerVersionDesc": "halfback v9.9.9", "putMessageTimesTotal": "2",
		"halfbackGetMessageTotal": "2", "halfbackFlushType": "SYNC_FLUSH", "halfbackDiskFull": "false",
		"halfbackTransactionsPending": "0", "dispatchBehindBytes": "0", "commitLogMinOffset": "0",
		"brokerActive": "true", "earliestMessageTimeStamp": strconv.FormatInt(pulled[0].StoreTimestamp, 10)} {
		if rt[k] != want {
			t.Errorf("%s = %q, want %q", k, rt[k], want)
		}
	}
	if !strings.HasPrefix(rt["runtime"], "[ 0 days, 0 hours, ") || rt["commitLogMaxOffset"] == "0" || rt["bootTimestamp"] == "" {
		t.Errorf("runtime info %v", rt)
	}
	// mqadmin clusterList reads the first of the three figures as the
	// broker's in and out rates.
	for _, k := range []string{"putTps", "getTransferredTps"} {
		f := strings.Fields(rt[k])
		if len(f) != 3 {
			t.Fatalf("%s = %q, want three rates", k, rt[k])
		}
		if v, err := strconv.ParseFloat(f[0], 64); err != nil || v <= 0 {
			t.Errorf("%s = %q: two messages since the start, want a positive rate", k, rt[k])
		}
	}
	if got := runtimeString(26*time.Hour + 3*time.Minute + 4*time.Second); got != "[ 1 days, 2 hours, 3 minutes, 4 seconds ]" {
		t.Errorf("runtimeString = %q", got)
	}
}

// The tps figures are the counters' rates over the last 10 s, minute and
// 10 minutes, from the samples taken once a second; while the broker is
// younger than a window, over its whole life.
func TestRateSamplesTps(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var r rateSamples
	if put, got := r.tps(rateSample{at: t0, put: 5}); put != "0.00 0.00 0.00" || got != "0.00 0.00 0.00" {
		t.Fatalf("no samples: %q %q", put, got)
	}
	// 100 messages a second stored, 10 pulled, for 30 s (a sample a
	// second, a few ms late each), then 400 a second stored for 10 s.
	var put, got int64
	for i := 0; i <= 40; i++ {
		r.add(rateSample{at: t0.Add(time.Duration(i)*time.Second + time.Duration(i%3)*time.Millisecond), put: put, got: got})
		if i < 30 {
			put, got = put+100, got+10
		} else {
			put += 400
		}
	}
	now := t0.Add(40*time.Second + 500*time.Millisecond)
	p, g := r.tps(rateSample{at: now, put: put, got: got})
	// 10 s: from the sample at 30 s (4400 stored since, in 10.5 s; the
	// one at 31 s is 9.499 s old); 1 min and 10 min: from the first
	// sample, 40.5 s ago.
	want := func(a, b, c float64) string {
		return fmt.Sprintf("%.2f %.2f %.2f", a, b, c)
	}
	if wp := want(4400/10.5, 7400/40.5, 7400/40.5); p != wp {
		t.Errorf("putTps %q, want %q", p, wp)
	}
	if wg := want(0, 300/40.5, 300/40.5); g != wg {
		t.Errorf("getTransferredTps %q, want %q", g, wg)
	}
	// Only the longest window's samples are kept.
	for i := 41; i < 2000; i++ {
		r.add(rateSample{at: t0.Add(time.Duration(i) * time.Second), put: put})
	}
	if n := len(r.ring); n != 601 {
		t.Errorf("%d samples kept, want 601", n)
	}
}

// putMessageTimesTotal counts each message a send stored once, however
// it was sent: a plain send, a transaction's half message (a repeated
// half send answered with the live one stores nothing), a consumer's
// send-back (the same copy a plain send to %RETRY% stores, which counts).
func TestRuntimeInfoCountsEverySend(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	put := func() string { return b.RuntimeInfo()["putMessageTimesTotal"] }
	mustSend(t, c, "orders", 0, "", "plain")
	waitQueue(t, b, "orders", 0, 1)
	if got := put(); got != "1" {
		t.Fatalf("after a send: putMessageTimesTotal = %s, want 1", got)
	}
	sendHalfRaw(t, c, "orders", "h1")
	if got := put(); got != "2" {
		t.Errorf("after a half message: putMessageTimesTotal = %s, want 2", got)
	}
	sendHalfRaw(t, c, "orders", "h1") // the producer's retry: answered with the live half
	if got := put(); got != "2" {
		t.Errorf("after a repeated half send: putMessageTimesTotal = %s, want 2", got)
	}
	orig := readQueueMsgs(t, b, "orders", 0)[0]
	if resp := callSendBack(t, c, sendBackExt(orig.CommitLogOffset, "g", "orders", 0, 2)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	if got := put(); got != "3" {
		t.Errorf("after a send-back: putMessageTimesTotal = %s, want 3", got)
	}
}

// A send answered FLUSH_DISK_TIMEOUT stored its message (the producer
// takes it as sent, consumers get it once the flush ends): it counts, in
// the runtime figures and in the messages-in metric.
func TestASendWhoseFlushTimedOutCounts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	o := testOptions(t)
	o.MeterProvider = mp
	o.Store.SyncFlushTimeout = 50 * time.Millisecond
	var hold atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	o.Store.OnFlush = func(time.Duration) {
		if hold.Load() {
			<-release
		}
	}
	b := startBroker(t, o)
	c := dial(t, b)
	hold.Store(true)
	resp := call(t, c, remoting.ReqSendMessage, sendExt("orders", 0, ""), []byte("slow"))
	if resp.Code != remoting.RespFlushDiskTimeout {
		t.Fatalf("send with a stuck flush: %d %q, want FLUSH_DISK_TIMEOUT", resp.Code, resp.Remark)
	}
	hold.Store(false)
	unblock()
	waitQueue(t, b, "orders", 0, 1)
	if got := b.RuntimeInfo()["putMessageTimesTotal"]; got != "1" {
		t.Errorf("putMessageTimesTotal = %s after a stored send whose flush timed out, want 1", got)
	}
	collect(t, reader).want(t, "halfback.broker.messages.in", 1, "messaging.destination.name", "orders")
}
