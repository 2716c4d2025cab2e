package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// recordSpans installs an SDK tracer provider recording into an in-memory
// recorder as the global provider until the test ends, then a no-op one.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})
	return rec
}

// rootSpan starts a test span, the parent of what the client does in ctx.
func rootSpan(t *testing.T, name string) (context.Context, trace.Span) {
	t.Helper()
	return otel.Tracer("test").Start(ctxT(t, 30*time.Second), name)
}

// findSpan returns the ended span named name in trace tid, failing the
// test if there is none.
func findSpan(t *testing.T, rec *tracetest.SpanRecorder, tid trace.TraceID, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	testutil.WaitFor(t, 15*time.Second, "span "+name, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == name && s.SpanContext().TraceID() == tid {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// attrs returns s's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// wantAttrs fails the test unless s has each of want (same type and
// string form).
func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want ...attribute.KeyValue) {
	t.Helper()
	got := attrs(s)
	for _, kv := range want {
		if v, ok := got[kv.Key]; !ok || v.Type() != kv.Value.Type() || v.String() != kv.Value.String() {
			t.Errorf("span %s: %s = %q (present %v), want %q", s.Name(), kv.Key, v.String(), ok, kv.Value.String())
		}
	}
}

// wantChild fails the test unless child's parent is parent.
func wantChild(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %s (parent %s, trace %s) is not a child of %s (%s, trace %s)", child.Name(), child.Parent().SpanID(),
			child.SpanContext().TraceID(), parent.Name(), parent.SpanContext().SpanID(), parent.SpanContext().TraceID())
	}
}

// A sent message's producer span is the parent of its consumer's process
// span, whose context the handler gets.
func TestTraceSendProcess(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic, group := uniq("trace"), uniq("cg")

	var (
		mu      sync.Mutex
		handled = map[string]trace.SpanContext{} // by body
		props   = map[string]map[string]string{}
	)
	startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*",
		func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				handled[string(m.Body)] = trace.SpanContextFromContext(ctx)
				props[string(m.Body)] = m.Properties
			}
			return ConsumeSuccess, nil
		})

	ctx, root := rootSpan(t, "order")
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("now"), Tags: "created", Keys: []string{"order-1", "o1"}})
	if err != nil {
		t.Fatal(err)
	}
	delayed, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("later"), DelayLevel: 1})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	tid := root.SpanContext().TraceID()

	sends := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.Name() == "send "+topic {
			sends[attrs(s)[telemetry.KeyMessageID].AsString()] = s
		}
	}
	send, sendDelayed := sends[res.MsgID], sends[delayed.MsgID]
	if send == nil || sendDelayed == nil {
		t.Fatalf("send spans %v, want one per message", sends)
	}
	rootRO := findSpan(t, rec, tid, "order")
	wantChild(t, send, rootRO)
	wantChild(t, sendDelayed, rootRO)
	if send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("send span kind %v", send.SpanKind())
	}
	wantAttrs(t, send, telemetry.System(), telemetry.KeyOperationType.String("send"),
		telemetry.KeyDestination.String(topic), telemetry.KeyMessageID.String(res.MsgID),
		telemetry.KeyRocketMQTag.String("created"), telemetry.KeyRocketMQKeys.StringSlice([]string{"order-1", "o1"}),
		telemetry.KeyRocketMQType.String("normal"), telemetry.KeyRocketMQClient.String(p.Group()))
	wantAttrs(t, sendDelayed, telemetry.KeyRocketMQType.String("delay"), telemetry.KeyRocketMQDelay.Int(1))

	for body, s := range map[string]sdktrace.ReadOnlySpan{"now": send, "later": sendDelayed} {
		var proc sdktrace.ReadOnlySpan
		testutil.WaitFor(t, 15*time.Second, "the process span of "+body, func() bool {
			for _, e := range rec.Ended() {
				if e.Name() == "process "+topic && e.Parent().SpanID() == s.SpanContext().SpanID() {
					proc = e
					return true
				}
			}
			return false
		})
		wantChild(t, proc, s)
		if proc.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %v", proc.SpanKind())
		}
		wantAttrs(t, proc, telemetry.System(), telemetry.KeyOperationType.String("process"),
			telemetry.KeyDestination.String(topic), telemetry.KeyConsumerGroup.String(group),
			telemetry.KeyMessageID.String(attrs(s)[telemetry.KeyMessageID].AsString()),
			telemetry.KeyRocketMQReconsum.Int(0))
		mu.Lock()
		if got := handled[body]; !got.Equal(proc.SpanContext()) {
			t.Errorf("handler of %s ran in %v, want the process span %v", body, got, proc.SpanContext())
		}
		if tp := props[body][message.PropertyTraceparent]; tp == "" {
			t.Errorf("message %s has no traceparent: %v", body, props[body])
		}
		mu.Unlock()
	}
}

// A traceparent the caller put in the properties parents the send span
// when ctx carries none; tracing off, nothing is added.
func TestTraceCallerTraceparent(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("trace")
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("off")}); err != nil {
		t.Fatal(err)
	}
	if got := cl.waitStored(t, topic, 1)[0].Properties; got[message.PropertyTraceparent] != "" {
		t.Fatalf("tracing off, properties %v", got)
	}

	rec := recordSpans(t)
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("on"),
		Properties: map[string]string{message.PropertyTraceparent: tp}}); err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	send := findSpan(t, rec, tid, "send "+topic)
	if send.Parent().SpanID().String() != "00f067aa0ba902b7" || !send.Parent().IsRemote() {
		t.Fatalf("send span's parent %v", send.Parent())
	}
	for _, m := range cl.waitStored(t, topic, 2) {
		if string(m.Body) == "on" && m.Properties[message.PropertyTraceparent] !=
			"00-"+tid.String()+"-"+send.SpanContext().SpanID().String()+"-01" {
			t.Fatalf("stored traceparent %q, want the send span's", m.Properties[message.PropertyTraceparent])
		}
	}
}

// SendHalf and EndTransaction are in the caller's trace; the committed
// message carries the half send's context.
func TestTraceTransaction(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("pay")

	ctx, root := rootSpan(t, "order")
	r, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge"), Keys: []string{"order-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EndTransaction(ctx, r, Commit); err != nil {
		t.Fatal(err)
	}
	root.End()
	tid := root.SpanContext().TraceID()
	rootRO := findSpan(t, rec, tid, "order")
	send, settle := findSpan(t, rec, tid, "send "+topic), findSpan(t, rec, tid, "settle "+topic)
	wantChild(t, send, rootRO)
	wantChild(t, settle, rootRO)
	wantAttrs(t, send, telemetry.KeyRocketMQType.String("transaction"), telemetry.KeyMessageID.String(r.MsgID))
	wantAttrs(t, settle, telemetry.System(), telemetry.KeyOperationType.String("settle"),
		telemetry.KeyMessageID.String(r.MsgID), keyTxnState.String("COMMIT"))
	if settle.SpanKind() != trace.SpanKindClient {
		t.Errorf("settle span kind %v", settle.SpanKind())
	}
	got := cl.waitStored(t, topic, 1)[0]
	sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), got.Properties))
	if sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("committed message's context %v, want the half send's %v", sc, send.SpanContext())
	}
}

// A check-back's span is in the half message's trace, a child of its send.
func TestTraceCheckBack(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn.Timeout, o.Txn.CheckInterval = 200*time.Millisecond, 200*time.Millisecond
	})
	c := newClient(t, cl.ns.Addr(), nil)
	listenerCtx := make(chan trace.SpanContext, 8)
	p := newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(ctx context.Context, _ *CheckRequest) TransactionState {
			select {
			case listenerCtx <- trace.SpanContextFromContext(ctx):
			default:
			}
			return Rollback
		})})
	topic := uniq("pay")
	ctx, root := rootSpan(t, "order")
	r, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge"), Tags: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	tid := root.SpanContext().TraceID()
	send := findSpan(t, rec, tid, "send "+topic)
	check := findSpan(t, rec, tid, "check "+topic)
	wantChild(t, check, send)
	if check.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("check span kind %v", check.SpanKind())
	}
	wantAttrs(t, check, telemetry.System(), telemetry.KeyOperationType.String("process"),
		telemetry.KeyOperationName.String("check"), telemetry.KeyDestination.String(topic),
		telemetry.KeyMessageID.String(r.MsgID), telemetry.KeyRocketMQClient.String(p.Group()),
		telemetry.KeyRocketMQType.String("transaction"), telemetry.KeyRocketMQTag.String("t1"),
		keyTxnState.String("ROLLBACK"))
	if got := <-listenerCtx; got.TraceID() != tid {
		t.Errorf("listener ran in %v, want trace %s", got, tid)
	}
}

// A batch handler call starts a new trace linked to every message's.
func TestTraceBatchLinks(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic, group := uniq("trace"), uniq("cg")

	sends := map[trace.SpanID]string{}
	for _, body := range []string{"a", "b", "c"} {
		ctx, root := rootSpan(t, "order "+body)
		// One sharding key, one queue: the consumer pulls them together.
		if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(body), ShardingKey: "k"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		sends[findSpan(t, rec, root.SpanContext().TraceID(), "send "+topic).SpanContext().SpanID()] = body
	}
	cl.waitStored(t, topic, 3)
	batches := make(chan int, 8)
	startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, ConsumeBatchSize: 3}, topic, "*",
		func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
			batches <- len(msgs)
			return ConsumeSuccess, nil
		})
	if n := <-batches; n != 3 {
		t.Fatalf("handler got %d messages, want the batch of 3", n)
	}
	var proc sdktrace.ReadOnlySpan
	testutil.WaitFor(t, 15*time.Second, "the batch's process span", func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "process "+topic {
				proc = s
				return true
			}
		}
		return false
	})
	if proc.Parent().IsValid() {
		t.Errorf("batch process span has parent %v", proc.Parent())
	}
	wantAttrs(t, proc, telemetry.KeyBatchCount.Int(3), telemetry.KeyConsumerGroup.String(group))
	linked := map[string]bool{}
	for _, l := range proc.Links() {
		linked[sends[l.SpanContext.SpanID()]] = true
	}
	if !linked["a"] || !linked["b"] || !linked["c"] || len(proc.Links()) != 3 {
		t.Errorf("batch links %v, want the 3 send spans", proc.Links())
	}
}

// SendBatch has one send span; every message carries its context.
func TestTraceSendBatch(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("trace")
	ctx, root := rootSpan(t, "order")
	if _, err := p.SendBatch(ctx, []*Message{{Topic: topic, Body: []byte("1")}, {Topic: topic, Body: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	root.End()
	send := findSpan(t, rec, root.SpanContext().TraceID(), "send "+topic)
	wantAttrs(t, send, telemetry.KeyBatchCount.Int(2), telemetry.KeyRocketMQType.String("normal"))
	for _, m := range cl.waitStored(t, topic, 2) {
		if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), m.Properties)); sc.SpanID() != send.SpanContext().SpanID() {
			t.Errorf("message %s carries %v, want the batch's send span", m.Body, sc)
		}
	}
}

// With the default no-op provider a send allocates no more than without
// tracing's attributes: the span does not record, so none are built.
func TestTraceOffDoesNotRecord(t *testing.T) {
	_, span := startSend(context.Background(), "g", "normal", []*Message{{Topic: "t", Body: []byte("x")}}, "id")
	defer span.End()
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatalf("span with the no-op provider records: %v", span.SpanContext())
	}
}

// Tracing off, a send's span costs the no-op tracer's context and
// nothing more: no attributes are built.
func TestTraceOffAllocations(t *testing.T) {
	m := &Message{Topic: "t", Body: []byte("x"), Tags: "a", Keys: []string{"k1", "k2"}}
	ctx := context.Background()
	for name, tp := range map[string]trace.TracerProvider{"noop": noop.NewTracerProvider(), "default": otel.GetTracerProvider()} {
		otel.SetTracerProvider(tp)
		allocs := testing.AllocsPerRun(100, func() {
			sctx, span := startSend(ctx, "g", messageType(m), []*Message{m}, "id")
			_ = injectTrace(sctx, "UNIQ_KEY\x01id\x02")
			endSpan(span, nil)
		})
		t.Logf("%s provider: %v allocations per send span", name, allocs)
		if allocs > 2 {
			t.Errorf("%s provider: %v allocations per send span, want at most 2", name, allocs)
		}
	}
}

// Each message of a batch sent with no span in ctx keeps the trace the
// caller put in its own properties (as Send does for one message): the
// batch span does not move message 2 into message 1's trace.
func TestSendBatchKeepsEachCallersTrace(t *testing.T) {
	recordSpans(t)
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("trace")
	const (
		tp1 = "00-11111111111111111111111111111111-00f067aa0ba902b7-01"
		tp2 = "00-22222222222222222222222222222222-00f067aa0ba902b8-01"
	)
	if _, err := p.SendBatch(ctxT(t, 10*time.Second), []*Message{
		{Topic: topic, Body: []byte("1"), Properties: map[string]string{message.PropertyTraceparent: tp1}},
		{Topic: topic, Body: []byte("2"), Properties: map[string]string{message.PropertyTraceparent: tp2}},
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"1": "11111111111111111111111111111111", "2": "22222222222222222222222222222222"}
	for _, m := range cl.waitStored(t, topic, 2) {
		got := m.Properties[message.PropertyTraceparent]
		if len(got) < 35 || got[3:35] != want[string(m.Body)] {
			t.Errorf("message %s stored with traceparent %q, want one in trace %s (its caller's)", m.Body, got, want[string(m.Body)])
		}
	}
}
