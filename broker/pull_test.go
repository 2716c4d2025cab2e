package broker

import (
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// pullExt returns PULL_MESSAGE header fields as the Go push consumer sets
// them; a non-empty sub adds the subscription flag.
func pullExt(topic string, qid int, offset int64, sysFlag int32, sub string, suspendMs int) map[string]string {
	if sub != "" {
		sysFlag |= pullFlagSubscription
	}
	return map[string]string{
		"consumerGroup": "cg", "topic": topic, "queueId": strconv.Itoa(qid),
		"queueOffset": strconv.FormatInt(offset, 10), "maxMsgNums": "32", "sysFlag": strconv.Itoa(int(sysFlag)),
		"commitOffset": "0", "suspendTimeoutMillis": strconv.Itoa(suspendMs), "subscription": sub,
		"subVersion": "0", "expressionType": "TAG",
	}
}

func pull(t *testing.T, c *remoting.Conn, topic string, qid int, offset int64, sysFlag int32, sub string, suspendMs int) *remoting.Command {
	t.Helper()
	return call(t, c, remoting.ReqPullMessage, pullExt(topic, qid, offset, sysFlag, sub, suspendMs), nil)
}

func decodeAll(t *testing.T, body []byte) []message.Ext {
	t.Helper()
	msgs, err := message.DecodeAll(body)
	if err != nil {
		t.Fatalf("decode pull body: %v", err)
	}
	return msgs
}

func TestPullTagFilter(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i, tag := range []string{"a", "b", "c", "", "b"} {
		p := ""
		if tag != "" {
			p = props("TAGS", tag)
		}
		mustSend(t, c, "tagged", 0, p, strconv.Itoa(i))
	}
	waitQueue(t, b, "tagged", 0, 5)
	bodies := func(resp *remoting.Command) string {
		s := ""
		for _, m := range decodeAll(t, resp.Body) {
			s += string(m.Body)
		}
		return s
	}
	for _, tc := range []struct{ sub, want string }{
		{"*", "01234"},
		{"b", "14"},
		{"a || c", "02"},
		{" c ||  b ", "124"},
	} {
		resp := pull(t, c, "tagged", 0, 0, 0, tc.sub, 0)
		if resp.Code != remoting.RespSuccess || bodies(resp) != tc.want || resp.Ext("nextBeginOffset") != "5" {
			t.Errorf("sub %q: code %d got %q next %s, want %q", tc.sub, resp.Code, bodies(resp), resp.Ext("nextBeginOffset"), tc.want)
		}
	}
	// Nothing matches: PULL_RETRY_IMMEDIATELY with the offset moved past the scan.
	resp := pull(t, c, "tagged", 0, 0, 0, "zzz", 0)
	if resp.Code != remoting.RespPullRetryImmediately || resp.Ext("nextBeginOffset") != "5" || resp.Remark != "NO_MATCHED_MESSAGE" {
		t.Fatalf("no match: code %d %q ext %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	// SQL92 is not supported.
	ext := pullExt("tagged", 0, 0, 0, "a > 1", 0)
	ext["expressionType"] = "SQL92"
	if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSystemError {
		t.Fatalf("SQL92: code %d", resp.Code)
	}
}

func TestPullMaxMessages(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := 0; i < 40; i++ {
		mustSend(t, c, "many", 0, "", "m")
	}
	waitQueue(t, b, "many", 0, 40)
	ext := pullExt("many", 0, 0, 0, "", 0)
	ext["maxMsgNums"] = "1000"
	resp := call(t, c, remoting.ReqPullMessage, ext, nil)
	if n := len(decodeAll(t, resp.Body)); n != maxPullMessages || resp.Ext("nextBeginOffset") != "32" {
		t.Fatalf("pulled %d messages next %s, want %d", n, resp.Ext("nextBeginOffset"), maxPullMessages)
	}
	ext["maxMsgNums"] = "3"
	if n := len(decodeAll(t, call(t, c, remoting.ReqPullMessage, ext, nil).Body)); n != 3 {
		t.Fatalf("pulled %d messages, want 3", n)
	}
}

func TestPullOffsetMoved(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := 0; i < 3; i++ {
		mustSend(t, c, "moved", 0, "", "x")
	}
	waitQueue(t, b, "moved", 0, 3)
	resp := pull(t, c, "moved", 0, 100, 0, "", 0)
	if resp.Code != remoting.RespPullOffsetMoved || resp.Ext("nextBeginOffset") != "3" || resp.Remark != "OFFSET_OVERFLOW_BADLY" {
		t.Fatalf("overflow: code %d %q ext %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	// A queue that never had a message: offset 0 is "not found", any other moved to 0.
	if resp = pull(t, c, "moved", 2, 0, 0, "", 0); resp.Code != remoting.RespPullNotFound {
		t.Fatalf("empty queue at 0: code %d", resp.Code)
	}
	if resp = pull(t, c, "moved", 2, 7, 0, "", 0); resp.Code != remoting.RespPullOffsetMoved || resp.Ext("nextBeginOffset") != "0" {
		t.Fatalf("empty queue at 7: code %d ext %v", resp.Code, resp.ExtFields)
	}
}

func TestPullBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "pb", 0, "", "x")
	waitQueue(t, b, "pb", 0, 1)

	noGroup := pullExt("pb", 0, 0, 0, "", 0)
	delete(noGroup, "consumerGroup")
	badOffset := pullExt("pb", 0, 0, 0, "", 0)
	badOffset["queueOffset"] = "12x"
	badQueue := pullExt("pb", 0, 0, 0, "", 0)
	badQueue["queueId"] = "one"
	cases := []struct {
		name string
		ext  map[string]string
		code int16
	}{
		{"missing consumerGroup", noGroup, remoting.RespSystemError},
		{"non-numeric queueOffset", badOffset, remoting.RespSystemError},
		{"non-numeric queueId", badQueue, remoting.RespSystemError},
		{"no header", nil, remoting.RespSystemError},
		{"unknown topic", pullExt("nope", 0, 0, 0, "", 0), remoting.RespTopicNotExist},
		{"queue out of range", pullExt("pb", 9, 0, 0, "", 0), remoting.RespSystemError},
		{"negative queue", pullExt("pb", -1, 0, 0, "", 0), remoting.RespSystemError},
	}
	for _, tc := range cases {
		if resp := call(t, c, remoting.ReqPullMessage, tc.ext, nil); resp.Code != tc.code {
			t.Errorf("%s: code %d %q, want %d", tc.name, resp.Code, resp.Remark, tc.code)
		}
	}
	if resp := pull(t, c, "pb", 0, 0, 0, "", 0); resp.Code != remoting.RespSuccess {
		t.Fatalf("broker stopped serving: code %d", resp.Code)
	}
}

func TestPullCommitsOffset(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := 0; i < 3; i++ {
		mustSend(t, c, "co", 0, "", "x")
	}
	waitQueue(t, b, "co", 0, 3)
	ext := pullExt("co", 0, 2, pullFlagCommitOffset, "*", 0)
	ext["commitOffset"] = "2"
	if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("pull: code %d %q", resp.Code, resp.Remark)
	}
	q := call(t, c, remoting.ReqQueryConsumerOffset, map[string]string{"consumerGroup": "cg", "topic": "co", "queueId": "0"}, nil)
	if q.Code != remoting.RespSuccess || q.Ext("offset") != "2" {
		t.Fatalf("committed offset: code %d ext %v", q.Code, q.ExtFields)
	}
	// Without the flag the offset is left alone.
	ext = pullExt("co", 0, 3, 0, "*", 0)
	ext["commitOffset"] = "3"
	call(t, c, remoting.ReqPullMessage, ext, nil)
	if q = call(t, c, remoting.ReqQueryConsumerOffset, map[string]string{"consumerGroup": "cg", "topic": "co", "queueId": "0"}, nil); q.Ext("offset") != "2" {
		t.Fatalf("offset moved without the commit flag: %v", q.ExtFields)
	}
}

// A pull naming a consumer group no client may have (empty, or with a
// character outside [%|a-zA-Z0-9_-]) is refused as RocketMQ refuses it
// (SUBSCRIPTION_GROUP_NOT_EXIST), and the offset it carries is not
// committed: UPDATE_CONSUMER_OFFSET refuses such a group, and the offsets
// file would otherwise keep every name a client makes up.
func TestPullRefusesInvalidGroup(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "ig", 0, "", "x")
	waitQueue(t, b, "ig", 0, 1)
	for _, group := range []string{"", "bad group", "g@x", strings.Repeat("g", message.MaxGroupLength+1)} {
		ext := pullExt("ig", 0, 0, pullFlagCommitOffset, "", 0)
		ext["consumerGroup"], ext["commitOffset"] = group, "1"
		if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSubscriptionGroupNotExist {
			t.Errorf("pull for group %.20q: code %d %q, want SUBSCRIPTION_GROUP_NOT_EXIST", group, resp.Code, resp.Remark)
		}
		if off, ok, _ := b.offsetTable().get(group, "ig", 0); ok {
			t.Errorf("pull for group %.20q committed offset %d", group, off)
		}
	}
}

// A pull without the subscription flag (the Go push consumer's default)
// filters by the subscription the group's heartbeat registered.
func TestPullUsesHeartbeatSubscription(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i, tag := range []string{"a", "x", "b"} {
		mustSend(t, c, "hb", 0, props("TAGS", tag), strconv.Itoa(i))
	}
	waitQueue(t, b, "hb", 0, 3)
	count := func() int { return len(decodeAll(t, pull(t, c, "hb", 0, 0, 0, "", 0).Body)) }
	if n := count(); n != 3 {
		t.Fatalf("unknown group: %d messages, want all 3", n)
	}
	hb := `{"clientID":"127.0.0.1@1","producerDataSet":[],"consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY",` +
		`"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,"subscriptionDataSet":[` +
		`{"classFilterMode":false,"topic":"hb","subString":"a || b","tagsSet":["a","b"],"codeSet":["97","98"],"subVersion":1,"expressionType":"TAG"}]}]}`
	if resp := call(t, c, remoting.ReqHeartBeat, nil, []byte(hb)); resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: code %d %q", resp.Code, resp.Remark)
	}
	if n := count(); n != 2 {
		t.Fatalf("group subscribed to a || b: %d messages, want 2", n)
	}
}

// A pull carrying a newer subVersion than the group's registered
// subscription is told SUBSCRIPTION_NOT_LATEST (the Java client sends its
// subscription's version; it waits for its next heartbeat and pulls
// again), not filtered with the old subscription.
func TestPullNewerSubVersionNotLatest(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "sv", 0, props("TAGS", "b"), "x")
	waitQueue(t, b, "sv", 0, 1)
	hbOK(t, c, subscriptionHeartbeat("sv", "a", `"a"`, `"97"`, 1))
	ext := pullExt("sv", 0, 0, 0, "", 0)
	ext["subVersion"] = "5"
	if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSubscriptionNotLatest {
		t.Fatalf("pull with a newer subVersion: code %d %q, want SUBSCRIPTION_NOT_LATEST", resp.Code, resp.Remark)
	}
	// The same version, or an older one, is filtered as registered.
	for _, v := range []string{"1", "0"} {
		ext["subVersion"] = v
		if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespPullRetryImmediately {
			t.Fatalf("pull with subVersion %s: code %d %q, want PULL_RETRY_IMMEDIATELY (tag b filtered out)", v, resp.Code, resp.Remark)
		}
	}
}

// A pull with the commit flag but no commitOffset field (RocketMQ's
// PullMessageRequestHeader requires it) is refused, and the group's
// committed offset stays: it was taken as 0, which sent the group back to
// the start of the queue.
func TestPullCommitFlagWithoutCommitOffset(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := 0; i < 5; i++ {
		mustSend(t, c, "nc", 0, "", "x")
	}
	waitQueue(t, b, "nc", 0, 5)
	if resp := updateOffset(t, c, "cg", "nc", 0, 4); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: code %d %q", resp.Code, resp.Remark)
	}
	for _, v := range []string{"", "absent"} {
		ext := pullExt("nc", 0, 4, pullFlagCommitOffset, "", 0)
		if v == "absent" {
			delete(ext, "commitOffset")
		} else {
			ext["commitOffset"] = v
		}
		if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSystemError {
			t.Errorf("pull with commitOffset %q: code %d %q, want SYSTEM_ERROR", v, resp.Code, resp.Remark)
		}
		if code, off := queryOffset(t, c, offsetExt("cg", "nc", 0)); code != remoting.RespSuccess || off != 4 {
			t.Fatalf("after a pull with commitOffset %q: committed offset %d (code %d), want 4", v, off, code)
		}
	}
	// Without the flag the field is not needed.
	ext := pullExt("nc", 0, 4, 0, "", 0)
	delete(ext, "commitOffset")
	if resp := call(t, c, remoting.ReqPullMessage, ext, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("pull without the commit flag nor commitOffset: code %d %q", resp.Code, resp.Remark)
	}
}
