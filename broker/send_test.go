package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// sendExt returns SEND_MESSAGE (V1) header fields as the Go client sets them.
func sendExt(topic string, qid int, props string) map[string]string {
	return map[string]string{
		"producerGroup": "pg", "topic": topic, "queueId": strconv.Itoa(qid), "sysFlag": "0",
		"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0", "reconsumeTimes": "0",
		"unitMode": "false", "maxReconsumeTimes": "0", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"batch": "false", "properties": props,
	}
}

// sendExtV2 returns the same fields under SEND_MESSAGE_V2's short names.
func sendExtV2(topic string, qid int, props string) map[string]string {
	return map[string]string{
		"a": "pg", "b": topic, "c": "TBW102", "d": "4", "e": strconv.Itoa(qid), "f": "0",
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "i": props, "j": "0", "k": "false", "l": "0", "m": "false",
	}
}

// mustSend sends one message and fails unless it is stored.
func mustSend(t testing.TB, c *remoting.Conn, topic string, qid int, props string, body string) *remoting.Command {
	t.Helper()
	resp := call(t, c, remoting.ReqSendMessage, sendExt(topic, qid, props), []byte(body))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("send to %s: code %d %q", topic, resp.Code, resp.Remark)
	}
	return resp
}

// waitQueue waits until topic/queue holds n messages (dispatch follows
// the acknowledgement asynchronously).
func waitQueue(t *testing.T, b *Broker, topic string, qid int32, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages in %s/%d", n, topic, qid), func() bool {
		_, hi := b.Store().QueueBounds(topic, qid)
		return hi >= n
	})
}

// props encodes name/value pairs in the order given, as a client would.
func props(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + "\x01" + kv[i+1] + "\x02")
	}
	return b.String()
}

// batchBody encodes messages as the Go client's MarshalMessageBatch does.
func batchBody(bodies []string, propsList []string) []byte {
	var out []byte
	for i, body := range bodies {
		p := propsList[i]
		size := 20 + len(body) + 2 + len(p)
		out = binary.BigEndian.AppendUint32(out, uint32(size))
		out = binary.BigEndian.AppendUint32(out, 0) // magic
		out = binary.BigEndian.AppendUint32(out, 0) // body CRC
		out = binary.BigEndian.AppendUint32(out, uint32(i))
		out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
		out = append(out, body...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out
}

func TestSendV1V2BatchThenPull(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)

	r1 := mustSend(t, c, "orders", 1, props("UNIQ_KEY", "U1", "TAGS", "a"), "one")
	if r1.Ext("queueId") != "1" || r1.Ext("queueOffset") != "0" || r1.Ext("msgId") == "" {
		t.Fatalf("V1 response ext %v", r1.ExtFields)
	}
	if r1.Ext(extMsgRegion) != defaultRegionID || r1.Ext(extTraceSwitch) != "true" {
		t.Fatalf("V1 response region/trace %v", r1.ExtFields)
	}
	r2 := call(t, c, remoting.ReqSendMessageV2, sendExtV2("orders", 1, props("UNIQ_KEY", "U2")), []byte("two"))
	if r2.Code != remoting.RespSuccess || r2.Ext("queueOffset") != "1" {
		t.Fatalf("V2: code %d %q ext %v", r2.Code, r2.Remark, r2.ExtFields)
	}
	batchHdr := sendExtV2("orders", 1, "")
	batchHdr["m"] = "true"
	r3 := call(t, c, remoting.ReqSendBatchMessage, batchHdr,
		batchBody([]string{"three", "four"}, []string{props("UNIQ_KEY", "U3"), props("UNIQ_KEY", "U4", "KEYS", "k4")}))
	if r3.Code != remoting.RespSuccess || r3.Ext("queueOffset") != "2" || len(strings.Split(r3.Ext("msgId"), ",")) != 2 {
		t.Fatalf("batch: code %d %q ext %v", r3.Code, r3.Remark, r3.ExtFields)
	}

	waitQueue(t, b, "orders", 1, 4)
	resp := pull(t, c, "orders", 1, 0, pullFlagSuspend, "", 0)
	if resp.Code != remoting.RespSuccess || resp.Ext("nextBeginOffset") != "4" || resp.Ext("maxOffset") != "4" || resp.Ext("minOffset") != "0" {
		t.Fatalf("pull: code %d %q ext %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	msgs := decodeAll(t, resp.Body)
	want := []string{"one", "two", "three", "four"}
	if len(msgs) != len(want) {
		t.Fatalf("pulled %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if string(m.Body) != want[i] || m.QueueOffset != int64(i) || m.QueueID != 1 || m.Topic != "orders" {
			t.Errorf("message %d: body %q offset %d queue %d topic %s", i, m.Body, m.QueueOffset, m.QueueID, m.Topic)
		}
		if u := m.Property(message.PropertyUniqKey); u != "U"+strconv.Itoa(i+1) {
			t.Errorf("message %d: UNIQ_KEY %q", i, u)
		}
		if !m.BornHost.Addr().IsLoopback() || m.BornHost.Port() == 0 {
			t.Errorf("message %d: born host %v", i, m.BornHost)
		}
	}
	if msgs[3].Flag != 1 || msgs[3].Property("KEYS") != "k4" {
		t.Errorf("batch element: flag %d keys %q", msgs[3].Flag, msgs[3].Property("KEYS"))
	}
	if got := r1.Ext("msgId"); got != msgs[0].MsgID() {
		t.Errorf("msgId %s, record's offset id %s", got, msgs[0].MsgID())
	}

	// From the middle, and past the end.
	resp = pull(t, c, "orders", 1, 2, 0, "", 0)
	if got := decodeAll(t, resp.Body); len(got) != 2 || string(got[0].Body) != "three" {
		t.Fatalf("pull from 2: %d messages", len(got))
	}
	if resp = pull(t, c, "orders", 1, 4, 0, "", 0); resp.Code != remoting.RespPullNotFound || resp.Ext("nextBeginOffset") != "4" {
		t.Fatalf("pull at max: code %d ext %v", resp.Code, resp.ExtFields)
	}
}

func TestSendKeepsPropertiesByteForByte(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	p := props("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "zeta", "1", "UNIQ_KEY", "AB", "alpha", "x y")
	mustSend(t, c, "traced", 0, p, "body")
	waitQueue(t, b, "traced", 0, 1)
	msgs := decodeAll(t, pull(t, c, "traced", 0, 0, 0, "", 0).Body)
	if len(msgs) != 1 {
		t.Fatalf("pulled %d messages", len(msgs))
	}
	// The broker appends its cluster's name, as RocketMQ does.
	if got, want := message.StripCRCSlot(msgs[0].Properties), p+"CLUSTER\x01DefaultCluster\x02"; got != want {
		t.Fatalf("properties changed:\n got %q\nwant %q", got, want)
	}
}

// Every stored message names the broker's cluster (CLUSTER), replacing
// whatever the producer put there: a request-reply responder builds its
// reply's topic from it.
func TestSendStampsTheCluster(t *testing.T) {
	o := testOptions(t)
	o.ClusterName = "payments"
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "stamped", 0, props("a", "1"), "plain")
	mustSend(t, c, "stamped", 0, props("CLUSTER", "forged", "b", "2"), "forged")
	waitQueue(t, b, "stamped", 0, 2)
	msgs := decodeAll(t, pull(t, c, "stamped", 0, 0, 0, "", 0).Body)
	if len(msgs) != 2 {
		t.Fatalf("pulled %d messages", len(msgs))
	}
	for _, m := range msgs {
		if got := m.Property("CLUSTER"); got != "payments" {
			t.Errorf("%s: CLUSTER %q, want payments", m.Body, got)
		}
	}
	if got := msgs[1].Property("b"); got != "2" {
		t.Errorf("forged: b %q, want 2", got)
	}
}

// A properties string whose last pair has no trailing 0x02 (the separator
// is a terminator in the clients, but RocketMQ 5's broker adds it when it
// is missing) must keep its last property's value: the broker's checksum
// slot must not be glued onto it.
func TestPropertiesWithoutTrailingSeparatorKeepTheirLastValue(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	p := "KEYS\x01k1\x02COLOR\x01red" // no trailing \x02
	mustSend(t, c, "noterm", 0, p, "body")
	waitQueue(t, b, "noterm", 0, 1)
	msgs := decodeAll(t, pull(t, c, "noterm", 0, 0, 0, "", 0).Body)
	if len(msgs) != 1 {
		t.Fatalf("pulled %d messages", len(msgs))
	}
	// What a Go or Java client parses: the record's raw properties.
	raw := rawProps(t, pullBody(t, c, "noterm", 0), "noterm")
	if got := message.ParseProperties(raw)["COLOR"]; got != "red" {
		t.Errorf("client sees COLOR = %q, want %q (raw properties %q)", got, "red", raw)
	}
	// The same through a batch element.
	resp := call(t, c, remoting.ReqSendBatchMessage, sendExtV2("noterm", 1, ""), batchBody([]string{"a"}, []string{"COLOR\x01blue"}))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("batch send: %d %q", resp.Code, resp.Remark)
	}
	waitQueue(t, b, "noterm", 1, 1)
	raw = rawProps(t, pullBody(t, c, "noterm", 1), "noterm")
	if got := message.ParseProperties(raw)["COLOR"]; got != "blue" {
		t.Errorf("client sees batch element COLOR = %q, want %q (raw properties %q)", got, "blue", raw)
	}
}

func pullBody(t *testing.T, c *remoting.Conn, topic string, qid int) []byte {
	t.Helper()
	resp := pull(t, c, topic, qid, 0, 0, "", 0)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("pull %s/%d: %d %q", topic, qid, resp.Code, resp.Remark)
	}
	return resp.Body
}

// rawProps returns the properties of the single record in body as stored,
// without halfback's own decoder (which hides the checksum slot): the
// bytes after topicLen|topic|propsLen.
func rawProps(t *testing.T, body []byte, topic string) string {
	t.Helper()
	i := bytes.LastIndex(body, append([]byte{byte(len(topic))}, topic...))
	if i < 0 {
		t.Fatalf("topic not found in record")
	}
	pos := i + 1 + len(topic)
	n := int(binary.BigEndian.Uint16(body[pos:]))
	return string(body[pos+2 : pos+2+n])
}

func TestSendQueueSelection(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	resp := mustSend(t, c, "pick", -1, "", "x")
	if q, err := strconv.Atoi(resp.Ext("queueId")); err != nil || q < 0 || q >= DefaultQueueNums {
		t.Fatalf("queueId -1 was sent to %q", resp.Ext("queueId"))
	}
	// A queue the topic does not have is refused, never another queue: a
	// producer with a stale route would otherwise break per-key order.
	r := call(t, c, remoting.ReqSendMessageV2, map[string]string{"a": "pg", "b": "pick", "e": "99", "f": "0", "g": "0", "h": "0"}, []byte("x"))
	if r.Code != remoting.RespSystemError || !strings.Contains(r.Remark, "queueId[99] is illegal") {
		t.Fatalf("send to queue 99 of a 4-queue topic = %d %q", r.Code, r.Remark)
	}
}

func TestSendDelayed(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	start := time.Now()
	mustSend(t, c, "later", 0, props("DELAY", "1", "UNIQ_KEY", "D1"), "due") // level 1 = 100 ms in testOptions
	if resp := pull(t, c, "later", 0, 0, 0, "", 0); resp.Code == remoting.RespSuccess {
		if time.Since(start) < 100*time.Millisecond {
			t.Fatalf("delayed message visible %v after the send", time.Since(start))
		}
	}
	var got []message.Ext
	waitFor(t, "delayed message", func() bool {
		resp := pull(t, c, "later", 0, 0, 0, "", 0)
		if resp.Code != remoting.RespSuccess {
			return false
		}
		got = decodeAll(t, resp.Body)
		return true
	})
	if len(got) != 1 || string(got[0].Body) != "due" || got[0].Property(message.PropertyUniqKey) != "D1" {
		t.Fatalf("delivered %+v", got)
	}
	if got[0].StoreTimestamp < start.UnixMilli()+100 {
		t.Fatalf("delivered at %d, sent at %d: earlier than the 100 ms delay", got[0].StoreTimestamp, start.UnixMilli())
	}
	if _, ok := message.Property(got[0].Properties, message.PropertyDelayTimeLevel); ok {
		t.Errorf("delivered message still has DELAY")
	}
}

func TestSendBadInput(t *testing.T) {
	o := testOptions(t)
	o.Store.MaxMessageSize = 1024
	b := startBroker(t, o)
	c := dial(t, b)

	missing := sendExt("t", 0, "")
	delete(missing, "topic")
	badQueue := sendExt("t", 0, "")
	badQueue["queueId"] = "abc"
	emptyQueue := sendExtV2("t", 0, "")
	emptyQueue["e"] = ""
	txBatch := sendExtV2("t", 0, props("TRAN_MSG", "true", "PGROUP", "pg"))
	txCommit := sendExt("t", 0, "")
	txCommit["sysFlag"] = strconv.Itoa(int(message.TransactionCommitType))
	badDelay := sendExt("t", 0, props("DELAY", "soon"))
	delayBatch := sendExtV2("t", 0, "")
	cases := []struct {
		name string
		code int16
		req  int16
		ext  map[string]string
		body []byte
	}{
		{"illegal topic", remoting.RespSystemError, remoting.ReqSendMessage, sendExt("bad topic!", 0, ""), []byte("x")},
		{"128-char topic", remoting.RespSystemError, remoting.ReqSendMessage, sendExt(strings.Repeat("a", 128), 0, ""), []byte("x")},
		{"empty topic", remoting.RespSystemError, remoting.ReqSendMessage, sendExt("", 0, ""), []byte("x")},
		{"body over MaxMessageSize", remoting.RespMessageIllegal, remoting.ReqSendMessage, sendExt("t", 0, ""), make([]byte, 1025)},
		{"missing topic", remoting.RespSystemError, remoting.ReqSendMessage, missing, []byte("x")},
		{"non-numeric queueId", remoting.RespSystemError, remoting.ReqSendMessage, badQueue, []byte("x")},
		{"empty V2 queueId", remoting.RespSystemError, remoting.ReqSendMessageV2, emptyQueue, []byte("x")},
		{"no header", remoting.RespSystemError, remoting.ReqSendMessageV2, nil, []byte("x")},
		{"schedule topic", remoting.RespNoPermission, remoting.ReqSendMessage, sendExt("SCHEDULE_TOPIC_XXXX", 0, props("REAL_TOPIC", "t")), []byte("x")},
		{"half topic", remoting.RespNoPermission, remoting.ReqSendMessage, sendExt("RMQ_SYS_TRANS_HALF_TOPIC", 0, ""), []byte("x")},
		{"parked half topic", remoting.RespNoPermission, remoting.ReqSendMessage, sendExt("TRANS_CHECK_MAX_TIME_TOPIC", 0, ""), []byte("x")},
		// The topic table drops rmq_sys_ topics it does not own on restart:
		// an acknowledged send there would become unreachable.
		{"rmq_sys_ topic", remoting.RespNoPermission, remoting.ReqSendMessage, sendExt("rmq_sys_anything", 0, ""), []byte("x")},
		{"transactional batch", remoting.RespMessageIllegal, remoting.ReqSendBatchMessage, txBatch, batchBody([]string{"a"}, []string{""})},
		{"commit sysFlag in a send", remoting.RespMessageIllegal, remoting.ReqSendMessage, txCommit, []byte("x")},
		{"bad delay level", remoting.RespMessageIllegal, remoting.ReqSendMessage, badDelay, []byte("x")},
		{"truncated batch", remoting.RespMessageIllegal, remoting.ReqSendBatchMessage, sendExtV2("t", 0, ""), []byte{0, 0, 0, 40, 0}},
		{"lying batch length", remoting.RespMessageIllegal, remoting.ReqSendBatchMessage, sendExtV2("t", 0, ""), badBatchLength()},
		{"empty batch", remoting.RespMessageIllegal, remoting.ReqSendBatchMessage, sendExtV2("t", 0, ""), nil},
		{"delayed batch", remoting.RespMessageIllegal, remoting.ReqSendBatchMessage, delayBatch,
			batchBody([]string{"a", "b"}, []string{props("DELAY", "1"), ""})},
	}
	for _, tc := range cases {
		resp := call(t, c, tc.req, tc.ext, tc.body)
		if resp.Code != tc.code {
			t.Errorf("%s: code %d %q, want %d", tc.name, resp.Code, resp.Remark, tc.code)
		}
	}
	if _, maxOff := b.Store().QueueBounds("t", 0); maxOff != 0 {
		t.Fatalf("refused sends stored %d messages", maxOff)
	}
	if _, ok := b.topics.get("rmq_sys_anything"); ok {
		t.Fatal("a refused send created rmq_sys_anything")
	}
	// The broker keeps serving.
	mustSend(t, c, "t", 0, "", "fine")
}

func badBatchLength() []byte {
	b := batchBody([]string{"abc"}, []string{""})
	binary.BigEndian.PutUint32(b[16:], 1000) // body length past the element
	return b
}

func TestSendErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int16
	}{
		{fmt.Errorf("x: %w", store.ErrFlushTimeout), remoting.RespFlushDiskTimeout},
		{fmt.Errorf("x: %w", store.ErrWriteFailed), remoting.RespServiceNotAvailable},
		{store.ErrClosed, remoting.RespServiceNotAvailable},
		{fmt.Errorf("x: %w: %w", store.ErrSegmentNotReady, syscall.ENOSPC), remoting.RespServiceNotAvailable},
		{store.ErrMessageTooLarge, remoting.RespMessageIllegal},
		{store.ErrBadMessage, remoting.RespMessageIllegal},
		{errors.New("other"), remoting.RespSystemError},
	} {
		if got := sendErrorCode(tc.err); got != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.code)
		}
	}
	req := remoting.NewRequest(remoting.ReqSendMessage, nil)
	res := []store.AppendResult{{MsgID: "ID", QueueOffset: 7}}
	if r := sendResponse(req, 2, res, store.ErrFlushTimeout); r.Code != remoting.RespFlushDiskTimeout || r.Ext("msgId") != "ID" || r.Ext("queueOffset") != "7" {
		t.Errorf("flush timeout response %d %v", r.Code, r.ExtFields)
	}
	if r := sendResponse(req, 2, res, store.ErrWriteFailed); r.Code == remoting.RespSuccess || r.Ext("msgId") != "" {
		t.Errorf("write failure response %d %v", r.Code, r.ExtFields)
	}
}

func TestDecodeBatchMergesRequestProperties(t *testing.T) {
	msgs, err := decodeBatch(message.Message{Topic: "t"}, batchBody([]string{"a"}, []string{props("A", "1")}), props("A", "2", "WAIT", "true"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msgs[0].Properties, props("A", "1", "WAIT", "true"); got != want {
		t.Fatalf("properties %q, want %q", got, want)
	}
}

// A second broker on a data directory in use fails to open, saying so,
// and the first goes on serving, whether or not the lifecycle record
// (which has a lock of its own) is on.
func TestSecondBrokerOnADataDirectoryInUse(t *testing.T) {
	for _, lifecycle := range []bool{true, false} {
		o := testOptions(t)
		o.DisableLifecycle = !lifecycle
		b := startBroker(t, o)
		c := dial(t, b)
		mustSend(t, c, "busy", 0, "", "first")
		o2 := o
		o2.ListenAddr = "127.0.0.1:0"
		if second, err := Open(o2); !errors.Is(err, store.ErrLocked) {
			if second != nil {
				second.Close()
			}
			t.Fatalf("lifecycle %v: second broker on %s: %v, want store.ErrLocked", lifecycle, o.Store.Dir, err)
		}
		mustSend(t, c, "busy", 0, "", "second")
		waitQueue(t, b, "busy", 0, 2)
	}
}

// A batch element's own properties win over the request's; a name the
// request gives twice counts with its last value, as clients read it.
func TestMergeProperties(t *testing.T) {
	got := mergeProperties("A\x011\x02", "A\x019\x02B\x012\x02B\x013\x02")
	for name, want := range map[string]string{"A": "1", "B": "3"} {
		if v, _ := message.Property(got, name); v != want || message.ParseProperties(got)[name] != want {
			t.Errorf("mergeProperties: %s = %q (parsed %q), want %q in %q", name, v, message.ParseProperties(got)[name], want, got)
		}
	}
}
