package broker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

func resetExt(group, topic string, ts int64, kv ...string) map[string]string {
	ext := map[string]string{"group": group, "topic": topic, "timestamp": strconv.FormatInt(ts, 10), "isForce": "true"}
	for i := 0; i+1 < len(kv); i += 2 {
		ext[kv[i]] = kv[i+1]
	}
	return ext
}

// A reset commits the new offsets at once (a group with no consumer online
// starts there) and keeps them pending: the group's commits of a queue are
// ignored, and its next pull of the queue, wherever it asks from, is
// answered PULL_OFFSET_MOVED to the new offset, once. The pending reset
// survives a restart until a pull is told.
func TestResetOffsetServerSide(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 10)
	if resp := updateOffset(t, c, "cg", "orders", 0, 10); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %q", resp.Code, resp.Remark)
	}

	resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0, "queueId", "0", "offset", "3"), nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("reset: %d %q", resp.Code, resp.Remark)
	}
	if want := `{"offsetTable":{{"brokerName":"` + b.opts.BrokerName + `","queueId":0,"topic":"orders"}:3}}`; string(resp.Body) != want {
		t.Fatalf("reset body %s, want %s", resp.Body, want)
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 3 {
		t.Fatalf("offset after the reset %d, want 3", off)
	}
	// Where an online consumer was: ignored until its pull is told.
	if resp := updateOffset(t, c, "cg", "orders", 0, 10); resp.Code != remoting.RespSuccess || !strings.Contains(resp.Remark, "reset") {
		t.Fatalf("commit while the reset is pending: %d %q", resp.Code, resp.Remark)
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 3 {
		t.Fatalf("a commit overwrote the pending reset: offset %d, want 3", off)
	}

	// The pending reset survives a restart.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, o)
	c = dial(t, b)
	p := pull(t, c, "orders", 0, 10, pullFlagCommitOffset, "*", 0)
	if p.Code != remoting.RespPullOffsetMoved || p.Ext("nextBeginOffset") != "3" {
		t.Fatalf("first pull after the reset: %d next %s, want PULL_OFFSET_MOVED to 3", p.Code, p.Ext("nextBeginOffset"))
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 3 {
		t.Fatalf("the told pull's commitOffset moved the offset to %d, want 3", off)
	}
	if p := pull(t, c, "orders", 0, 3, 0, "*", 0); p.Code != remoting.RespSuccess || len(decodeAll(t, p.Body)) != 7 {
		t.Fatalf("pull from the reset offset: %d", p.Code)
	}
	if resp := updateOffset(t, c, "cg", "orders", 0, 5); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit after the pull was told: %d", resp.Code)
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 5 {
		t.Fatalf("commit after the pull was told: offset %d, want 5", off)
	}

	// A pull from the reset offset itself holding nothing below it (its
	// commitOffset there too: a consumer started after the reset, from
	// the committed offset) is not moved; the reset is told.
	reset2 := func() {
		t.Helper()
		if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0, "queueId", "0", "offset", "2"), nil); resp.Code != remoting.RespSuccess {
			t.Fatalf("reset to 2: %d %q", resp.Code, resp.Remark)
		}
	}
	reset2()
	ext := pullExt("orders", 0, 2, pullFlagCommitOffset, "*", 0)
	ext["commitOffset"] = "2"
	if p := call(t, c, remoting.ReqPullMessage, ext, nil); p.Code != remoting.RespSuccess || len(decodeAll(t, p.Body)) != 8 {
		t.Fatalf("pull from the reset offset: %d %q", p.Code, p.Remark)
	}
	updateOffset(t, c, "cg", "orders", 0, 4)
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 4 {
		t.Fatalf("commit after that pull: offset %d, want 4 (the reset told)", off)
	}
	// One whose commitOffset is below (its handler is behind: an orderly
	// buffer, a reset to the end) is moved, to where it is, so that it
	// drops what it holds; the commit it carries is not applied.
	reset2()
	if p := pull(t, c, "orders", 0, 2, pullFlagCommitOffset, "*", 0); p.Code != remoting.RespPullOffsetMoved || p.Ext("nextBeginOffset") != "2" {
		t.Fatalf("pull from the reset offset carrying commitOffset 0: %d next %s, want PULL_OFFSET_MOVED to 2", p.Code, p.Ext("nextBeginOffset"))
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 2 {
		t.Fatalf("offset %d after a pull from the reset offset carrying commitOffset 0, want 2", off)
	}

	// By time: 0 is each queue's oldest message, -1 its end.
	for ts, want := range map[int64]string{0: "0", -1: "10"} {
		if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", ts), nil); resp.Code != remoting.RespSuccess {
			t.Fatalf("reset to %d: %d %q", ts, resp.Code, resp.Remark)
		}
		if p := pull(t, c, "orders", 0, 5, 0, "*", 0); p.Code != remoting.RespPullOffsetMoved || p.Ext("nextBeginOffset") != want {
			t.Fatalf("pull after a reset to %d: %d next %s, want PULL_OFFSET_MOVED to %s", ts, p.Code, p.Ext("nextBeginOffset"), want)
		}
	}
}

// A consumer waiting in a long poll learns of a reset at once, not when
// its poll times out.
func TestResetOffsetWakesALongPoll(t *testing.T) {
	b, c := startCaughtUp(t)
	done := asyncPull(c, pullExt("orders", 0, 4, pullFlagSuspend, "*", 60_000))
	waitFor(t, "the pull held", func() bool { return b.pulls.held() == 1 })
	c2 := dial(t, b)
	if resp := call(t, c2, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0), nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("reset: %d %q", resp.Code, resp.Remark)
	}
	p := <-done // nil if not answered within asyncPull's 10 s
	if p == nil {
		t.Fatal("the held pull was not answered after the reset")
	}
	if p.Code != remoting.RespPullOffsetMoved || p.Ext("nextBeginOffset") != "0" {
		t.Fatalf("held pull: %d %q next %s, want PULL_OFFSET_MOVED to 0", p.Code, p.Remark, p.Ext("nextBeginOffset"))
	}
}

// startCaughtUp starts a broker whose long polls wait a minute, with 4
// messages in orders/0 that group cg has consumed.
func startCaughtUp(t *testing.T) (*Broker, *remoting.Conn) {
	t.Helper()
	o := testOptions(t)
	o.LongPollTimeout = time.Minute
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 4)
	updateOffset(t, c, "cg", "orders", 0, 4)
	return b, c
}

func TestResetOffsetBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 2)
	updateOffset(t, c, "cg", "orders", 0, 1)
	for _, tc := range []struct {
		name string
		ext  map[string]string
		code int16
	}{
		{"no group", map[string]string{"topic": "orders", "timestamp": "0"}, remoting.RespSystemError},
		{"no timestamp", map[string]string{"group": "cg", "topic": "orders"}, remoting.RespSystemError},
		{"bad timestamp", resetExt("cg", "orders", 0, "timestamp", "soon"), remoting.RespSystemError},
		{"timestamp below -1", resetExt("cg", "orders", -2), remoting.RespSystemError},
		{"bad group", resetExt("bad group", "orders", 0), remoting.RespSystemError},
		{"bad topic", resetExt("cg", "bad topic", 0), remoting.RespSystemError},
		{"unknown topic", resetExt("cg", "nowhere", 0), remoting.RespTopicNotExist},
		{"unknown group", resetExt("nobody", "orders", 0), remoting.RespSubscriptionGroupNotExist},
		{"queue past the topic's", resetExt("cg", "orders", 0, "queueId", "99", "offset", "0"), remoting.RespSystemError},
		{"offset past the queue", resetExt("cg", "orders", 0, "queueId", "0", "offset", "3"), remoting.RespSystemError},
		{"offset without a queue", resetExt("cg", "orders", 0, "offset", "1"), remoting.RespSystemError},
	} {
		if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, tc.ext, nil); resp.Code != tc.code || resp.Remark == "" {
			t.Errorf("%s: %d %q, want %d with a remark", tc.name, resp.Code, resp.Remark, tc.code)
		}
	}
	// A broadcasting group's members keep their own offsets.
	hbOK(t, c, bytes.Replace(consumerHeartbeat("127.0.0.1@b1", "orders", "bg"), []byte("CLUSTERING"), []byte("BROADCASTING"), 1))
	if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("bg", "orders", 0), nil); resp.Code != remoting.RespSystemError ||
		!strings.Contains(resp.Remark, "BROADCASTING") {
		t.Errorf("reset of a broadcasting group: %d %q, want SYSTEM_ERROR naming BROADCASTING", resp.Code, resp.Remark)
	}
	if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 1 {
		t.Fatalf("refused resets moved the offset to %d", off)
	}
	if p := pull(t, c, "orders", 0, 1, 0, "*", 0); p.Code != remoting.RespSuccess {
		t.Fatalf("pull after refused resets: %d", p.Code)
	}
}

// A pull that read the store before a reset and is held after it (the
// reset's wakeGroup found nothing to wake) learns of the reset at once
// too, not at its timeout: handlePull's steps, run by hand around a reset.
func TestResetOffsetWakesAPullHeldJustAfterIt(t *testing.T) {
	b, c := startCaughtUp(t)
	// Another group's pull, held, gives the test the server's side of c.
	ext := pullExt("orders", 0, 4, pullFlagSuspend, "*", 60_000)
	ext["consumerGroup"] = "other"
	asyncPull(c, ext)
	waitFor(t, "the other group's pull held", func() bool { return b.pulls.held() == 1 })
	b.pulls.mu.Lock()
	conn := firstConn(b.pulls.byConn)
	b.pulls.mu.Unlock()

	req := remoting.NewRequest(remoting.ReqPullMessage, pullExt("orders", 0, 4, pullFlagSuspend, "*", 60_000))
	pr, resp := b.parsePull(req)
	if resp != nil {
		t.Fatalf("parse: %d %q", resp.Code, resp.Remark)
	}
	if resp, _ := b.resetPull(req, pr); resp != nil {
		t.Fatalf("a reset before there was one: %d", resp.Code)
	}
	if resp := b.pullOnce(req, pr); resp.Code != remoting.RespPullNotFound {
		t.Fatalf("pull at the end: %d", resp.Code)
	}
	if resp := call(t, dial(t, b), remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0), nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("reset: %d %q", resp.Code, resp.Remark)
	}
	if !b.pulls.hold(conn, req, pr, time.Minute) {
		t.Fatal("not held")
	}
	waitFor(t, "the pull held after the reset answered", func() bool { return b.pulls.held() == 1 })
}

// With ClientSideResetOffset (RocketMQ's useServerSideResetOffset false) a
// reset commits nothing on the broker: it sends the new offsets to the
// group's online consumers (RESET_CONSUMER_CLIENT_OFFSET, oneway, with
// topic, group and timestamp, body ResetOffsetBody) and answers them.
// Without isForce a queue whose committed offset is below its target keeps
// it; with no consumer online the reset is refused, as is one queue to an
// offset (a server-side reset only).
func TestResetOffsetClientSide(t *testing.T) {
	o := testOptions(t)
	o.ClientSideResetOffset = true
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 10)
	appendTestMsgs(t, b, "orders", 1, 10)
	updateOffset(t, c, "cg", "orders", 0, 8)
	updateOffset(t, c, "cg", "orders", 1, 2)

	if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0), nil); resp.Code != remoting.RespConsumerNotOnline {
		t.Fatalf("reset with no consumer online: %d %q, want CONSUMER_NOT_ONLINE", resp.Code, resp.Remark)
	}

	got := dialResetConsumer(t, b)

	queue := func(q int, off int64) string {
		return fmt.Sprintf(`{"brokerName":%q,"queueId":%d,"topic":"orders"}:%d`, b.opts.BrokerName, q, off)
	}
	for _, tc := range []struct {
		name  string
		ext   map[string]string
		queue [2]int64 // the offsets sent for queues 0 and 1
	}{
		{"to the end, forced", resetExt("cg", "orders", -1), [2]int64{10, 10}},
		{"to the end, not forced: no queue moves forward", resetExt("cg", "orders", -1, "isForce", "false"), [2]int64{8, 2}},
		{"to the start, not forced", resetExt("cg", "orders", 0, "isForce", "false"), [2]int64{0, 0}},
	} {
		resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, tc.ext, nil)
		want := `{"offsetTable":{` + queue(0, tc.queue[0]) + "," + queue(1, tc.queue[1])
		if resp.Code != remoting.RespSuccess || !strings.HasPrefix(string(resp.Body), want) {
			t.Fatalf("%s: %d %q body %s, want SUCCESS with %s...", tc.name, resp.Code, resp.Remark, resp.Body, want)
		}
		select {
		case req := <-got:
			if req.Ext("topic") != "orders" || req.Ext("group") != "cg" || req.Ext("timestamp") != tc.ext["timestamp"] ||
				!bytes.Equal(req.Body, resp.Body) {
				t.Fatalf("%s: consumer got %v body %s, want the answer's offsets", tc.name, req.ExtFields, req.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no RESET_CONSUMER_CLIENT_OFFSET reached the consumer", tc.name)
		}
		if _, off := queryOffset(t, c, offsetExt("cg", "orders", 0)); off != 8 {
			t.Fatalf("%s: the broker committed %d itself, want the consumer's 8 kept", tc.name, off)
		}
	}
	if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0, "queueId", "0", "offset", "3"), nil); resp.Code != remoting.RespSystemError {
		t.Fatalf("one queue to an offset: %d %q, want SYSTEM_ERROR", resp.Code, resp.Remark)
	}
	if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0, "isForce", "maybe"), nil); resp.Code != remoting.RespSystemError {
		t.Fatalf("isForce maybe: %d %q, want SYSTEM_ERROR", resp.Code, resp.Remark)
	}
	if p := pull(t, c, "orders", 0, 8, 0, "*", 0); p.Code != remoting.RespSuccess {
		t.Fatalf("a pull after client-side resets: %d, want SUCCESS (nothing pending)", p.Code)
	}
}

// The RESET_CONSUMER_CLIENT_OFFSET a client-side reset pushes carries
// every field RocketMQ's ResetOffsetRequestHeader marks @CFNotNull (topic,
// group, timestamp, isForce), as Broker2Client's push does: a Java
// consumer decodes the header before acting, and a missing one throws
// "the custom field <isForce> is null", so it would never move.
func TestResetOffsetClientSidePushHasTheJavaHeader(t *testing.T) {
	o := testOptions(t)
	o.ClientSideResetOffset = true
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 4)
	got := dialResetConsumer(t, b)
	if resp := call(t, c, remoting.ReqInvokeBrokerToResetOffset, resetExt("cg", "orders", 0), nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("reset: %d %q", resp.Code, resp.Remark)
	}
	select {
	case req := <-got:
		for _, f := range []string{"topic", "group", "timestamp", "isForce"} {
			if _, ok := req.ExtFields[f]; !ok {
				t.Errorf("the push has no %s: %v", f, req.ExtFields)
			}
		}
		if _, err := strconv.ParseBool(req.Ext("isForce")); err != nil {
			t.Errorf("isForce %q is not a boolean", req.Ext("isForce"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no RESET_CONSUMER_CLIENT_OFFSET reached the consumer")
	}
}

// dialResetConsumer connects a consumer of group cg on topic orders and
// returns the RESET_CONSUMER_CLIENT_OFFSET requests the broker pushes it.
func dialResetConsumer(t *testing.T, b *Broker) <-chan *remoting.Command {
	t.Helper()
	got := make(chan *remoting.Command, 4)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code == remoting.ReqResetConsumerClientOffset {
			got <- req
		}
		return nil
	})
	cc, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	hbOK(t, cc, consumerHeartbeat("127.0.0.1@c1", "orders", "cg"))
	return got
}
