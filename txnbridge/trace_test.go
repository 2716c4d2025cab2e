package txnbridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/samples/coupon"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// One order is one trace: the starter's root span, the workflow and its
// activities (Temporal's interceptor, added by the plugin), the
// activities' half sends and commits (package client's spans), the
// broker's storing and ending of them, and the downstream coupon
// consumer's processing of OrderPaid.
func TestPluginTracesAnOrder(t *testing.T) {
	rec := recordSpans(t) // before the plugin makes its interceptor
	s := startStack(t, quietTxnTimeout)
	starter := tracedStarter(t, s)
	ctx := context.Background()
	if err := s.db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}
	// The downstream coupon consumer of OrderPaid: its processing joins
	// the order's trace through the message's traceparent.
	coupons, err := coupon.Start(ctx, s.client, s.db, coupon.Options{Logger: txnbridgetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coupons.Close() })

	const id = "traced-1"
	tid, _ := payTracedOrder(t, s, starter, id)

	// byName returns the ended spans of the order's trace named name.
	byName := func(name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == tid && sp.Name() == name {
				out = append(out, sp)
			}
		}
		return out
	}
	// childOf returns the spans named name whose parent is one of parents.
	childOf := func(name string, parents []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, sp := range byName(name) {
			for _, p := range parents {
				if sp.Parent().SpanID() == p.SpanContext().SpanID() {
					out = append(out, sp)
				}
			}
		}
		return out
	}
	want := []string{
		"StartWorkflow:" + workflows.OrderPaymentWorkflowName,
		"RunWorkflow:" + workflows.OrderPaymentWorkflowName,
		"SignalWorkflow:" + workflows.SignalPay,
		"RunActivity:" + workflows.ActivitySendHalf,
		"RunActivity:" + workflows.ActivityEndTransaction,
		"RunActivity:" + workflows.ActivityCreateOrderLocal,
		"RunActivity:" + workflows.ActivityMarkPaidLocal,
		"send " + workflows.TopicOrderEvents,
		"settle " + workflows.TopicOrderEvents,
	}
	testutil.WaitFor(t, 30*time.Second, "the order's spans", func() bool {
		for _, n := range want {
			if len(byName(n)) == 0 {
				return false
			}
		}
		// Two half sends (create, pay), each committed.
		return len(childOf("send "+workflows.TopicOrderEvents, byName("RunActivity:"+workflows.ActivitySendHalf))) >= 2 &&
			len(childOf("settle "+workflows.TopicOrderEvents, byName("RunActivity:"+workflows.ActivityEndTransaction))) >= 2
	})
	halfSends := childOf("send "+workflows.TopicOrderEvents, byName("RunActivity:"+workflows.ActivitySendHalf))
	for _, sp := range halfSends {
		if sp.SpanKind() != trace.SpanKindProducer {
			t.Errorf("half send span kind %v", sp.SpanKind())
		}
	}
	// The broker's spans: storing each half message, a child of its send,
	// and ending each transaction; and the coupon consumer processing
	// OrderPaid, a child of its half send.
	testutil.WaitFor(t, 30*time.Second, "the broker's and the consumer's spans", func() bool {
		return len(childOf("store_half "+workflows.TopicOrderEvents, halfSends)) >= 2 &&
			len(byName("end_transaction "+workflows.TopicOrderEvents)) >= 2 &&
			len(childOf("process "+workflows.TopicOrderEvents, halfSends)) >= 1
	})
	for _, sp := range childOf("process "+workflows.TopicOrderEvents, halfSends) {
		if sp.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %v", sp.SpanKind())
		}
	}
	if t.Failed() || testing.Verbose() {
		var names []string
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == tid {
				names = append(names, sp.Name()+" ("+sp.InstrumentationScope().Name+")")
			}
		}
		t.Logf("trace %s:\n  %s", tid, strings.Join(names, "\n  "))
	}
}

// payTracedOrder starts order id under a root span of its own, pays it at
// once (taken when the workflow waits for it, see
// TestPluginAgainstBrokerAndTemporal's "fenced"), waits until it is PAID
// and returns its trace id and run id.
func payTracedOrder(t *testing.T, s *stack, starter temporalclient.Client, id string) (trace.TraceID, string) {
	t.Helper()
	ctx, root := otel.Tracer("test").Start(context.Background(), "order "+id)
	run, err := starter.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue,
		WorkflowExecutionTimeout: 2 * time.Minute}, workflows.OrderPaymentWorkflowName,
		workflows.OrderInput{OrderID: id, User: "alice", SKU: "sku", Qty: 1, Amount: 700})
	if err != nil {
		t.Fatal(err)
	}
	if err := starter.SignalWorkflow(ctx, id, "", workflows.SignalPay, workflows.PayInput{PaymentID: "p", Amount: 700}); err != nil {
		t.Fatal(err)
	}
	root.End()
	if res := s.result(t, run); res.Status != workflows.StatusPaid {
		t.Fatalf("result %+v", res)
	}
	return root.SpanContext().TraceID(), run.GetRunID()
}

// recordSpans makes a recorder of every span the global tracer provider
// until the test ends (then a no-op one again).
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})
	return rec
}

// tracedStarter is a Temporal client of s with the plugin's tracing
// interceptor, as the sample starter uses.
func tracedStarter(t *testing.T, s *stack) temporalclient.Client {
	t.Helper()
	ti, err := txnbridge.NewTracingInterceptor()
	if err != nil {
		t.Fatal(err)
	}
	starter, err := temporalclient.NewClientFromExisting(s.tc, temporalclient.Options{
		Interceptors: []interceptor.ClientInterceptor{ti}, Logger: txnbridgetest.TemporalLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(starter.Close)
	return starter
}
