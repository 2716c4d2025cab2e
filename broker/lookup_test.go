package broker

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

func queueExt(topic string, qid int) map[string]string {
	return map[string]string{"topic": topic, "queueId": strconv.Itoa(qid)}
}

func TestLookupOffsets(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	before := time.Now().UnixMilli()
	for i := 0; i < 3; i++ {
		mustSend(t, c, "lk", 0, "", "x")
	}
	waitFor(t, "dispatch", func() bool { _, hi := b.Store().QueueBounds("lk", 0); return hi == 3 })

	if r := call(t, c, remoting.ReqGetMaxOffset, queueExt("lk", 0), nil); r.Code != remoting.RespSuccess || r.Ext("offset") != "3" {
		t.Errorf("max offset: code %d ext %v", r.Code, r.ExtFields)
	}
	if r := call(t, c, remoting.ReqGetMinOffset, queueExt("lk", 0), nil); r.Code != remoting.RespSuccess || r.Ext("offset") != "0" {
		t.Errorf("min offset: code %d ext %v", r.Code, r.ExtFields)
	}
	if r := call(t, c, remoting.ReqGetMaxOffset, queueExt("unknown", 0), nil); r.Ext("offset") != "0" {
		t.Errorf("max offset of unknown queue: %v", r.ExtFields)
	}
	ext := queueExt("lk", 0)
	ext["timestamp"] = strconv.FormatInt(before-1000, 10)
	if r := call(t, c, remoting.ReqSearchOffsetByTimestamp, ext, nil); r.Code != remoting.RespSuccess || r.Ext("offset") != "0" {
		t.Errorf("search from the past: code %d ext %v", r.Code, r.ExtFields)
	}
	ext["timestamp"] = strconv.FormatInt(time.Now().UnixMilli()+60_000, 10)
	if r := call(t, c, remoting.ReqSearchOffsetByTimestamp, ext, nil); r.Ext("offset") != "3" {
		t.Errorf("search from the future: ext %v", r.ExtFields)
	}
	r := call(t, c, remoting.ReqGetEarliestMsgStoreTime, queueExt("lk", 0), nil)
	ts, err := strconv.ParseInt(r.Ext("timestamp"), 10, 64)
	if r.Code != remoting.RespSuccess || err != nil || ts < before || ts > time.Now().UnixMilli() {
		t.Errorf("earliest store time: code %d ext %v (sent after %d)", r.Code, r.ExtFields, before)
	}
	if r := call(t, c, remoting.ReqGetEarliestMsgStoreTime, queueExt("lk", 3), nil); r.Ext("timestamp") != "-1" {
		t.Errorf("earliest store time of an empty queue: %v", r.ExtFields)
	}
}

func TestLookupQueryAndView(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	resp := mustSend(t, c, "qk", 0, props("KEYS", "order-1 order-2", "UNIQ_KEY", "UQ1"), "first")
	mustSend(t, c, "qk", 1, props("KEYS", "order-1", "UNIQ_KEY", "UQ2"), "second")

	query := func(key string, unique bool) *remoting.Command {
		ext := map[string]string{"topic": "qk", "key": key, "maxNum": "32", "beginTimestamp": "0",
			"endTimestamp": strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)}
		if unique {
			ext[uniqueKeyQueryFlag] = "true"
		}
		return call(t, c, remoting.ReqQueryMessage, ext, nil)
	}
	var r *remoting.Command
	waitFor(t, "the key index", func() bool {
		r = query("order-1", false)
		return r.Code == remoting.RespSuccess && len(decodeAll(t, r.Body)) == 2
	})
	if r.Ext("indexLastUpdatePhyoffset") == "" || r.Ext("indexLastUpdateTimestamp") == "" {
		t.Errorf("query response ext %v", r.ExtFields)
	}
	if r = query("order-2", false); r.Code != remoting.RespSuccess || string(decodeAll(t, r.Body)[0].Body) != "first" {
		t.Errorf("query order-2: code %d", r.Code)
	}
	if r = query("UQ2", true); r.Code != remoting.RespSuccess || string(decodeAll(t, r.Body)[0].Body) != "second" {
		t.Errorf("unique-key query: code %d", r.Code)
	}
	if r = query("nope", false); r.Code != remoting.RespQueryNotFound {
		t.Errorf("query of an unknown key: code %d", r.Code)
	}

	_, phys, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatal(err)
	}
	v := call(t, c, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(phys, 10)}, nil)
	if v.Code != remoting.RespSuccess {
		t.Fatalf("view: code %d %q", v.Code, v.Remark)
	}
	if msgs := decodeAll(t, v.Body); len(msgs) != 1 || string(msgs[0].Body) != "first" || msgs[0].CommitLogOffset != phys {
		t.Fatalf("view returned %+v", msgs)
	}
	if v = call(t, c, remoting.ReqViewMessageByID, map[string]string{"offset": strconv.FormatInt(phys+1, 10)}, nil); v.Code != remoting.RespSystemError {
		t.Errorf("view at a non-record offset: code %d", v.Code)
	}
}

func TestLookupBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for _, tc := range []struct {
		name string
		code int16
		ext  map[string]string
	}{
		{"max offset without queueId", remoting.ReqGetMaxOffset, map[string]string{"topic": "t"}},
		{"min offset with bad queueId", remoting.ReqGetMinOffset, map[string]string{"topic": "t", "queueId": "x"}},
		{"search without timestamp", remoting.ReqSearchOffsetByTimestamp, queueExt("t", 0)},
		{"earliest without topic", remoting.ReqGetEarliestMsgStoreTime, map[string]string{"queueId": "0"}},
		{"query without key", remoting.ReqQueryMessage, map[string]string{"topic": "t", "maxNum": "1", "beginTimestamp": "0", "endTimestamp": "1"}},
		{"view with bad offset", remoting.ReqViewMessageByID, map[string]string{"offset": "-"}},
		{"view past the end", remoting.ReqViewMessageByID, map[string]string{"offset": "999999"}},
	} {
		if r := call(t, c, tc.code, tc.ext, nil); r.Code != remoting.RespSystemError {
			t.Errorf("%s: code %d %q, want SYSTEM_ERROR", tc.name, r.Code, r.Remark)
		}
	}
	if r := call(t, c, remoting.ReqGetMaxOffset, queueExt("t", 0), nil); r.Code != remoting.RespSuccess {
		t.Fatalf("broker stopped serving: code %d", r.Code)
	}
}

// SEARCH_OFFSET_BY_TIMESTAMP honours boundaryType (RocketMQ 5's
// SearchOffsetRequestHeader; LOWER when absent): UPPER answers the last
// offset stored at or before the timestamp, LOWER the first at or after.
func TestSearchOffsetBoundaryTypes(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "bt", 0, "", "first")
	waitQueue(t, b, "bt", 0, 1)
	first := b.queueStoreTime("bt", 0, 0)
	waitFor(t, "the clock to move on", func() bool { return time.Now().UnixMilli() > first+1 })
	mustSend(t, c, "bt", 0, "", "second")
	waitQueue(t, b, "bt", 0, 2)
	second := b.queueStoreTime("bt", 0, 1)
	if second <= first+1 {
		t.Fatalf("store times %d and %d are too close", first, second)
	}
	ext := queueExt("bt", 0)
	ext["timestamp"] = strconv.FormatInt(first+1, 10) // after the first, before the second
	ext["boundaryType"] = "UPPER"
	r := call(t, c, remoting.ReqSearchOffsetByTimestamp, ext, nil)
	if r.Code != remoting.RespSuccess || r.Ext("offset") != "0" {
		t.Fatalf("UPPER search between offsets 0 and 1: code %d offset %s, want 0 (the last message stored at or before)", r.Code, r.Ext("offset"))
	}
	for _, lower := range []string{"lower", ""} {
		ext["boundaryType"] = lower
		if r := call(t, c, remoting.ReqSearchOffsetByTimestamp, ext, nil); r.Code != remoting.RespSuccess || r.Ext("offset") != "1" {
			t.Fatalf("boundaryType %q search between offsets 0 and 1: code %d offset %s, want 1", lower, r.Code, r.Ext("offset"))
		}
	}
}

// A key whose matches would not fit in one 16 MiB frame is answered with
// the newest ones that do, oldest first (it was answered with nothing:
// the frame was refused).
func TestLookupQueryFitsOneFrame(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	body := strings.Repeat("x", 4<<20-1024)
	for i := range 5 {
		mustSend(t, c, "big", 0, props("KEYS", "order-1"), strconv.Itoa(i)+body)
	}
	ext := map[string]string{"topic": "big", "key": "order-1", "maxNum": "32", "beginTimestamp": "0",
		"endTimestamp": strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)}
	waitFor(t, "all five indexed", func() bool { return b.store.DispatchedOffset() >= b.store.MaxPhysicalOffset() })
	// Reading and framing 16 MiB under the race detector on a loaded
	// machine took longer than call's 10 s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqQueryMessage, ext))
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if r.Code != remoting.RespSuccess {
		t.Fatalf("query: code %d %q", r.Code, r.Remark)
	}
	msgs := decodeAll(t, r.Body)
	if len(msgs) != 3 || len(r.Body) > MaxMessageSizeLimit {
		t.Fatalf("query answered %d messages in %d bytes, want the 3 that fit in %d", len(msgs), len(r.Body), MaxMessageSizeLimit)
	}
	for i, m := range msgs {
		if want := strconv.Itoa(2 + i); string(m.Body[:1]) != want {
			t.Fatalf("message %d is number %s, want %s (the newest three, oldest first)", i, m.Body[:1], want)
		}
	}
}

// QUERY_MESSAGE answers as RocketMQ's QueryMessageProcessor does: the
// newest maxNum matches, listed oldest first (DefaultMessageStore sorts
// them by commit log offset), so that a Java client's
// queryMessageByUniqKey, which takes the first, gets the original of a
// message stored twice rather than its copy; maxNum <= 0 and an
// endTimestamp <= 0 find nothing; an endTimestamp of Long.MAX_VALUE (what
// mqadmin queryMsgByKey sends by default) is no upper bound.
func TestLookupQueryAnswersLikeRocketMQ(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 4 {
		mustSend(t, c, "qo", i%2, props("KEYS", "order-7", "UNIQ_KEY", "UQ7"), strconv.Itoa(i))
	}
	waitFor(t, "all four indexed", func() bool { return b.store.DispatchedOffset() >= b.store.MaxPhysicalOffset() })
	query := func(maxNum, end string, unique bool) *remoting.Command {
		key := "order-7"
		ext := map[string]string{"topic": "qo", "key": key, "maxNum": maxNum, "beginTimestamp": "0", "endTimestamp": end}
		if unique {
			ext["key"] = "UQ7"
			ext[uniqueKeyQueryFlag] = "true"
		}
		return call(t, c, remoting.ReqQueryMessage, ext, nil)
	}
	bodies := func(r *remoting.Command) string {
		var s []string
		for _, m := range decodeAll(t, r.Body) {
			s = append(s, string(m.Body))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name, maxNum string
		unique       bool
		want         string
	}{
		{"by key", "64", false, "0,1,2,3"},
		{"by key, maxNum 2", "2", false, "2,3"},
		{"by unique key", "1", true, "0,1,2,3"}, // maxNum is defaultQueryMaxNum then
	} {
		r := query(tc.maxNum, strconv.FormatInt(math.MaxInt64, 10), tc.unique)
		if r.Code != remoting.RespSuccess {
			t.Fatalf("%s: code %d %q", tc.name, r.Code, r.Remark)
		}
		if got := bodies(r); got != tc.want {
			t.Errorf("%s: messages %s, want %s (the newest maxNum, oldest first)", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct{ name, maxNum, end string }{
		{"maxNum 0", "0", strconv.FormatInt(math.MaxInt64, 10)},
		{"maxNum -1", "-1", strconv.FormatInt(math.MaxInt64, 10)},
		{"endTimestamp 0", "64", "0"},
	} {
		if r := query(tc.maxNum, tc.end, false); r.Code != remoting.RespQueryNotFound {
			t.Errorf("%s: code %d with %d bytes, want QUERY_NOT_FOUND (RocketMQ finds nothing)", tc.name, r.Code, len(r.Body))
		}
	}
}
