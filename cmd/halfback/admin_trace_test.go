package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
)

func TestTraceCommand(t *testing.T) {
	addr := startTestBroker(t)
	sendHalf(t, addr, "orders", "tx-42")
	var tx admin.Transaction
	runAdmin(t, addr, &tx, "txn", "commit", "tx-42")

	var msgs []admin.MessageTrace
	runAdmin(t, addr, &msgs, "trace", "order-tx-42")
	if len(msgs) != 1 || msgs[0].MsgID != "tx-42" || len(msgs[0].Events) != 3 {
		t.Fatalf("trace --json: %+v", msgs)
	}
	for i, want := range []string{"half-stored", "committed", "stored"} {
		if e := msgs[0].Events[i]; string(e.Kind) != want {
			t.Fatalf("event %d is %+v, want %s", i, e, want)
		}
	}
	if e := msgs[0].Events[1]; e.From != "admin" || e.Group != "pg" {
		t.Fatalf("commit event %+v", e)
	}

	out, err := run(t, "trace", "tx-42", "--broker", addr)
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^message tx-42 \(keys order-tx-42\)$`),
		regexp.MustCompile(`^  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +half-stored +for orders, producer group pg$`),
		regexp.MustCompile(`^  \+[0-9.]+[µnm]?s +committed +by admin$`),
		regexp.MustCompile(`^  \+[0-9.]+[µnm]?s +stored +orders queue 0 offset 0 SYNC_FLUSH$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("trace printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Fatalf("line %d %q does not match %s:\n%s", i, lines[i], re, out)
		}
	}
	runAdmin(t, addr, &msgs, "trace", "no-such-message")
	if len(msgs) != 0 {
		t.Fatalf("trace --json of an unknown message: %+v", msgs)
	}
	out, err = run(t, "trace", "no-such-message", "--broker", addr)
	if err == nil || !strings.Contains(err.Error(), "no message") {
		t.Fatalf("trace of an unknown message: %v\n%s", err, out)
	}
}

// An orderly consumer retries a failing message itself and then sends it
// back with delay level -1, straight to the dead-letter queue: the broker
// never counted those retries, so `halfback trace` must not say the
// message was dead-lettered "after 0 retries"; it says the consumer sent
// it there.
func TestTraceOfADeadLetterTheConsumerAskedFor(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "ledger", "--keys", "entry-9", "post me")
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
	// What the orderly consumer sends after its MaxReconsumeTimes local
	// retries (the stored record's reconsume count is still 0).
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqConsumerSendMsgBack, map[string]string{
		"offset": strconv.FormatInt(off, 10), "group": "posting", "delayLevel": "-1", "originTopic": "ledger", "maxReconsumeTimes": "16"}))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("send-back: %v %+v", err, resp)
	}
	out, err := run(t, "trace", "entry-9", "--broker", addr)
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "dead-lettered") {
			line = l
		}
	}
	if line == "" || strings.Contains(line, "retries") || !strings.Contains(line, "group posting at its consumer's request") {
		t.Fatalf("dead-letter line %q, want it sent by group posting's consumer, with no retry count:\n%s", line, out)
	}
}

// RocketMQ's Java client, when its send-back fails, sends the retry itself
// as a message to the group's retry topic: `halfback trace` shows it as
// the group's retry, sent by the consumer's client, not as a message
// scheduled for %RETRY%<group>.
func TestTraceOfARetryTheClientSent(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	conn, err := remoting.Dial(t.Context(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	props := message.Properties{message.PropertyUniqKey: "resent-1", message.PropertyKeys: "entry-10",
		message.PropertyDelayTimeLevel: "2", message.PropertyRetryTopic: "ledger"}
	req := remoting.NewRequest(remoting.ReqSendMessageV2, map[string]string{
		"a": "posting", "b": "%RETRY%posting", "e": "0", "f": "0", "g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0",
		"i": props.Encode(), "j": "2", "l": "16"})
	req.Body = []byte("post me again")
	resp, err := conn.Invoke(ctx, req)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("retry send: %v %+v", err, resp)
	}
	out, err := run(t, "trace", "entry-10", "--broker", addr)
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	if !strings.Contains(out, "sent-back") || !strings.Contains(out, "by group posting for retry 2 on delay level 2, sent by its consumer's client") ||
		strings.Contains(out, "scheduled") {
		t.Fatalf("trace of a retry sent by the client:\n%s\nwant it sent back by group posting for retry 2 on delay level 2, by its client", out)
	}
}

// A message a group's SQL92 subscription skipped is filtered too; the row
// must not call the subscription a tag one (the broker's event does not
// say which kind skipped it).
func TestTraceDetailOfAFilteredMessageNamesNoKind(t *testing.T) {
	e := admin.TraceEvent{Kind: "filtered", Group: "g", Topic: "T", Queue: 1, Offset: 7}
	got := traceDetail(e)
	if strings.Contains(got, "tag") || !strings.Contains(got, "group g's subscription") {
		t.Fatalf("filtered row %q, want group g's subscription, of any kind", got)
	}
}
