package txnbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// tracePaths fails the first attempt of the first SendHalf, so that
// Temporal retries it, and holds every EndTransaction until the broker
// has checked a half message back, so that the resolver answers one.
type tracePaths struct {
	rec    *tracetest.SpanRecorder
	failed atomic.Bool

	mu      sync.Mutex
	retried string // activity id of the retried SendHalf
}

// checked reports whether the client has answered a check-back.
func (p *tracePaths) checked() bool {
	for _, sp := range p.rec.Ended() {
		if sp.Name() == "check "+workflows.TopicOrderEvents {
			return true
		}
	}
	return false
}

// run is the activity interceptor's wrap (see wrapActivities).
func (p *tracePaths) run(ctx context.Context, next func() (any, error)) (any, error) {
	info := activity.GetInfo(ctx)
	switch info.ActivityType.Name {
	case workflows.ActivitySendHalf:
		if info.Attempt == 1 && p.failed.CompareAndSwap(false, true) {
			return nil, errors.New("test: the first attempt fails")
		}
		if info.Attempt > 1 {
			p.mu.Lock()
			p.retried = info.ActivityID
			p.mu.Unlock()
		}
	case workflows.ActivityEndTransaction:
		deadline := time.Now().Add(30 * time.Second)
		for !p.checked() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return next()
}

// One order whose first SendHalf attempt fails and whose half message is
// checked back before the workflow ends it is still one trace: the
// retried attempt's RunActivity span (its header is the one the workflow
// scheduled the activity with), its send, the half message's
// traceparent, the broker's check-back and the client's "check" span
// around the resolver all carry the order's trace id; no span of the
// test (one order only) lands in another trace.
func TestPluginTracesRetriedSendAndCheckBack(t *testing.T) {
	rec := recordSpans(t) // before the plugin makes its interceptor
	p := &tracePaths{rec: rec}
	// Traced as the worker is: the payment check's signal, handled when it
	// comes before the paid order completes, is in the order's trace too.
	s := startTracedStackWith(t, txnbridgetest.DefaultTxnTimeout, worker.Options{Interceptors: []interceptor.WorkerInterceptor{wrapActivities(p.run)}})
	starter := s.tc
	ctx := context.Background()
	if err := s.db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}

	const id = "traced-retry-1"
	tid, runID := payTracedOrder(t, s, starter, id)
	defer func() {
		if t.Failed() || testing.Verbose() {
			var names []string
			for _, sp := range rec.Ended() {
				names = append(names, sp.Name()+" trace "+sp.SpanContext().TraceID().String()+" parent "+sp.Parent().SpanID().String())
			}
			t.Logf("order trace %s; spans:\n  %s", tid, strings.Join(names, "\n  "))
		}
	}()

	// (3) The retried SendHalf: its RunActivity span, its send, and the
	// half message it stored.
	p.mu.Lock()
	retried := p.retried
	p.mu.Unlock()
	if !p.failed.Load() || retried == "" {
		t.Fatalf("SendHalf was not retried (failed %v, retried %q)", p.failed.Load(), retried)
	}
	var runAct, send sdktrace.ReadOnlySpan
	testutil.WaitFor(t, 30*time.Second, "the retried SendHalf's spans", func() bool {
		runAct, send = nil, nil
		for _, sp := range rec.Ended() {
			if sp.Name() != "RunActivity:"+workflows.ActivitySendHalf {
				continue
			}
			for _, a := range sp.Attributes() {
				if string(a.Key) == "temporalActivityID" && a.Value.AsString() == retried {
					runAct = sp
				}
			}
		}
		if runAct == nil {
			return false
		}
		for _, sp := range rec.Ended() {
			if sp.Name() == "send "+workflows.TopicOrderEvents && sp.Parent().SpanID() == runAct.SpanContext().SpanID() {
				send = sp
			}
		}
		return send != nil
	})
	if got := runAct.SpanContext().TraceID(); got != tid {
		t.Errorf("retried attempt's RunActivity span in trace %s, want the order's %s", got, tid)
	}
	if got := send.SpanContext().TraceID(); got != tid {
		t.Errorf("retried attempt's send span in trace %s, want the order's %s", got, tid)
	}
	createID := workflows.StepTxnID(id, runID, "create")
	var stored *txnbridgetest.Stored
	testutil.WaitFor(t, 30*time.Second, "the create step's message stored", func() bool {
		for _, m := range s.broker.Stored(t, workflows.TopicOrderEvents) {
			if m.MsgID == createID {
				stored = &m
				return true
			}
		}
		return false
	})
	if want := "00-" + tid.String() + "-" + send.SpanContext().SpanID().String() + "-"; !strings.HasPrefix(stored.Traceparent, want) {
		t.Errorf("create step's message traceparent %q, want the retried send's %s..", stored.Traceparent, want)
	}

	// (2) The check-back of a half message, answered by the resolver:
	// the broker's check_back span and the client's check span.
	for _, name := range []string{"check " + workflows.TopicOrderEvents, "check_back " + workflows.TopicOrderEvents} {
		n := 0
		for _, sp := range rec.Ended() {
			if sp.Name() != name {
				continue
			}
			n++
			if got := sp.SpanContext().TraceID(); got != tid {
				t.Errorf("span %q in trace %s (parent %v), want the order's %s", name, got, sp.Parent().SpanID(), tid)
			}
		}
		if n == 0 {
			t.Errorf("no span %q: no check-back answered", name)
		}
	}
	// One order: every span is in its trace, none a root of its own but
	// the order's.
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() != tid {
			t.Errorf("span %q (%s) in trace %s, not the order's", sp.Name(), sp.InstrumentationScope().Name, sp.SpanContext().TraceID())
		}
	}
}

// tracedSignals fails the first fail signals and notes the trace id of
// each signal's context.
type tracedSignals struct {
	fail int

	mu     sync.Mutex
	traces []trace.TraceID
}

func (s *tracedSignals) SignalWorkflow(ctx context.Context, _, _, _ string, _ any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traces = append(s.traces, trace.SpanContextFromContext(ctx).TraceID())
	if len(s.traces) <= s.fail {
		return errors.New("connection refused")
	}
	return nil
}

func (s *tracedSignals) calls() []trace.TraceID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.traces)
}

// A payment check delivered from its delay level, whose signal fails
// twice, stays in the order's trace on every delivery: the check
// consumer's "process" span of the first delivery and of each
// redelivery from the retry topic is a child of the check's send, and
// the signal's context (under which a Temporal client with the tracing
// interceptor records its SignalWorkflow span) carries it.
func TestCheckRetriesStayInTheOrderTrace(t *testing.T) {
	rec := recordSpans(t)
	s := &tracedSignals{fail: 2}
	_, _, p := startChecks(t, client.ConsumerOptions{}, s)
	ctx, root := otel.Tracer("test").Start(context.Background(), "order o1")
	sendCheck(t, ctx, p, 1)
	root.End()
	tid := root.SpanContext().TraceID()
	testutil.WaitFor(t, 30*time.Second, "the check signalled after two failures", func() bool {
		return len(s.calls()) == s.fail+1
	})
	for i, got := range s.calls() {
		if got != tid {
			t.Errorf("signal %d in trace %s, want the order's %s", i+1, got, tid)
		}
	}
	process := "process " + workflows.TopicPaymentCheck
	n := 0
	testutil.WaitFor(t, 30*time.Second, "a process span per delivery", func() bool {
		n = 0
		for _, sp := range rec.Ended() {
			if sp.Name() == process {
				n++
			}
		}
		return n >= s.fail+1
	})
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() != tid {
			t.Errorf("span %q (%s) in trace %s, not the order's %s", sp.Name(), sp.InstrumentationScope().Name, sp.SpanContext().TraceID(), tid)
		}
	}
	if t.Failed() || testing.Verbose() {
		var names []string
		for _, sp := range rec.Ended() {
			names = append(names, sp.Name())
		}
		t.Logf("trace %s:\n  %s", tid, strings.Join(names, "\n  "))
	}
}

// signalTraces notes the trace id of each signal's context by workflow
// id.
type signalTraces struct {
	mu     sync.Mutex
	traces map[string]trace.TraceID
}

func (s *signalTraces) SignalWorkflow(ctx context.Context, id, _, _ string, _ any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traces[id] = trace.SpanContextFromContext(ctx).TraceID()
	return nil
}

func (s *signalTraces) get() map[string]trace.TraceID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.traces)
}

// With a CheckConsumer.ConsumeBatchSize above one, a handler call gets
// the checks of several orders under one "process" span, which starts a
// trace of its own (linked to each message's): each check's signal still
// joins its own order's trace, not that batch's.
func TestBatchedChecksSignalInTheirOrdersTrace(t *testing.T) {
	recordSpans(t)
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	p, err := c.NewProducer(client.ProducerOptions{Group: "check-sender"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	// Both checks are stored, in one queue, before the consumer starts:
	// its first pull hands them to one handler call.
	want := map[string]trace.TraceID{}
	for _, order := range []string{"o1", "o2"} {
		ctx, root := otel.Tracer("test").Start(context.Background(), "order "+order)
		body, _ := json.Marshal(workflows.PaymentCheck{OrderID: order, Check: 1})
		_, err := p.Send(ctx, &client.Message{Topic: workflows.TopicPaymentCheck, Tags: workflows.TagPaymentCheck,
			Keys: []string{order}, ShardingKey: "one-queue", Body: body})
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		want[order] = root.SpanContext().TraceID()
	}
	s := &signalTraces{traces: map[string]trace.TraceID{}}
	pc, err := txnbridge.StartCheckConsumer(context.Background(), txnbridge.Options{Client: c, DB: &orders.DB{},
		Logger: txnbridgetest.Logger(t), CheckConsumer: client.ConsumerOptions{ConsumeBatchSize: 2,
			RebalanceInterval: 200 * time.Millisecond}}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	testutil.WaitFor(t, 30*time.Second, "both checks signalled", func() bool { return len(s.get()) == 2 })
	for order, got := range s.get() {
		if got != want[order] {
			t.Errorf("order %s's check signalled in trace %s, want the order's %s", order, got, want[order])
		}
	}
}

// A SendHalf attempt that stores its half message and then fails (its
// answer lost, say) is retried by Temporal: the retry's send is a span of
// its own in the order's trace, with the same message id, and the broker
// answers it with the live half message. Its store_half span says so
// (messaging.rocketmq.transaction.repeated), and one message is stored.
func TestPluginTracesRepeatedHalfSend(t *testing.T) {
	rec := recordSpans(t) // before the plugin makes its interceptor
	var failed atomic.Bool
	lost := func(ctx context.Context, next func() (any, error)) (any, error) {
		res, err := next()
		if info := activity.GetInfo(ctx); info.ActivityType.Name == workflows.ActivitySendHalf && err == nil &&
			failed.CompareAndSwap(false, true) {
			return nil, errors.New("test: the answer of a stored half message is lost")
		}
		return res, err
	}
	s := startTracedStackWith(t, quietTxnTimeout, worker.Options{Interceptors: []interceptor.WorkerInterceptor{wrapActivities(lost)}})
	if err := s.db.SetStock(context.Background(), "sku", 1); err != nil {
		t.Fatal(err)
	}
	const id = "traced-repeat-1"
	tid, runID := payTracedOrder(t, s, s.tc, id)
	createID := workflows.StepTxnID(id, runID, "create")
	if !failed.Load() {
		t.Fatal("no SendHalf attempt failed after storing")
	}
	s.events(t, id, createID, workflows.StepTxnID(id, runID, "pay"))

	msgID := func(sp sdktrace.ReadOnlySpan) string {
		for _, a := range sp.Attributes() {
			if a.Key == "messaging.message.id" {
				return a.Value.AsString()
			}
		}
		return ""
	}
	repeated := func(sp sdktrace.ReadOnlySpan) bool {
		for _, a := range sp.Attributes() {
			if a.Key == "messaging.rocketmq.transaction.repeated" {
				return a.Value.AsBool()
			}
		}
		return false
	}
	var sends, stores []sdktrace.ReadOnlySpan
	testutil.WaitFor(t, 30*time.Second, "two sends and two store_half spans of the create step", func() bool {
		sends, stores = nil, nil
		for _, sp := range rec.Ended() {
			if msgID(sp) != createID {
				continue
			}
			switch sp.Name() {
			case "send " + workflows.TopicOrderEvents:
				sends = append(sends, sp)
			case "store_half " + workflows.TopicOrderEvents:
				stores = append(stores, sp)
			}
		}
		return len(sends) == 2 && len(stores) == 2
	})
	if sends[0].SpanContext().SpanID() == sends[1].SpanContext().SpanID() ||
		sends[0].Parent().SpanID() == sends[1].Parent().SpanID() {
		t.Errorf("the two sends share a span or a parent: %v %v", sends[0].SpanContext(), sends[1].SpanContext())
	}
	var repeats int
	for _, sp := range append(sends, stores...) {
		if got := sp.SpanContext().TraceID(); got != tid {
			t.Errorf("span %q in trace %s, want the order's %s", sp.Name(), got, tid)
		}
	}
	for i, sp := range stores {
		if sp.Parent().SpanID() != sends[i].SpanContext().SpanID() {
			t.Errorf("store_half span %d is not a child of send %d", i, i)
		}
		if repeated(sp) {
			repeats++
		}
	}
	if repeats != 1 || repeated(stores[0]) {
		t.Errorf("%d of the 2 store_half spans marked repeated (first %v), want the second only", repeats, repeated(stores[0]))
	}
	// The message committed is the half message the first attempt stored.
	for _, m := range s.broker.Stored(t, workflows.TopicOrderEvents) {
		if want := "00-" + tid.String() + "-" + sends[0].SpanContext().SpanID().String() + "-"; m.MsgID == createID &&
			!strings.HasPrefix(m.Traceparent, want) {
			t.Errorf("create step's message traceparent %q, want the first send's %s..", m.Traceparent, want)
		}
	}
}
