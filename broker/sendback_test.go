package broker

import (
	"strconv"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
)

// readQueueMsgs decodes every message of topic/qid.
func readQueueMsgs(t *testing.T, b *Broker, topic string, qid int32) []message.Ext {
	t.Helper()
	res, err := b.store.GetMessages(topic, qid, 0, store.GetOptions{MaxMessages: 1000})
	if err != nil {
		t.Fatalf("GetMessages %s/%d: %v", topic, qid, err)
	}
	msgs, err := message.DecodeAll(res.Records)
	if err != nil {
		t.Fatalf("decode %s/%d: %v", topic, qid, err)
	}
	return msgs
}

// waitQueueMsgs waits until topic/qid holds n messages and returns them.
func waitQueueMsgs(t *testing.T, b *Broker, topic string, qid int32, n int) []message.Ext {
	t.Helper()
	waitFor(t, topic+" to fill", func() bool { _, hi := b.store.QueueBounds(topic, qid); return hi >= int64(n) })
	msgs := readQueueMsgs(t, b, topic, qid)
	if len(msgs) != n {
		t.Fatalf("%s/%d holds %d messages, want %d", topic, qid, len(msgs), n)
	}
	return msgs
}

func sendBackExt(offset int64, group, originTopic string, delayLevel, maxTimes int) map[string]string {
	ext := map[string]string{"offset": strconv.FormatInt(offset, 10), "group": group, "delayLevel": strconv.Itoa(delayLevel),
		"originMsgId": "UNIQ0", "originTopic": originTopic, "unitMode": "false"}
	if maxTimes >= 0 {
		ext["maxReconsumeTimes"] = strconv.Itoa(maxTimes)
	}
	return ext
}

func callSendBack(t *testing.T, c *remoting.Conn, ext map[string]string) *remoting.Command {
	t.Helper()
	return call(t, c, remoting.ReqConsumerSendMsgBack, ext, nil)
}

func TestSendBackRetryThenDLQ(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	offs := appendTestMsgs(t, b, "orders", 0, 1)
	orig, err := b.store.ReadMessage(offs[0])
	if err != nil {
		t.Fatal(err)
	}

	// First failure: %RETRY%g queue 0, reconsumeTimes 1, delay level 3 + 0.
	if resp := callSendBack(t, c, sendBackExt(offs[0], "g", "orders", 0, 2)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	sched := waitQueueMsgs(t, b, delay.ScheduleTopic, 2, 1)[0] // level 3 is queue 2
	if sched.Property(message.PropertyRealTopic) != "%RETRY%g" || sched.Property(message.PropertyDelayTimeLevel) != "3" {
		t.Fatalf("scheduled retry: REAL_TOPIC %q DELAY %q", sched.Property(message.PropertyRealTopic), sched.Property(message.PropertyDelayTimeLevel))
	}
	retry := waitQueueMsgs(t, b, "%RETRY%g", 0, 1)[0]
	checkSentBackCopy(t, &orig, &retry, 1)
	if tc, ok := b.topics.get("%RETRY%g"); !ok || tc.WriteQueueNums != 1 {
		t.Fatalf("retry topic = %+v %v", tc, ok)
	}

	// The retry fails too: level 3 + 1 (queue 3); the first ids are kept.
	if resp := callSendBack(t, c, sendBackExt(retry.CommitLogOffset, "g", "orders", 0, 2)); resp.Code != remoting.RespSuccess {
		t.Fatalf("second send back: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, delay.ScheduleTopic, 3, 1)
	retry2 := waitQueueMsgs(t, b, "%RETRY%g", 0, 2)[1]
	checkSentBackCopy(t, &orig, &retry2, 2)

	// reconsumeTimes 2 >= maxReconsumeTimes 2: dead-letter queue, no delay.
	if resp := callSendBack(t, c, sendBackExt(retry2.CommitLogOffset, "g", "orders", 0, 2)); resp.Code != remoting.RespSuccess {
		t.Fatalf("third send back: %d %s", resp.Code, resp.Remark)
	}
	dead := waitQueueMsgs(t, b, "%DLQ%g", 0, 1)[0]
	checkSentBackCopy(t, &orig, &dead, 3)
	if v, ok := message.Property(dead.Properties, message.PropertyDelayTimeLevel); ok {
		t.Fatalf("DLQ message carries DELAY %q", v)
	}
	if tc, ok := b.topics.get("%DLQ%g"); !ok || tc.WriteQueueNums != 1 || tc.ReadQueueNums != 1 || tc.Perm != PermRW {
		t.Fatalf("DLQ topic = %+v %v", tc, ok)
	}
}

// checkSentBackCopy checks a sent-back copy of orig.
func checkSentBackCopy(t *testing.T, orig, cp *message.Ext, reconsumed int32) {
	t.Helper()
	if cp.ReconsumeTimes != reconsumed || string(cp.Body) != string(orig.Body) || cp.BornTimestamp != orig.BornTimestamp {
		t.Errorf("copy: reconsumeTimes %d (want %d) body %q born %d", cp.ReconsumeTimes, reconsumed, cp.Body, cp.BornTimestamp)
	}
	for name, want := range map[string]string{
		message.PropertyRetryTopic:      orig.Topic,
		message.PropertyOriginMessageID: orig.MsgID(),
		message.PropertyUniqKey:         orig.Property(message.PropertyUniqKey),
		message.PropertyTags:            orig.Property(message.PropertyTags),
	} {
		if got := cp.Property(name); got != want {
			t.Errorf("copy property %s = %q, want %q", name, got, want)
		}
	}
}

func TestSendBackStraightToDLQ(t *testing.T) {
	o := testOptions(t)
	o.MaxReconsumeTimes = 1
	b := startBroker(t, o)
	c := dial(t, b)
	offs := appendTestMsgs(t, b, "orders", 0, 3)

	// A negative delay level (the Go client's orderly consumer) skips retries.
	if resp := callSendBack(t, c, sendBackExt(offs[0], "g", "orders", -1, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back -1: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, "%DLQ%g", 0, 1)

	// A send-back with retries left is retried even from a group holding
	// queue locks (as consumerSendMsgBack: only a plain send to %RETRY%
	// looks at the locks, see TestRetrySendPastLimitGoesToDLQ).
	lockQueues(t, c, "ordered", "C1", 0)
	if resp := callSendBack(t, c, sendBackExt(offs[1], "ordered", "orders", 0, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("orderly send back: %d %s", resp.Code, resp.Remark)
	}
	if sched := waitQueueMsgs(t, b, delay.ScheduleTopic, 2, 1)[0]; sched.Property(message.PropertyRealTopic) != "%RETRY%ordered" {
		t.Fatalf("a locked group's send-back scheduled for %q, want its retry topic", sched.Property(message.PropertyRealTopic))
	}

	// Without a header maxReconsumeTimes, Options.MaxReconsumeTimes (1)
	// applies: a first failure retries, the second one is dead.
	if resp := callSendBack(t, c, sendBackExt(offs[2], "h", "orders", 1, -1)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	retry := waitQueueMsgs(t, b, "%RETRY%h", 0, 1)[0] // client's level 1 honoured
	if resp := callSendBack(t, c, sendBackExt(retry.CommitLogOffset, "h", "orders", 0, -1)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	if dead := waitQueueMsgs(t, b, "%DLQ%h", 0, 1)[0]; dead.ReconsumeTimes != 2 {
		t.Fatalf("DLQ reconsumeTimes = %d", dead.ReconsumeTimes)
	}
}

func TestSendBackBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	offs := appendTestMsgs(t, b, "orders", 0, 2)
	end := b.store.MaxPhysicalOffset()

	for name, ext := range map[string]map[string]string{
		"forged offset":     sendBackExt(offs[0]+1, "g", "orders", 0, 16),
		"offset past end":   sendBackExt(end+100, "g", "orders", 0, 16),
		"negative offset":   sendBackExt(-5, "g", "orders", 0, 16),
		"other topic":       sendBackExt(offs[0], "g", "payments", 0, 16),
		"no group":          sendBackExt(offs[0], "", "orders", 0, 16),
		"bad group":         sendBackExt(offs[0], "a b", "orders", 0, 16),
		"bad delay level":   {"offset": strconv.FormatInt(offs[0], 10), "group": "g", "delayLevel": "x"},
		"bad max reconsume": {"offset": strconv.FormatInt(offs[0], 10), "group": "g", "maxReconsumeTimes": "x"},
		"no offset":         {"group": "g"},
	} {
		if resp := callSendBack(t, c, ext); resp.Code != remoting.RespSystemError {
			t.Errorf("%s: code %d, want SYSTEM_ERROR", name, resp.Code)
		}
	}
	if _, hi := b.store.QueueBounds("%RETRY%g", 0); hi != 0 {
		t.Fatalf("refused send-backs stored %d retries", hi)
	}

	// A scheduled (not yet delivered) record is not a consumer's message.
	if resp := callSendBack(t, c, sendBackExt(offs[0], "g", "orders", 0, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("valid send back after bad ones: %d %s", resp.Code, resp.Remark)
	}
	sched := waitQueueMsgs(t, b, delay.ScheduleTopic, 2, 1)[0]
	if resp := callSendBack(t, c, sendBackExt(sched.CommitLogOffset, "g", "", 0, 16)); resp.Code != remoting.RespSystemError {
		t.Fatalf("send back of a scheduled record: code %d, want SYSTEM_ERROR", resp.Code)
	}
	// A retry message may name its first topic (the Go client does).
	retry := waitQueueMsgs(t, b, "%RETRY%g", 0, 1)[0]
	if resp := callSendBack(t, c, sendBackExt(retry.CommitLogOffset, "g", "orders", 0, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back of a retry message: %d %s", resp.Code, resp.Remark)
	}
}

// A message whose properties leave no room for the retry properties is
// parked in the DLQ, not answered with an error the client would take as
// success (and then lose the message).
func TestSendBackFallsBackToDLQ(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	// 80 bytes short of the limit: room for the DLQ copy's RETRY_TOPIC and
	// ORIGIN_MESSAGE_ID (70 bytes here), not for the retry copy's DELAY,
	// REAL_TOPIC and REAL_QID on top (39 more).
	big := strings.Repeat("v", message.MaxPropertiesLength-message.CRCSlotSize-len("big\x01\x02")-80)
	res, err := b.store.Append(t.Context(), &message.Message{Topic: "orders", Body: []byte("x"),
		Properties: message.Properties{"big": big}.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if resp := callSendBack(t, c, sendBackExt(res.PhysicalOffset, "g", "orders", 0, 16)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	dlq := waitQueueMsgs(t, b, DLQTopic("g"), 0, 1)
	if string(dlq[0].Body) != "x" || dlq[0].Property("big") != big {
		t.Fatalf("DLQ copy = %q with %d property bytes", dlq[0].Body, len(dlq[0].Properties))
	}
}

// A message with no room left even for the DLQ copy's RETRY_TOPIC and
// ORIGIN_MESSAGE_ID is parked in the DLQ with its own properties. Closing
// the connection instead (as for a store failure) would be for ever: the
// client consumes it again, sends it back again, and every time loses the
// connection and whatever else was in flight on it.
func TestSendBackParksMessageWithNoRoomForDLQProperties(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	big := strings.Repeat("v", message.MaxPropertiesLength-message.CRCSlotSize-len("big\x01\x02")-10)
	res, err := b.store.Append(t.Context(), &message.Message{Topic: "orders", Body: []byte("x"),
		Properties: message.Properties{"big": big}.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	for _, maxTimes := range []int{16, 0} { // a retry first, then straight to the DLQ
		if resp := callSendBack(t, c, sendBackExt(res.PhysicalOffset, "g", "orders", 0, maxTimes)); resp.Code != remoting.RespSuccess {
			t.Fatalf("send back (max %d): %d %s", maxTimes, resp.Code, resp.Remark)
		}
	}
	for _, m := range waitQueueMsgs(t, b, DLQTopic("g"), 0, 2) {
		if string(m.Body) != "x" || m.Property("big") != big || m.ReconsumeTimes != 1 {
			t.Fatalf("DLQ copy = %q, reconsumeTimes %d, with %d property bytes", m.Body, m.ReconsumeTimes, len(m.Properties))
		}
	}
}

// TestRetrySendPastLimitGoesToDLQ covers the Java client's other way of
// retrying: a plain send to %RETRY%<group> carrying the reconsume count
// and the consumer's limit (when its send-back failed, and always from its
// orderly consumer). Past the limit (strictly, as RocketMQ's
// handleRetryAndDLQ) or from an orderly group it lands in %DLQ%<group>,
// undelayed; otherwise in the retry topic.
func TestRetrySendPastLimitGoesToDLQ(t *testing.T) {
	o := testOptions(t)
	o.MaxReconsumeTimes = 3
	b := startBroker(t, o)
	c := dial(t, b)
	send := func(code int16, group string, reconsume, limit int, body string) {
		t.Helper()
		var ext map[string]string
		if code == remoting.ReqSendMessageV2 {
			ext = sendExtV2(RetryTopic(group), 0, props("DELAY", "1", "UNIQ_KEY", body))
			ext["j"] = strconv.Itoa(reconsume)
			if ext["l"] = strconv.Itoa(limit); limit < 0 {
				delete(ext, "l")
			}
		} else {
			ext = sendExt(RetryTopic(group), 0, props("DELAY", "1", "UNIQ_KEY", body))
			ext["reconsumeTimes"] = strconv.Itoa(reconsume)
			if ext["maxReconsumeTimes"] = strconv.Itoa(limit); limit < 0 {
				delete(ext, "maxReconsumeTimes")
			}
		}
		if resp := call(t, c, code, ext, []byte(body)); resp.Code != remoting.RespSuccess {
			t.Fatalf("send %s: %d %s", body, resp.Code, resp.Remark)
		}
	}
	send(remoting.ReqSendMessageV2, "g", 2, 2, "at-limit")         // 2 > 2 is false: retried
	send(remoting.ReqSendMessageV2, "g", 3, 2, "past-limit")       // dead
	send(remoting.ReqSendMessage, "g", 5, 4, "past-limit-v1")      // dead (long field names)
	send(remoting.ReqSendMessageV2, "g", 3, -1, "at-default")      // no limit sent: MaxReconsumeTimes (3)
	send(remoting.ReqSendMessageV2, "g", 4, -1, "past-default")    // dead
	lockQueues(t, c, "ordered", "C1", 0)                           // an orderly group
	send(remoting.ReqSendMessageV2, "ordered", 0, 16, "orderly-0") // dead at once

	dead := waitQueueMsgs(t, b, "%DLQ%g", 0, 3)
	for i, want := range []string{"past-limit", "past-limit-v1", "past-default"} {
		if string(dead[i].Body) != want || dead[i].Property(message.PropertyDelayTimeLevel) != "" {
			t.Fatalf("DLQ message %d: %q with DELAY %q, want %q undelayed", i, dead[i].Body,
				dead[i].Property(message.PropertyDelayTimeLevel), want)
		}
	}
	if got := waitQueueMsgs(t, b, "%DLQ%ordered", 0, 1); string(got[0].Body) != "orderly-0" {
		t.Fatalf("orderly group's DLQ holds %q", got[0].Body)
	}
	// The two retried ones go through their delay level to the retry topic.
	retried := waitQueueMsgs(t, b, "%RETRY%g", 0, 2)
	if string(retried[0].Body) != "at-limit" || string(retried[1].Body) != "at-default" {
		t.Fatalf("retry topic holds %q, %q", retried[0].Body, retried[1].Body)
	}
}

// A parked transaction's half message is copied to TRANS_CHECK_MAX_TIME_TOPIC,
// a topic no consumer can pull. A CONSUMER_SEND_MSG_BACK naming that copy's
// offset (no originTopic) must be refused like one naming the half message
// itself: otherwise a rolled-back transaction's message is delivered to
// the group's retry topic.
func TestSendBackOfAParkedHalfCopyIsRefused(t *testing.T) {
	b, c, _, ref, _ := parkedTxn(t, "leak1")
	if r := endTxn(t, c, ref, message.TransactionRollbackType); r.Code != remoting.RespSuccess {
		t.Fatalf("rollback: %d %s", r.Code, r.Remark)
	}
	// Find the parked copy in the commit log.
	copyOff := int64(-1)
	for off := int64(0); off < b.Store().MaxPhysicalOffset(); {
		rec, err := b.Store().ReadRecord(off)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if e, _, err := message.Decode(rec); err == nil && e.Topic == txn.CheckMaxTopic {
			copyOff = off
		}
		off += int64(len(rec))
	}
	if copyOff < 0 {
		t.Fatal("no parked copy in the commit log")
	}
	r := callSendBack(t, c, sendBackExt(copyOff, "cg", "", -1, -1)) // straight to the DLQ
	if r.Code == remoting.RespSuccess {
		msgs := waitQueueMsgs(t, b, DLQTopic("cg"), 0, 1)
		t.Fatalf("send-back of the rolled-back transaction's parked copy at %d answered SUCCESS; %%DLQ%%cg now delivers body %q (UNIQ_KEY %s)",
			copyOff, msgs[0].Body, msgs[0].Property("UNIQ_KEY"))
	}
}

// A message with room for RETRY_TOPIC but not also for ORIGIN_MESSAGE_ID
// is parked in the DLQ with RETRY_TOPIC: without it `halfback dlq resend`
// (admin.ResendDLQ) cannot tell where to send the dead letter back.
func TestSendBackParkedMessageKeepsRetryTopicWhenItFits(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	room := len(message.PropertyRetryTopic+"\x01orders\x02") + 10 // not len(ORIGIN_MESSAGE_ID...) = 51
	big := strings.Repeat("v", message.MaxPropertiesLength-message.CRCSlotSize-len("big\x01\x02")-room)
	res, err := b.store.Append(t.Context(), &message.Message{Topic: "orders", Body: []byte("x"),
		Properties: message.Properties{"big": big}.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if resp := callSendBack(t, c, sendBackExt(res.PhysicalOffset, "g", "orders", 0, 0)); resp.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", resp.Code, resp.Remark)
	}
	m := waitQueueMsgs(t, b, DLQTopic("g"), 0, 1)[0]
	if m.Property("big") != big {
		t.Fatalf("DLQ copy lost its own property (%d property bytes)", len(m.Properties))
	}
	if got := m.Property(message.PropertyRetryTopic); got != "orders" {
		t.Fatalf("DLQ copy's RETRY_TOPIC = %q, want %q (it fits)", got, "orders")
	}
}
