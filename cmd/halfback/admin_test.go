package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/message"
)

// startTestBroker opens an in-process broker on port 0 in a fresh
// directory and returns its address.
func startTestBroker(t *testing.T) string { return startTestBrokerWith(t, nil) }

// startTestBrokerWith is startTestBroker with its options changed by mod.
func startTestBrokerWith(t *testing.T, mod func(*broker.Options)) string {
	t.Helper()
	levels, err := delay.ParseLevels("100ms 200ms 300ms")
	if err != nil {
		t.Fatal(err)
	}
	o := broker.Options{
		Store: store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 16 << 20,
			CheckpointInterval: 100 * time.Millisecond},
		Delay:      delay.Options{Levels: levels, CheckpointInterval: 100 * time.Millisecond},
		ListenAddr: "127.0.0.1:0",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	b, err := broker.Open(o)
	if err != nil {
		t.Fatalf("broker.Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr()
}

// runAdmin runs an admin command against addr with --json and decodes its
// output into v.
func runAdmin(t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out, err := run(t, append(args, "--broker", addr, "--json")...)
	if err != nil {
		t.Fatalf("halfback %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("halfback %s: output is not one JSON value: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runAdminErr runs an admin command that must fail and returns its error.
func runAdminErr(t *testing.T, addr string, args ...string) error {
	t.Helper()
	out, err := run(t, append(args, "--broker", addr, "--json")...)
	if err == nil {
		t.Fatalf("halfback %s succeeded, want an error:\n%s", strings.Join(args, " "), out)
	}
	return err
}

// consumeN consumes with --from first until n messages have come (the
// broker makes a stored message visible to pulls shortly after the send
// returns) and returns them.
func consumeN(t *testing.T, addr, group, topic string, n int) []admin.Message {
	t.Helper()
	var msgs []admin.Message
	waitFor(t, 10*time.Second, "messages to consume", func() bool {
		var got consumeResult
		runAdmin(t, addr, &got, "consume", "--group", group, "--topic", topic, "--from", "first")
		msgs = append(msgs, got.Messages...)
		return len(msgs) >= n
	})
	if len(msgs) != n {
		t.Fatalf("consumed %d messages, want %d: %+v", len(msgs), n, msgs)
	}
	return msgs
}

func topicNames(topics []admin.Topic) map[string]admin.Topic {
	m := map[string]admin.Topic{}
	for _, tc := range topics {
		m[tc.Name] = tc
	}
	return m
}

func TestAdminTopics(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var created map[string]any
	runAdmin(t, addr, &created, "topic", "create", "orders", "--queues", "2")
	if created["created"] != true {
		t.Fatalf("create: %v", created)
	}
	var topics []admin.Topic
	runAdmin(t, addr, &topics, "topic", "list")
	tc, ok := topicNames(topics)["orders"]
	if !ok || tc.ReadQueueNums != 2 || tc.WriteQueueNums != 2 || tc.Perm != admin.PermRead|admin.PermWrite {
		t.Fatalf("list: orders = %+v (found %v) in %v", tc, ok, topics)
	}
	var deleted map[string]any
	runAdmin(t, addr, &deleted, "topic", "delete", "orders")
	runAdmin(t, addr, &topics, "topic", "list")
	if _, ok := topicNames(topics)["orders"]; ok {
		t.Fatalf("orders still listed after delete: %v", topics)
	}
	if err := runAdminErr(t, addr, "topic", "delete", "orders"); !strings.Contains(err.Error(), "orders") {
		t.Errorf("deleting a missing topic: %v, want the broker's remark naming it", err)
	}
}

func TestAdminSendConsumeQuery(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "payments", "--tag", "paid", "--keys", "order-1,cust-9", "hello world")
	if sent.MsgID == "" || sent.OffsetMsgID == "" || sent.Topic != "payments" {
		t.Fatalf("send: %+v", sent)
	}

	m := consumeN(t, addr, "g1", "payments", 1)[0]
	if m.Tags != "paid" || strings.Join(m.Keys, ",") != "order-1,cust-9" || m.Body != "hello world" || m.MsgID != sent.MsgID {
		t.Errorf("consumed %+v, want tag paid, keys order-1,cust-9, body hello world, msgId %s", m, sent.MsgID)
	}
	var got consumeResult
	runAdmin(t, addr, &got, "consume", "--group", "g1", "--topic", "payments", "--from", "first")
	if len(got.Messages) != 0 || len(got.Committed) != 4 {
		t.Errorf("second consume: %d messages and %d queues committed, want 0 (offsets committed) and 4", len(got.Messages), len(got.Committed))
	}

	var found []admin.Message
	waitFor(t, 10*time.Second, "the key to be indexed", func() bool {
		runAdmin(t, addr, &found, "msg", "query", "--topic", "payments", "--key", "cust-9")
		return len(found) > 0
	})
	if found[0].MsgID != sent.MsgID {
		t.Errorf("query by key found %+v, want msgId %s", found[0], sent.MsgID)
	}

	var shown admin.Message
	runAdmin(t, addr, &shown, "msg", "show", sent.OffsetMsgID)
	if shown.MsgID != sent.MsgID || shown.Body != "hello world" || shown.Tags != "paid" {
		t.Errorf("show %s: %+v", sent.OffsetMsgID, shown)
	}
	runAdmin(t, addr, &shown, "msg", "show", "--topic", "payments", sent.MsgID)
	if shown.OffsetMsgID != sent.OffsetMsgID {
		t.Errorf("show by UNIQ_KEY: %+v, want offsetMsgId %s", shown, sent.OffsetMsgID)
	}
}

func TestAdminGroupOffsets(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "stock", "one")
	consumeN(t, addr, "g2", "stock", 1)

	var res groupOffsetsResult
	runAdmin(t, addr, &res, "group", "offsets", "g2")
	if res.Lag != 0 || len(res.Queues) != 4 {
		t.Fatalf("after consume: lag %d over %d queues, want 0 over 4: %+v", res.Lag, len(res.Queues), res)
	}
	for _, q := range res.Queues {
		if q.QueueID == sent.QueueID && (q.BrokerOffset != 1 || q.ConsumerOffset != 1 || q.LastTimestamp == 0) {
			t.Errorf("queue %d: %+v, want broker and consumer offset 1 and a last timestamp", q.QueueID, q)
		}
	}

	runAdmin(t, addr, &sent, "send", "--topic", "stock", "two")
	waitFor(t, 10*time.Second, "lag 1 after another send", func() bool {
		runAdmin(t, addr, &res, "group", "offsets", "g2")
		return res.Lag == 1
	})
	if err := runAdminErr(t, addr, "group", "offsets", "nobody"); !strings.Contains(err.Error(), "nobody") {
		t.Errorf("group offsets of an unknown group: %v, want it named", err)
	}

	// A group that went away is deleted with its offsets.
	var del struct {
		Group          string `json:"group"`
		OffsetsRemoved bool   `json:"offsetsRemoved"`
	}
	runAdmin(t, addr, &del, "group", "delete", "g2")
	if del.Group != "g2" || !del.OffsetsRemoved {
		t.Fatalf("group delete: %+v", del)
	}
	// Offsets and settings gone, the broker no longer knows the group.
	if err := runAdminErr(t, addr, "group", "offsets", "g2"); !strings.Contains(err.Error(), "not known") {
		t.Errorf("group offsets of a deleted group: %v", err)
	}
	if err := runAdminErr(t, addr, "group", "delete", "bad group!"); err == nil {
		t.Error("group delete of an illegal name succeeded")
	}
}

// `group reset` moves a group back to replay, to the end to skip, or one
// queue to an offset; the group's next consume follows.
func TestAdminGroupReset(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var created map[string]any
	runAdmin(t, addr, &created, "topic", "create", "replay", "--queues", "1")
	for _, body := range []string{"one", "two", "three"} {
		var sent admin.SendResult
		runAdmin(t, addr, &sent, "send", "--topic", "replay", body)
	}
	consumeN(t, addr, "g3", "replay", 3)
	bodies := func(msgs []admin.Message) string {
		var out []string
		for _, m := range msgs {
			out = append(out, m.Body)
		}
		return strings.Join(out, ",")
	}

	var res groupResetResult
	runAdmin(t, addr, &res, "group", "reset", "g3", "--topic", "replay", "--to", "earliest")
	if len(res.Queues) != 1 || res.Queues[0].Offset != 0 || res.Group != "g3" {
		t.Fatalf("reset to earliest: %+v", res)
	}
	var got consumeResult
	runAdmin(t, addr, &got, "consume", "--group", "g3", "--topic", "replay")
	if b := bodies(got.Messages); b != "one,two,three" {
		t.Fatalf("consume after a reset to earliest: %s, want one,two,three", b)
	}

	runAdmin(t, addr, &res, "group", "reset", "g3", "--topic", "replay", "--queue", "0", "--offset", "2")
	runAdmin(t, addr, &got, "consume", "--group", "g3", "--topic", "replay")
	if b := bodies(got.Messages); b != "three" {
		t.Fatalf("consume after a reset to offset 2: %s, want three", b)
	}

	runAdmin(t, addr, &res, "group", "reset", "g3", "--topic", "replay", "--to", "earliest")
	runAdmin(t, addr, &res, "group", "reset", "g3", "--topic", "replay", "--to", "latest")
	if res.Queues[0].Offset != 3 {
		t.Fatalf("reset to latest: %+v, want offset 3", res)
	}
	runAdmin(t, addr, &got, "consume", "--group", "g3", "--topic", "replay")
	if len(got.Messages) != 0 {
		t.Fatalf("consume after a reset to latest: %s, want nothing", bodies(got.Messages))
	}
	runAdmin(t, addr, &res, "group", "reset", "g3", "--topic", "replay", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if res.Queues[0].Offset != 3 {
		t.Fatalf("reset to a time after every message: %+v, want offset 3", res)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "reset", "g3", "--to", "earliest"}, "--topic"},
		{[]string{"group", "reset", "g3", "--topic", "replay"}, "--to"},
		{[]string{"group", "reset", "g3", "--topic", "replay", "--to", "yesterday"}, "--to"},
		{[]string{"group", "reset", "g3", "--topic", "replay", "--queue", "0"}, "--offset"},
		{[]string{"group", "reset", "g3", "--topic", "replay", "--queue", "0", "--offset", "9"}, "not in consume queue range"},
		{[]string{"group", "reset", "nobody", "--topic", "replay", "--to", "earliest"}, "does not exist"},
		{[]string{"group", "reset", "g3", "--topic", "missing", "--to", "earliest"}, "does not exist"},
		{[]string{"group", "reset", "bad group", "--topic", "replay", "--to", "earliest"}, "illegal"},
	} {
		if err := runAdminErr(t, addr, c.args...); !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestAdminDLQ(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	const group = "billing"
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "invoices", "--tag", "due", "--keys", "inv-7", "pay me")

	// The group's consumer fails the message with no retries left.
	_, off, err := message.ParseOffsetMsgID(sent.OffsetMsgID)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := remoting.Dial(t.Context(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqConsumerSendMsgBack, map[string]string{
		"offset": strconv.FormatInt(off, 10), "group": group, "delayLevel": "0", "originTopic": "invoices", "maxReconsumeTimes": "0"}))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("CONSUMER_SEND_MSG_BACK: %v, %v", resp, err)
	}

	var dead []admin.Message
	waitFor(t, 10*time.Second, "the dead letter", func() bool {
		runAdmin(t, addr, &dead, "dlq", "list", group)
		return len(dead) > 0
	})
	if len(dead) != 1 || dead[0].Topic != broker.DLQTopic(group) || dead[0].MsgID != sent.MsgID ||
		dead[0].Properties[message.PropertyRetryTopic] != "invoices" {
		t.Fatalf("dlq list: %+v", dead)
	}
	// The table shows when it was stored as a time, as txn list does.
	table, err := run(t, "dlq", "list", group, "--broker", addr)
	if stored := time.UnixMilli(dead[0].StoreTimestamp).UTC().Format(time.RFC3339); err != nil || !strings.Contains(table, stored) {
		t.Fatalf("dlq list table (want STORED %s): %v\n%s", stored, err, table)
	}

	var resent admin.SendResult
	runAdmin(t, addr, &resent, "dlq", "resend", group, dead[0].OffsetMsgID)
	if resent.Topic != "invoices" || resent.MsgID != sent.MsgID {
		t.Fatalf("resend: %+v, want topic invoices and msgId %s", resent, sent.MsgID)
	}
	var back admin.Message
	runAdmin(t, addr, &back, "msg", "show", resent.OffsetMsgID)
	if back.Topic != "invoices" || back.Tags != "due" || strings.Join(back.Keys, ",") != "inv-7" || back.Body != "pay me" ||
		back.MsgID != sent.MsgID || back.ReconsumeTimes != 0 || back.Properties[message.PropertyRetryTopic] != "" {
		t.Errorf("resent message: %+v", back)
	}
	consumeN(t, addr, "auditor", "invoices", 2) // the original and the resent copy

	if err := runAdminErr(t, addr, "dlq", "resend", "other", dead[0].OffsetMsgID); !strings.Contains(err.Error(), "dead-letter") {
		t.Errorf("resend through the wrong group: %v", err)
	}
	runAdmin(t, addr, &dead, "dlq", "list", "nogroup")
	if len(dead) != 0 {
		t.Errorf("dlq list of a group with no DLQ: %+v", dead)
	}
}

func TestAdminBadInput(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create", "bad name!"}, "illegal character"},
		{[]string{"send", "body"}, `"topic" not set`},
		{[]string{"send", "--topic", "a.b", "body"}, "illegal character"},
		{[]string{"msg", "show", "NOTANID"}, "malformed message id"},
		{[]string{"consume", "--group", "g", "--topic", "missing", "--from", "first"}, "does not exist"},
		{[]string{"consume", "--group", "g", "--topic", "t", "--from", "middle"}, "--from"},
	}
	for _, c := range cases {
		if err := runAdminErr(t, addr, c.args...); !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if _, err := run(t, "topic", "list", "--broker", "127.0.0.1:1"); err == nil {
		t.Error("topic list against no broker succeeded")
	}
	// A config file named explicitly is read even when the flags name every
	// address: a missing or bad one is reported, not ignored.
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, args := range [][]string{
		{"topic", "list", "--broker", addr, "--config", missing},
		{"topic", "list", "--cluster", "c", "--namesrv", "127.0.0.1:1", "--config", missing},
	} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
			t.Errorf("halfback %s: %v, want it to name the missing file", strings.Join(args, " "), err)
		}
	}
	// A bad flag is reported as such, even with no broker to dial.
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"consume", "--group", "g", "--topic", "t", "--from", "middle"}, "--from"},
		{[]string{"consume", "--group", "g", "--topic", "t", "--max", "0"}, "--max"},
		{[]string{"dlq", "list", "g", "--max", "-3"}, "--max"},
	} {
		args := append(c.args, "--broker", "127.0.0.1:1")
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("halfback %s: %v, want it to name %s", strings.Join(args, " "), err, c.flag)
		}
	}
}

func TestAdminHumanOutput(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	out, err := run(t, "send", "--broker", addr, "--topic", "human", "--tag", "x", "hi")
	if err != nil || !strings.Contains(out, "offsetMsgId:") {
		t.Fatalf("send: %v\n%s", err, out)
	}
	out, err = run(t, "topic", "list", "--broker", addr)
	if err != nil || !strings.Contains(out, "TOPIC") || !strings.Contains(out, "human") {
		t.Fatalf("topic list: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the message to consume", func() bool {
		out, err = run(t, "consume", "--broker", addr, "--group", "h", "--topic", "human", "--from", "first")
		if err != nil {
			t.Fatalf("consume: %v\n%s", err, out)
		}
		return strings.Contains(out, "1 messages")
	})
	if !strings.Contains(out, "hi") {
		t.Errorf("consume output lacks the body:\n%s", out)
	}
	out, err = run(t, "group", "offsets", "h", "--broker", addr)
	if err != nil || !strings.Contains(out, "total lag 0") {
		t.Fatalf("group offsets: %v\n%s", err, out)
	}
}

// failingProxy forwards requests to the broker at addr, except that it
// answers SYSTEM_ERROR to those refuse picks.
func failingProxy(t *testing.T, addr string, refuse func(*remoting.Command) bool) string {
	t.Helper()
	up, err := remoting.Dial(context.Background(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	fwd := remoting.HandlerFunc(func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if refuse(req) {
			return remoting.NewResponse(req, remoting.RespSystemError, "refused by the test's proxy")
		}
		out := remoting.NewRequest(req.Code, req.ExtFields)
		out.Body = req.Body
		resp, err := up.Invoke(ctx, out)
		if err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
		r := remoting.NewResponse(req, resp.Code, resp.Remark)
		for k, v := range resp.ExtFields {
			r.ExtFields[k] = v
		}
		r.Body = resp.Body
		return r
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: fwd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr().String()
}

// consume commits a queue only after printing its messages: when a later
// queue cannot be read, the earlier ones' messages are printed and
// committed, the command fails, and nothing is committed unprinted.
func TestAdminConsumeCommitsOnlyWhatItPrinted(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	// At least 8 messages, and on until queue 0 holds one (the broker
	// picks each send's queue).
	total, toQ0 := 0, 0
	for ; total < 8 || toQ0 == 0; total++ {
		if total == 256 {
			t.Fatal("256 sends and none went to queue 0")
		}
		var sent admin.SendResult
		runAdmin(t, addr, &sent, "send", "--topic", "lossy", "m"+strconv.Itoa(total))
		if sent.QueueID == 0 {
			toQ0++
		}
	}
	ac, err := admin.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	var inQ0 int
	waitFor(t, 10*time.Second, "the sends to be readable", func() bool {
		n := 0
		for q := int32(0); q < 4; q++ {
			r, err := ac.Pull(context.Background(), "", "lossy", q, 0, 32)
			if err != nil {
				t.Fatal(err)
			}
			if q == 0 {
				inQ0 = len(r.Messages)
			}
			n += len(r.Messages)
		}
		return n == total
	})
	if inQ0 != toQ0 {
		t.Fatalf("queue 0 holds %d messages, %d were sent to it", inQ0, toQ0)
	}
	proxy := failingProxy(t, addr, func(req *remoting.Command) bool {
		return req.Code == remoting.ReqQueryConsumerOffset && req.Ext("queueId") == "1"
	})
	out, err := run(t, "consume", "--broker", proxy, "--group", "g", "--topic", "lossy", "--from", "first", "--json")
	if err == nil {
		t.Fatalf("consume succeeded although queue 1 could not be read:\n%s", out)
	}
	var res consumeResult
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		t.Fatalf("output %q: %v", out, jerr)
	}
	if len(res.Messages) != inQ0 || len(res.Committed) != 1 || res.Committed[0] != (queueOffset{0, int64(inQ0)}) {
		t.Fatalf("printed %d messages, offsets %+v; want queue 0's %d and its offset", len(res.Messages), res.Committed, inQ0)
	}
	for q := int32(0); q < 4; q++ {
		off, ok, err := ac.QueryOffset(context.Background(), "g", "lossy", q)
		if err != nil {
			t.Fatal(err)
		}
		if want := q == 0; ok != want || ok && off != int64(inQ0) {
			t.Fatalf("queue %d: committed %d (%v); want only queue 0's %d", q, off, ok, inQ0)
		}
	}
}

// `consume` with the default --from last, for a group with no committed
// offset, starts where a RocketMQ consumer of a new group starts on a young
// queue (offset 0, the broker's setZeroIfNotFound rule): it committed each
// queue's max offset having read nothing, so the group's real consumers
// lost every message already there.
func TestConsumeOfANewGroupCommitsOnlyWhatItRead(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	runAdmin(t, addr, new(map[string]any), "topic", "create", "fresh", "--queues", "1")
	for _, body := range []string{"a", "b", "c"} {
		var sent admin.SendResult
		runAdmin(t, addr, &sent, "send", "--topic", "fresh", body)
	}
	ac, err := admin.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitFor(t, 10*time.Second, "the sends to be readable", func() bool {
		_, maxOff, err := ac.QueueBounds(context.Background(), "fresh", 0)
		return err == nil && maxOff == 3
	})

	var got consumeResult
	runAdmin(t, addr, &got, "consume", "--group", "newgroup", "--topic", "fresh")
	off, ok, err := ac.QueryOffset(context.Background(), "newgroup", "fresh", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 3 || !ok || off != 3 {
		t.Fatalf("consume of a new group printed %d messages, committed offset %d (%v); want the 3 messages and offset 3", len(got.Messages), off, ok)
	}
	if ok && off > int64(len(got.Messages)) {
		t.Fatalf("consume read %d messages but committed offset %d: %d unread messages marked consumed for newgroup",
			len(got.Messages), off, off-int64(len(got.Messages)))
	}
}

// `consume` of a new group on a queue whose first message the broker no
// longer counts as in memory (broker.accessMessageInMemoryMaxRatio) starts
// where a RocketMQ consumer of the group would, --from: the queue's end
// for last. It started at the first message as long as retention had
// removed none, and so showed the group a history its consumers skip.
func TestConsumeOfANewGroupOnAnOldQueueFollowsFrom(t *testing.T) {
	clearEnv(t)
	addr := startTestBrokerWith(t, func(o *broker.Options) { o.AccessMessageInMemoryMaxRatio = 1e-15 })
	runAdmin(t, addr, new(map[string]any), "topic", "create", "old", "--queues", "1")
	for _, body := range []string{"a", "b", "c"} {
		var sent admin.SendResult
		runAdmin(t, addr, &sent, "send", "--topic", "old", body)
	}
	ac, err := admin.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitFor(t, 10*time.Second, "the sends to be readable", func() bool {
		_, maxOff, err := ac.QueueBounds(context.Background(), "old", 0)
		return err == nil && maxOff == 3
	})
	var got consumeResult
	runAdmin(t, addr, &got, "consume", "--group", "fromlast", "--topic", "old")
	if len(got.Messages) != 0 || len(got.Committed) != 1 || got.Committed[0].Offset != 3 {
		t.Fatalf("--from last printed %d messages and committed %v; want none and offset 3", len(got.Messages), got.Committed)
	}
	runAdmin(t, addr, &got, "consume", "--group", "fromfirst", "--topic", "old", "--from", "first")
	if len(got.Messages) != 3 {
		t.Fatalf("--from first printed %d messages, want 3", len(got.Messages))
	}
}

func TestAdminGroupUpdatePausesAndResumes(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var created map[string]any
	runAdmin(t, addr, &created, "topic", "create", "held", "--queues", "1")
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "held", "one")

	var g admin.GroupConfig
	runAdmin(t, addr, &g, "group", "update", "gp", "--consume=false")
	if g.Group != "gp" || g.ConsumeEnable || !g.ConsumeBroadcastEnable || g.RetryMaxTimes != 16 || g.RetryQueueNums != 1 {
		t.Fatalf("group update --consume=false: %+v, want consumption off and the defaults", g)
	}
	// The refusal alone: no empty table or "0 messages" before it.
	if out, err := run(t, "consume", "--group", "gp", "--topic", "held", "--broker", addr); err == nil ||
		!strings.Contains(err.Error(), "no permission") || !strings.Contains(err.Error(), "group update gp --consume=true") || out != "" {
		t.Fatalf("consume of a paused group: %v, output %q; want a refusal and no output", err, out)
	}
	runAdmin(t, addr, &g, "group", "update", "gp", "--consume=true", "--retry-max-times", "3")
	runAdmin(t, addr, &g, "group", "update", "gp", "--notify=false")
	if !g.ConsumeEnable || g.RetryMaxTimes != 3 || g.NotifyIDsChanged {
		t.Fatalf("after two updates: %+v, want consumption on, 3 retries (kept), notify off", g)
	}
	var got consumeResult
	runAdmin(t, addr, &got, "consume", "--group", "gp", "--topic", "held")
	if len(got.Messages) != 1 || got.Messages[0].Body != "one" {
		t.Fatalf("consume after resuming: %+v, want one", got.Messages)
	}
	var list []admin.GroupConfig
	runAdmin(t, addr, &list, "group", "list")
	found := false
	for _, c := range list {
		found = found || c == g
	}
	if !found {
		t.Errorf("group list %+v lacks %+v", list, g)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "update", "gp", "--retry-queue-nums", "0"}, "--retry-queue-nums"},
		{[]string{"group", "update", "gp", "--retry-max-times", "-1"}, "--retry-max-times"},
		{[]string{"group", "update", "bad group"}, "illegal"},
		{[]string{"group", "update"}, "accepts 1 arg"},
	} {
		if err := runAdminErr(t, addr, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestAdminTopicStatusAndGroupConnections(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var created map[string]any
	runAdmin(t, addr, &created, "topic", "create", "watched", "--queues", "2")
	var sent admin.SendResult
	for range 3 {
		runAdmin(t, addr, &sent, "send", "--topic", "watched", "x")
	}
	var st topicStatusResult
	waitFor(t, 10*time.Second, "3 messages in the topic's status", func() bool {
		runAdmin(t, addr, &st, "topic", "status", "watched")
		n := int64(0)
		for _, q := range st.Queues {
			n += q.MaxOffset - q.MinOffset
		}
		return n == 3
	})
	if queues := st.Queues; len(queues) != 2 || queues[0].QueueID != 0 || queues[1].QueueID != 1 || len(st.ConsumerGroups) != 0 {
		t.Fatalf("topic status: %+v, want queues 0 and 1 and no consumer", st)
	}
	consumeN(t, addr, "readers", "watched", 3) // commits offsets
	for _, q := range st.Queues {
		if (q.MaxOffset > 0) != (q.LastUpdated > 0) || q.Topic != "watched" {
			t.Errorf("queue %+v: a last store time exactly when it holds messages", q)
		}
	}

	// A consumer comes online (its heartbeat), and is listed.
	c := remotetest.Dial(t, addr)
	hb := `{"clientID":"10.0.0.1@one","producerDataSet":[],"consumerDataSet":[{"groupName":"watchers","consumeType":"CONSUME_PASSIVELY",` +
		`"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"watched","subString":"*",` +
		`"tagsSet":[],"codeSet":[],"subVersion":1,"expressionType":"TAG"}]}]}`
	if resp := remotetest.Call(t, c, remoting.ReqHeartBeat, nil, []byte(hb)); resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: %d %s", resp.Code, resp.Remark)
	}
	var g admin.GroupConnections
	runAdmin(t, addr, &g, "group", "connections", "watchers")
	runAdmin(t, addr, &st, "topic", "status", "watched")
	if strings.Join(st.ConsumerGroups, ",") != "readers,watchers" {
		t.Errorf("topic status consumers: %v, want readers (offsets) and watchers (online)", st.ConsumerGroups)
	}
	if len(g.Clients) != 1 || g.Clients[0].ClientID != "10.0.0.1@one" || g.Clients[0].Addr != c.LocalAddr().String() ||
		g.Subscriptions["watched"] != "*" || g.MessageModel != "CLUSTERING" {
		t.Errorf("group connections: %+v", g)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "status", "missing"}, "not exist"},
		{[]string{"topic", "status", "bad name!"}, "illegal"},
		{[]string{"group", "connections", "nobody"}, "not online"},
		{[]string{"group", "connections", "bad group"}, "illegal"},
	} {
		if err := runAdminErr(t, addr, c.args...); !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// group reset's and group update's flags are checked before the broker (or,
// with --cluster, the name server) is dialled, as consume's and dlq list's
// are: a mistake is reported as such, once, not as a broker's failure.
func TestAdminGroupFlagsCheckedBeforeDialling(t *testing.T) {
	clearEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "reset", "g", "--to", "latest"}, "--topic"},
		{[]string{"group", "reset", "g", "--topic", "t"}, "--to"},
		{[]string{"group", "reset", "g", "--topic", "t", "--to", "yesterday"}, "--to"},
		{[]string{"group", "reset", "g", "--topic", "t", "--queue", "1"}, "--offset"},
		{[]string{"group", "update", "g", "--retry-queue-nums", "0"}, "--retry-queue-nums"},
		{[]string{"group", "update", "g", "--retry-max-times", "-1"}, "--retry-max-times"},
	} {
		for _, where := range [][]string{{"--broker", "127.0.0.1:1"}, {"--cluster", "C", "--namesrv", "127.0.0.1:1"}} {
			args := append(append([]string{}, c.args...), where...)
			out, err := run(t, args...)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Errorf("halfback %s: %v\n%s\nwant an error naming %s, before dialling", strings.Join(args, " "), err, out, c.want)
			}
		}
	}
}

// group offsets of a group the broker does not know (a typo) fails, as
// mqadmin consumerProgress does, instead of reporting a lag of 0; a group
// the broker knows with nothing committed yet is still an empty table.
func TestAdminGroupOffsetsOfAnUnknownGroup(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	if err := runAdminErr(t, addr, "group", "offsets", "no-such-group"); !strings.Contains(err.Error(), "no-such-group") {
		t.Errorf("group offsets of an unknown group: %v, want it named", err)
	}
	if out, err := run(t, "group", "offsets", "no-such-group", "--broker", addr); err == nil {
		t.Errorf("group offsets of an unknown group succeeded:\n%s", out)
	}
	var g admin.GroupConfig
	runAdmin(t, addr, &g, "group", "update", "idle")
	var res groupOffsetsResult
	runAdmin(t, addr, &res, "group", "offsets", "idle")
	if res.Group != "idle" || len(res.Queues) != 0 || res.Lag != 0 {
		t.Errorf("group offsets of a known idle group: %+v", res)
	}
}

// msg show given the msgId that send printed, without --topic, says how to
// look that id up instead of calling it malformed.
func TestAdminMsgShowOfAMsgIDWithoutTopic(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "ids", "one")
	err := runAdminErr(t, addr, "msg", "show", sent.MsgID)
	if !strings.Contains(err.Error(), "--topic") {
		t.Errorf("msg show %s (a msgId): %v, want it to point at --topic", sent.MsgID, err)
	}
	// As the hint says (the index takes the id shortly after the send).
	waitFor(t, 10*time.Second, "msg show --topic to find the msgId", func() bool {
		out, err := run(t, "msg", "show", sent.MsgID, "--topic", "ids", "--broker", addr)
		return err == nil && strings.Contains(out, sent.OffsetMsgID)
	})
}
