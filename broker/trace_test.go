package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// recordSpans installs an SDK tracer provider that records ended spans in
// memory, for the rest of the test. Tests using it must not run in parallel.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		tp.Shutdown(t.Context())
	})
	return rec
}

// traceparent is a producer's span context as the property carries it.
func traceparent(t *testing.T, tid string) (string, trace.TraceID) {
	t.Helper()
	id, err := trace.TraceIDFromHex(tid)
	if err != nil {
		t.Fatal(err)
	}
	return "00-" + tid + "-00f067aa0ba902b7-01", id
}

// spansOf returns the ended spans of trace tid, by name.
func spansOf(rec *tracetest.SpanRecorder, tid trace.TraceID) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == tid {
			out[s.Name()] = append(out[s.Name()], s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// sendHalfTraced sends a half message with a traceparent property.
func sendHalfTraced(t *testing.T, c *remoting.Conn, topic, id, tp string) map[string]string {
	t.Helper()
	ext := sendExtV2(topic, 1, props("UNIQ_KEY", id, "KEYS", "order-"+id, "TRAN_MSG", "true", "PGROUP", "pg", "traceparent", tp, "tracestate", "hb=1"))
	ext["f"] = strconv.Itoa(int(message.TransactionPreparedType))
	resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("body-"+id))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("half send: code %d %q", resp.Code, resp.Remark)
	}
	_, phys, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"producerGroup": "pg", "tranStateTableOffset": resp.Ext("queueOffset"),
		"commitLogOffset": strconv.FormatInt(phys, 10), "msgId": id, "transactionId": id, "fromTransactionCheck": "false"}
}

// kinds lists the kinds of a message's events.
func kinds(m lifecycle.Message) []lifecycle.Kind {
	var out []lifecycle.Kind
	for _, e := range m.Events {
		out = append(out, e.Kind)
	}
	return out
}

// traceOne returns the lifecycle of the one message q names.
func traceOne(t *testing.T, b *Broker, q string) lifecycle.Message {
	t.Helper()
	msgs, err := b.MessageTrace(q, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessageTrace(%q) = %+v, %v", q, msgs, err)
	}
	return msgs[0]
}

func TestTransactionSpansFollowTheProducerTrace(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "4bf92f3577b34da6a3ce929d0e0e4736")
	ref := sendHalfTraced(t, c, "orders", "o42", tp)
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	msgs := waitQueueMsgs(t, b, "orders", 1, 1)
	if got := msgs[0].Property(message.PropertyTraceparent); got != tp || msgs[0].Property(message.PropertyTracestate) != "hb=1" {
		t.Fatalf("committed message traceparent %q, want %q", got, tp)
	}
	spans := spansOf(rec, tid)
	for _, name := range []string{"store_half orders", "end_transaction orders", "store orders"} {
		if len(spans[name]) != 1 {
			t.Fatalf("span %q: %d in the producer's trace; spans %v", name, len(spans[name]), spans)
		}
	}
	half := spans["store_half orders"][0]
	if half.Parent().SpanID().String() != "00f067aa0ba902b7" || attr(half, string(telemetry.KeyMessageID)) != "o42" ||
		attr(half, string(telemetry.KeyRocketMQType)) != telemetry.TypeTransaction || attr(half, string(telemetry.KeySystem)) != "rocketmq" ||
		attr(half, string(telemetry.KeyRocketMQKeys)) != `["order-o42"]` || attr(half, "messaging.rocketmq.flush") != "SYNC_FLUSH" {
		t.Fatalf("half span: parent %v attrs %v", half.Parent(), half.Attributes())
	}
	end := spans["end_transaction orders"][0]
	if attr(end, "messaging.rocketmq.transaction.outcome") != "commit" || attr(end, "messaging.rocketmq.transaction.from") != "client" {
		t.Fatalf("end span attrs %v", end.Attributes())
	}
	// The committed message's properties no longer say it is
	// transactional; its spans still do, as the client's.
	for _, name := range []string{"end_transaction orders", "store orders"} {
		if got := attr(spans[name][0], string(telemetry.KeyRocketMQType)); got != telemetry.TypeTransaction {
			t.Fatalf("span %q: message type %q, want %q", name, got, telemetry.TypeTransaction)
		}
	}
	if st := spans["store orders"][0]; st.Parent().SpanID() != end.SpanContext().SpanID() {
		t.Fatalf("commit store span's parent %v, want the end_transaction span", st.Parent())
	}

	// A transaction resolved by a check-back: the check and the outcome
	// are in the producer's trace too.
	tp2, tid2 := traceparent(t, "5bf92f3577b34da6a3ce929d0e0e4737")
	ref2 := sendHalfTraced(t, c, "orders", "o43", tp2)
	p := dialProducer(t, b)
	req := p.nextCheck(t)
	ans := remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{"producerGroup": "pg",
		"tranStateTableOffset": req.Ext("tranStateTableOffset"), "commitLogOffset": ref2["commitLogOffset"],
		"commitOrRollback": "8", "fromTransactionCheck": "true", "msgId": "o43", "transactionId": "o43"})
	if err := p.InvokeOneway(ans); err != nil {
		t.Fatal(err)
	}
	waitQueueMsgs(t, b, "orders", 1, 2)
	waitFor(t, "check-back spans", func() bool {
		s := spansOf(rec, tid2)
		return len(s["check_back orders"]) >= 1 && len(s["end_transaction orders"]) == 1 && len(s["store orders"]) == 1
	})
	end2 := spansOf(rec, tid2)["end_transaction orders"][0]
	if attr(end2, "messaging.rocketmq.transaction.from") != lifecycle.FromCheck {
		t.Fatalf("check-back end span attrs %v", end2.Attributes())
	}

	// The lifecycle record of the checked-back transaction, in order.
	m := traceOne(t, b, "o43")
	want := []lifecycle.Kind{lifecycle.HalfStored, lifecycle.CheckedBack, lifecycle.Committed, lifecycle.Stored}
	if got := kinds(m); !slices.Equal(got, want) {
		t.Fatalf("lifecycle of o43: %v, want %v", got, want)
	}
	if e := m.Events[2]; e.From != lifecycle.FromCheck || e.Check != 1 {
		t.Fatalf("commit event %+v", e)
	}
	if e := m.Events[3]; e.Topic != "orders" || e.Queue != 1 || e.Offset != 1 || e.Flush != "SYNC_FLUSH" {
		t.Fatalf("stored event %+v", e)
	}
	// By key and by trace id as well; consumption derived from offsets.
	if err := b.commitOffset("g", "orders", 1, 2); err != nil {
		t.Fatal(err)
	}
	if m := traceOne(t, b, "order-o43"); m.MsgID != "o43" || m.Events[len(m.Events)-1].Kind != lifecycle.Consumed ||
		m.Events[len(m.Events)-1].Group != "g" {
		t.Fatalf("by key: %+v", m)
	}
	if m := traceOne(t, b, tid2.String()); m.MsgID != "o43" {
		t.Fatalf("by trace id: %+v", m)
	}
}

func TestSendBackSpansAndDelayedLifecycle(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "6bf92f3577b34da6a3ce929d0e0e4738")
	resp := mustSend(t, c, "orders", 0, props("UNIQ_KEY", "r1", "KEYS", "order-r1", "traceparent", tp, "tracestate", "hb=1"), "body")
	_, phys, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatal(err)
	}
	// Two failures, then the dead-letter queue (maxReconsumeTimes 2).
	off := phys
	for i := 1; i <= 3; i++ {
		if r := callSendBack(t, c, sendBackExt(off, "g", "orders", 1, 2)); r.Code != remoting.RespSuccess {
			t.Fatalf("send back %d: %d %s", i, r.Code, r.Remark)
		}
		if i < 3 {
			off = waitQueueMsgs(t, b, "%RETRY%g", 0, i)[i-1].CommitLogOffset
		}
	}
	dead := waitQueueMsgs(t, b, "%DLQ%g", 0, 1)[0]
	if dead.Property(message.PropertyTraceparent) != tp || dead.Property(message.PropertyTracestate) != "hb=1" {
		t.Fatalf("DLQ copy lost traceparent: %q", dead.Properties)
	}
	spans := spansOf(rec, tid)
	if len(spans["store orders"]) != 1 || len(spans["send_back %RETRY%g"]) != 2 || len(spans["deliver_scheduled %RETRY%g"]) != 2 ||
		len(spans["dead_letter %DLQ%g"]) != 1 {
		t.Fatalf("spans of the retried message: %v", spans)
	}
	for i, s := range spans["send_back %RETRY%g"] {
		if got := attr(s, string(telemetry.KeyRocketMQReconsum)); got != strconv.Itoa(i+1) || attr(s, string(telemetry.KeyConsumerGroup)) != "g" {
			t.Fatalf("send-back span %d: attrs %v", i, s.Attributes())
		}
	}
	for i, s := range spans["deliver_scheduled %RETRY%g"] { // a delivered copy's properties no longer say delay
		if got := attr(s, string(telemetry.KeyRocketMQType)); got != telemetry.TypeDelay {
			t.Fatalf("deliver_scheduled span: message type %q, want %q", got, telemetry.TypeDelay)
		}
		// Where the copy is: the retry topic's queue 0, offsets 0 and 1.
		if q, o := attr(s, "messaging.destination.partition.id"), attr(s, "messaging.rocketmq.queue_offset"); q != "0" || o != strconv.Itoa(i) {
			t.Errorf("deliver_scheduled span %d: queue %q offset %q, want 0 and %d", i, q, o, i)
		}
	}
	if s := spans["dead_letter %DLQ%g"][0]; attr(s, "messaging.destination.partition.id") != "0" || attr(s, "messaging.rocketmq.queue_offset") != "0" {
		t.Errorf("dead_letter span: attributes %v, want queue 0, offset 0", s.Attributes())
	}
	for _, s := range spans["send_back %RETRY%g"] { // stored in the schedule topic: no place of the retry's yet
		if o := attr(s, "messaging.rocketmq.queue_offset"); o != "" {
			t.Errorf("send_back span: queue offset %q of a copy waiting in the schedule topic", o)
		}
	}
	m := traceOne(t, b, "r1")
	want := []lifecycle.Kind{lifecycle.Stored, lifecycle.SentBack, lifecycle.Delivered, lifecycle.SentBack, lifecycle.Delivered, lifecycle.DeadLettered}
	if got := kinds(m); !slices.Equal(got, want) {
		t.Fatalf("lifecycle of r1: %v, want %v", got, want)
	}

	// A delayed message: scheduled on its level, then delivered.
	sent := time.Now().Truncate(time.Millisecond) // store times are in ms
	mustSend(t, c, "orders", 2, props("UNIQ_KEY", "d1", "DELAY", "2"), "later")
	acked := time.Now()
	waitQueueMsgs(t, b, "orders", 2, 1)
	waitFor(t, "the delivery event", func() bool {
		msgs, _ := b.MessageTrace("d1", 1)
		return len(msgs) == 1 && len(msgs[0].Events) == 2
	})
	d := traceOne(t, b, "d1")
	if got := kinds(d); !slices.Equal(got, []lifecycle.Kind{lifecycle.Scheduled, lifecycle.Delivered}) {
		t.Fatalf("lifecycle of d1: %v", got)
	}
	s, dl := d.Events[0], d.Events[1]
	// Due 200 ms (level 2) after the store time, which lies within the
	// send; delivered no earlier. (Not against s.Time: that is when the
	// synchronously flushed append returned, on a loaded machine 90 ms
	// after the store time.)
	if s.Level != 2 || s.Topic != "orders" || s.DueAt.Before(sent.Add(200*time.Millisecond)) || s.DueAt.After(acked.Add(200*time.Millisecond)) ||
		dl.Topic != "orders" || dl.Queue != 2 || dl.Offset != 0 || dl.Time.Before(s.DueAt) {
		t.Fatalf("delayed events %+v", d.Events)
	}

	// A delivery time instead of a level: scheduled on the timer, with its
	// due time, trace context kept through delivery.
	sent = time.Now().Truncate(time.Millisecond)
	mustSend(t, c, "orders", 3, props("UNIQ_KEY", "d2", "TIMER_DELAY_MS", "300", "traceparent", tp), "timer")
	acked = time.Now()
	got := waitQueueMsgs(t, b, "orders", 3, 1)[0]
	if got.Property(message.PropertyTraceparent) != tp {
		t.Fatalf("delivered timer message lost traceparent: %q", got.Properties)
	}
	waitFor(t, "the timer delivery event", func() bool {
		msgs, _ := b.MessageTrace("d2", 1)
		return len(msgs) == 1 && len(msgs[0].Events) == 2
	})
	d2 := traceOne(t, b, "d2")
	// Due 300 ms after the broker took the send (e.Time, when the append
	// returned, may be any time later).
	if e := d2.Events[0]; e.Kind != lifecycle.Scheduled || e.Level != 0 || e.DueAt.Before(sent.Add(300*time.Millisecond)) ||
		e.DueAt.After(acked.Add(300*time.Millisecond)) || d2.Events[1].Kind != lifecycle.Delivered {
		t.Fatalf("timer events %+v", d2.Events)
	}
	if len(spansOf(rec, tid)["schedule orders"]) != 1 {
		t.Fatalf("no schedule span for the timer message: %v", spansOf(rec, tid))
	}
	// Its deliver span names the due time, not a level it never had.
	var timerDeliver []sdktrace.ReadOnlySpan
	waitFor(t, "the timer message's deliver span", func() bool {
		timerDeliver = spansOf(rec, tid)["deliver_scheduled orders"]
		return len(timerDeliver) == 1
	})
	if lv, due := attr(timerDeliver[0], string(telemetry.KeyRocketMQDelay)), attr(timerDeliver[0], string(telemetry.KeyRocketMQDeliver)); lv != "" ||
		due != strconv.FormatInt(d2.Events[0].DueAt.UnixMilli(), 10) {
		t.Fatalf("timer deliver span: delay level %q, delivery timestamp %q, want none and %d", lv, due, d2.Events[0].DueAt.UnixMilli())
	}
}

func TestTracingOffBuildsNoSpans(t *testing.T) {
	if tracingOn() {
		t.Fatal("tracing on with no provider installed")
	}
}

func TestBatchSpanLinksEachProducer(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp1, tid1 := traceparent(t, "7bf92f3577b34da6a3ce929d0e0e4731")
	tp2, tid2 := traceparent(t, "7bf92f3577b34da6a3ce929d0e0e4732")
	hdr := sendExtV2("orders", 0, "")
	hdr["m"] = "true"
	r := call(t, c, remoting.ReqSendBatchMessage, hdr, batchBody([]string{"a", "b"},
		[]string{props("UNIQ_KEY", "B1", "traceparent", tp1), props("UNIQ_KEY", "B2", "traceparent", tp2)}))
	if r.Code != remoting.RespSuccess {
		t.Fatalf("batch: %d %s", r.Code, r.Remark)
	}
	var batch sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "store orders" {
			batch = s
		}
	}
	if batch == nil || batch.Parent().IsValid() || len(batch.Links()) != 2 ||
		batch.Links()[0].SpanContext.TraceID() != tid1 || batch.Links()[1].SpanContext.TraceID() != tid2 ||
		attr(batch, string(telemetry.KeyBatchCount)) != "2" {
		t.Fatalf("batch span %+v", batch)
	}
	for _, id := range []string{"B1", "B2"} {
		if m := traceOne(t, b, id); len(m.Events) != 1 || m.Events[0].Kind != lifecycle.Stored {
			t.Fatalf("lifecycle of %s: %+v", id, m)
		}
	}
}

func TestParkedAndRolledBackLifecycle(t *testing.T) {
	b := startBroker(t, txnOptions(t)) // parked after 2 checks; no tracer provider
	c := dial(t, b)
	p := dialProducer(t, b) // reached, never answers
	sendHalfRaw(t, c, "orders", "p1")
	p.nextCheck(t)
	p.nextCheck(t)
	ref := sendHalfRaw(t, c, "orders", "rb1")
	if r := endTxn(t, c, ref, message.TransactionRollbackType); r.Code != remoting.RespSuccess {
		t.Fatalf("rollback: %d %s", r.Code, r.Remark)
	}
	waitFor(t, "parked event", func() bool {
		msgs, _ := b.MessageTrace("p1", 1)
		return len(msgs) == 1 && slices.Contains(kinds(msgs[0]), lifecycle.Parked)
	})
	m := traceOne(t, b, "p1")
	want := []lifecycle.Kind{lifecycle.HalfStored, lifecycle.CheckedBack, lifecycle.CheckedBack, lifecycle.Parked}
	if got := kinds(m); !slices.Equal(got[:min(len(got), 4)], want) {
		t.Fatalf("lifecycle of p1: %v, want %v first", got, want)
	}
	if m.Events[1].Check != 1 || m.Events[2].Check != 2 || m.Events[3].Check != 2 {
		t.Fatalf("check numbers: %+v", m.Events)
	}
	rb := traceOne(t, b, "order-rb1")
	if got := kinds(rb); !slices.Equal(got, []lifecycle.Kind{lifecycle.HalfStored, lifecycle.RolledBack}) || rb.Events[1].From != lifecycle.FromClient {
		t.Fatalf("lifecycle of rb1: %+v", rb)
	}
}

// A commit whose END_TRANSACTION handler stops waiting (its connection
// closed, or the sync flush timed out) is recorded all the same once the
// record lands (the txn service's await), and the producer's retry or
// check-back answer is a duplicate: the lifecycle record and the spans
// still show the commit, the committed message's store and its
// consumption.
func TestLateCommitIsTraced(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "8bf92f3577b34da6a3ce929d0e0e4739")
	ref := sendHalfTraced(t, c, "orders", "ft1", tp)

	// END_TRANSACTION arrives as the producer's connection closes (a
	// oneway commit, then shutdown): the handler's context is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ext := map[string]string{}
	for k, v := range ref {
		ext[k] = v
	}
	ext["commitOrRollback"] = strconv.Itoa(int(message.TransactionCommitType))
	if r := b.handleEndTransaction(ctx, nil, remoting.NewRequest(remoting.ReqEndTransaction, ext)); r.Code == remoting.RespSuccess {
		t.Fatalf("END_TRANSACTION with the connection gone answered SUCCESS; the test needs it to stop waiting")
	}
	waitQueueMsgs(t, b, "orders", 1, 1) // committed once durable
	// The producer retries (FLUSH_DISK_TIMEOUT is retryable): a duplicate.
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("retried commit: %d %s", r.Code, r.Remark)
	}
	if err := b.commitOffset("g", "orders", 1, 1); err != nil {
		t.Fatal(err)
	}
	m := traceOne(t, b, "ft1")
	got := kinds(m)
	for _, want := range []lifecycle.Kind{lifecycle.HalfStored, lifecycle.Committed, lifecycle.Stored, lifecycle.Consumed} {
		if !slices.Contains(got, want) {
			t.Errorf("lifecycle of a committed, consumed message lacks %q: %v", want, got)
		}
	}
	spans := spansOf(rec, tid)
	for _, name := range []string{"store_half orders", "end_transaction orders", "store orders"} {
		if len(spans[name]) != 1 {
			t.Errorf("span %q: %d in the producer's trace, want 1", name, len(spans[name]))
		}
	}
}

// A message of a topic that was deleted (and created again) was never
// consumed: a group consuming the new topic's messages does not make
// `halfback trace` say it was.
func TestConsumedNotDerivedAcrossTopicDeletion(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "old1"), "never consumed")
	waitQueue(t, b, "orders", 0, 1)
	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", r.Code, r.Remark)
	}
	haveTopic(t, b, "orders", 0)
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "new1"), "consumed")
	waitQueue(t, b, "orders", 0, 1)
	if r := syncCommit(t, c, "cg", "orders", 0, 1); r.Code != remoting.RespSuccess { // consumed new1 only
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	m := traceOne(t, b, "old1")
	if got := kinds(m); slices.Contains(got, lifecycle.Consumed) {
		t.Fatalf("lifecycle of a deleted topic's message: %+v; it was never consumed", m.Events)
	}
}

// A retry the Java client sends as a plain send to %RETRY%<group> past
// its limit lands in %DLQ%<group>: its lifecycle says dead-lettered (with
// the group) and its span is a dead_letter one, as for a send-back to the
// DLQ.
func TestRetrySendPastLimitIsDeadLettered(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "9bf92f3577b34da6a3ce929d0e0e473a")
	ext := sendExtV2(RetryTopic("g"), 0, props("UNIQ_KEY", "dl1", "traceparent", tp))
	ext["j"], ext["l"] = "3", "2"
	if resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("dead")); resp.Code != remoting.RespSuccess {
		t.Fatalf("send: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, "%DLQ%g", 0, 1)
	m := traceOne(t, b, "dl1")
	if got := kinds(m); !slices.Equal(got, []lifecycle.Kind{lifecycle.DeadLettered}) || m.Events[0].Group != "g" {
		t.Errorf("lifecycle of a retry sent past its limit: %+v, want dead-lettered by group g", m.Events)
	}
	spans := spansOf(rec, tid)
	if len(spans["dead_letter %DLQ%g"]) != 1 {
		t.Errorf("spans: %v, want one dead_letter %%DLQ%%g", spans)
	}
}

// A retry the Java client sends as a plain send to %RETRY%<group> within
// its limit (its send-back failed) is a retry: its lifecycle says sent
// back by the group for that retry, by its client, and its span is a
// send_back one; then delivered from the schedule, as a send-back's.
func TestRetrySendWithinLimitIsSentBack(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "9bf92f3577b34da6a3ce929d0e0e473b")
	ext := sendExtV2(RetryTopic("g"), 0, props("UNIQ_KEY", "rs1", "DELAY", "1", "traceparent", tp))
	ext["j"], ext["l"] = "1", "16"
	if resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("again")); resp.Code != remoting.RespSuccess {
		t.Fatalf("send: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, "%RETRY%g", 0, 1)
	waitFor(t, "the retry's delivery event", func() bool {
		msgs, _ := b.MessageTrace("rs1", 1)
		return len(msgs) == 1 && len(msgs[0].Events) == 2
	})
	m := traceOne(t, b, "rs1")
	if got := kinds(m); !slices.Equal(got, []lifecycle.Kind{lifecycle.SentBack, lifecycle.Delivered}) {
		t.Fatalf("lifecycle of a retry sent by its client: %v, want sent-back then delivered", got)
	}
	if e := m.Events[0]; e.Group != "g" || e.Reconsume != 1 || e.Level != 1 || e.From != lifecycle.FromClient || e.Topic != "%RETRY%g" {
		t.Fatalf("sent-back event %+v, want group g, retry 1 on level 1, from the client, for %%RETRY%%g", e)
	}
	if spans := spansOf(rec, tid); len(spans["send_back %RETRY%g"]) != 1 || len(spans["schedule %RETRY%g"]) != 0 {
		t.Fatalf("spans: %v, want one send_back %%RETRY%%g and no schedule span", spans)
	}
}

// A message is found by its offset message id (what a send prints beside
// its message id), not only by its message id, key or trace id.
func TestTraceByOffsetMessageID(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	resp := mustSend(t, c, "orders", 0, props("UNIQ_KEY", "u1", "KEYS", "k1"), "body")
	off := resp.Ext("msgId")
	if off == "" || off == "u1" {
		t.Fatalf("send answered msgId %q, want the offset message id", off)
	}
	if m := traceOne(t, b, off); m.MsgID != "u1" || !slices.Contains(kinds(m), lifecycle.Stored) {
		t.Fatalf("trace by offset message id %s: %+v", off, m)
	}
	if msgs, err := b.MessageTrace("0A000001000027DB00000000DEADBEEF", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("trace by an offset message id of no record: %+v, %v", msgs, err)
	}
}

// A group whose tag subscription skips a message never got it, although
// its committed offset passed it: `halfback trace` says filtered, not
// consumed (RocketMQ's CONSUMED_BUT_FILTERED).
func TestTraceFilteredByTheGroupsTags(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	hbOK(t, c, consumerHeartbeat("C1", "orders", "coupons")) // tags a || b
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "tag-a", "TAGS", "a"), "wanted")
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "tag-c", "TAGS", "c"), "skipped")
	waitQueue(t, b, "orders", 0, 2)
	if r := syncCommit(t, c, "coupons", "orders", 0, 2); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	if got := kinds(traceOne(t, b, "tag-a")); !slices.Contains(got, lifecycle.Consumed) {
		t.Fatalf("tag a: %v, want consumed", got)
	}
	got := kinds(traceOne(t, b, "tag-c"))
	if slices.Contains(got, lifecycle.Consumed) || !slices.Contains(got, lifecycle.Filtered) {
		t.Fatalf("tag c, which the group's subscription skips: %v, want filtered and not consumed", got)
	}
}

// A message its producer gave no UNIQ_KEY is named by its offset message
// id, and its retry copies carry that id in ORIGIN_MESSAGE_ID: its
// send-back, the retry's delivery and their consumption are one message's
// timeline, found by that id and by the retry copy's offset message id.
func TestRetryOfAMessageWithoutUniqKeyIsOneTimeline(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	resp := mustSend(t, c, "orders", 0, props("KEYS", "no-uniq"), "body")
	orig := resp.Ext("msgId")
	_, phys, err := message.ParseOffsetMsgID(orig)
	if err != nil {
		t.Fatal(err)
	}
	if r := callSendBack(t, c, sendBackExt(phys, "g", "orders", 1, 5)); r.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", r.Code, r.Remark)
	}
	retry := waitQueueMsgs(t, b, "%RETRY%g", 0, 1)[0]
	if err := b.commitOffset("g", "orders", 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.commitOffset("g", "%RETRY%g", 0, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry's delivery event", func() bool {
		msgs, _ := b.MessageTrace("no-uniq", 10)
		for _, m := range msgs {
			if slices.Contains(kinds(m), lifecycle.Delivered) {
				return true
			}
		}
		return false
	})
	want := []lifecycle.Kind{lifecycle.Stored, lifecycle.SentBack, lifecycle.Delivered, lifecycle.Consumed, lifecycle.Consumed}
	for _, q := range []string{orig, "no-uniq", retry.MsgID()} {
		msgs, err := b.MessageTrace(q, 10)
		if err != nil || len(msgs) != 1 || msgs[0].MsgID != orig || !slices.Equal(kinds(msgs[0]), want) {
			var got []string
			for _, m := range msgs {
				got = append(got, m.MsgID+fmt.Sprint(kinds(m)))
			}
			t.Errorf("trace %s: %v (err %v), want one message %s %v", q, got, err, orig, want)
		}
	}
}

// A transaction whose half message has no UNIQ_KEY is named by the half
// record's offset message id: the committed message's store and its
// consumption belong to that timeline too, found by the half's id, by
// the committed record's offset message id (what a consumer sees as its
// message id) and by its key, not split into a second message.
func TestCommitOfAMessageWithoutUniqKeyIsOneTimeline(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	half, committed := commitWithoutUniqKey(t, b, c, "order-nu")
	if err := b.commitOffset("g", "orders", 0, 1); err != nil {
		t.Fatal(err)
	}
	want := []lifecycle.Kind{lifecycle.HalfStored, lifecycle.Committed, lifecycle.Stored, lifecycle.Consumed}
	wantOneTimeline(t, b, []string{half, committed.MsgID(), "order-nu"}, half, want)
}

// commitWithoutUniqKey sends a half message with key and no UNIQ_KEY to
// orders queue 0 and commits it; it returns the half record's offset
// message id and the committed record.
func commitWithoutUniqKey(t *testing.T, b *Broker, c *remoting.Conn, key string) (string, message.Ext) {
	t.Helper()
	ext := sendExtV2("orders", 0, props("KEYS", key, "TRAN_MSG", "true", "PGROUP", "pg"))
	ext["f"] = strconv.Itoa(int(message.TransactionPreparedType))
	resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("body"))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("half send: code %d %q", resp.Code, resp.Remark)
	}
	half := resp.Ext("msgId")
	_, phys, err := message.ParseOffsetMsgID(half)
	if err != nil {
		t.Fatal(err)
	}
	ref := map[string]string{"producerGroup": "pg", "tranStateTableOffset": resp.Ext("queueOffset"),
		"commitLogOffset": strconv.FormatInt(phys, 10), "msgId": half, "fromTransactionCheck": "false"}
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	return half, waitQueueMsgs(t, b, "orders", 0, 1)[0]
}

// wantOneTimeline checks that each of qs traces to one message, id, with
// the events want.
func wantOneTimeline(t *testing.T, b *Broker, qs []string, id string, want []lifecycle.Kind) {
	t.Helper()
	for _, q := range qs {
		msgs, err := b.MessageTrace(q, 10)
		if err != nil || len(msgs) != 1 || msgs[0].MsgID != id || !slices.Equal(kinds(msgs[0]), want) {
			var got []string
			for _, m := range msgs {
				got = append(got, m.MsgID+fmt.Sprint(kinds(m)))
			}
			t.Errorf("trace %s: %v (err %v), want one message %s %v", q, got, err, id, want)
		}
	}
}

// A message stored twice at the same offset of two queues (a producer's
// retry of a send that timed out, sent to the next queue) and consumed
// from both has two consumed events, one per queue: neither hides the
// other.
func TestConsumedOncePerQueue(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	for q := range 2 {
		mustSend(t, c, "orders", q, props("UNIQ_KEY", "twice"), "body")
		waitQueue(t, b, "orders", int32(q), 1)
		if err := b.commitOffset("g", "orders", int32(q), 1); err != nil {
			t.Fatal(err)
		}
	}
	var queues []int32
	for _, e := range traceOne(t, b, "twice").Events {
		if e.Kind == lifecycle.Consumed {
			queues = append(queues, e.Queue)
		}
	}
	if slices.Sort(queues); !slices.Equal(queues, []int32{0, 1}) {
		t.Fatalf("consumed events on queues %v, want one on each of queues 0 and 1", queues)
	}
}

// An orderly group's retry sent as a plain send (the clients' fallback
// when a send-back is refused) goes to the DLQ whatever its count, which
// is the consumer's own (halfback's client sends the stored count + 1):
// the dead letter is recorded as the consumer's request, so `halfback
// trace` claims no broker retry count for it.
func TestOrderlyRetrySendIsDeadLetteredAtTheConsumersRequest(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	lockQueues(t, c, "ordered", "C1", 0) // an orderly group
	ext := sendExtV2(RetryTopic("ordered"), 0, props("UNIQ_KEY", "ord1"))
	ext["j"], ext["l"] = "1", "0"
	if resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("dead")); resp.Code != remoting.RespSuccess {
		t.Fatalf("send: %d %s", resp.Code, resp.Remark)
	}
	waitQueueMsgs(t, b, "%DLQ%ordered", 0, 1)
	m := traceOne(t, b, "ord1")
	if got := kinds(m); !slices.Equal(got, []lifecycle.Kind{lifecycle.DeadLettered}) || m.Events[0].From != lifecycle.FromConsumer {
		t.Fatalf("lifecycle of an orderly group's retry send: %+v, want dead-lettered from %q", m.Events, lifecycle.FromConsumer)
	}
}

// A delayed send's schedule span names the topic and queue the message
// will be delivered to, as the send's answer does: its partition is the
// real queue, not the schedule queue of its delay level.
func TestScheduleSpanNamesTheRealQueue(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "abf92f3577b34da6a3ce929d0e0e473b")
	resp := mustSend(t, c, "orders", 2, props("UNIQ_KEY", "dq1", "DELAY", "1", "traceparent", tp), "later")
	if resp.Ext("queueId") != "2" {
		t.Fatalf("send answered queue %q, want 2", resp.Ext("queueId"))
	}
	spans := spansOf(rec, tid)["schedule orders"]
	if len(spans) != 1 {
		t.Fatalf("schedule spans: %v", spansOf(rec, tid))
	}
	if got := attr(spans[0], "messaging.destination.partition.id"); got != "2" {
		t.Fatalf("schedule span's partition %q, want the real queue 2; attrs %v", got, spans[0].Attributes())
	}
	// A string, as the semantic conventions and the broker's metrics
	// have it: a backend matches "2", not 2.
	for _, kv := range spans[0].Attributes() {
		if kv.Key == "messaging.destination.partition.id" && kv.Value.Type() != attribute.STRING {
			t.Errorf("schedule span's messaging.destination.partition.id is a %v, want a string", kv.Value.Type())
		}
	}
	if e := traceOne(t, b, "dq1").Events[0]; e.Kind != lifecycle.Scheduled || e.Topic != "orders" || e.Queue != 2 {
		t.Fatalf("scheduled event %+v, want orders queue 2", e)
	}
}

// The retries of a committed message without UNIQ_KEY belong to its
// timeline too: their ORIGIN_MESSAGE_ID is the committed record's offset
// message id (what the consumer saw as its message id), while the
// message is named by its half record's. Traced by either id, by a
// retry's offset message id or by its key, it is one message, not the
// half, commit and store in one and the send-back and retry in another.
func TestRetryOfACommittedMessageWithoutUniqKeyIsOneTimeline(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	half, committed := commitWithoutUniqKey(t, b, c, "order-rt")
	if r := callSendBack(t, c, sendBackExt(committed.CommitLogOffset, "g", "orders", 1, 5)); r.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", r.Code, r.Remark)
	}
	retry := waitQueueMsgs(t, b, "%RETRY%g", 0, 1)[0]
	waitFor(t, "the retry's delivery event", func() bool {
		msgs, _ := b.MessageTrace("order-rt", 10)
		for _, m := range msgs {
			if slices.Contains(kinds(m), lifecycle.Delivered) {
				return true
			}
		}
		return false
	})
	want := []lifecycle.Kind{lifecycle.HalfStored, lifecycle.Committed, lifecycle.Stored, lifecycle.SentBack, lifecycle.Delivered}
	wantOneTimeline(t, b, []string{half, committed.MsgID(), retry.MsgID(), "order-rt"}, half, want)
}
