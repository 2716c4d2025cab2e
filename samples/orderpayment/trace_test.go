package orderpayment

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// Each order is started and paid inside its own root span "order <id>",
// whose trace id the outcome notes: against a Temporal dev server, the
// client's tracing interceptor records the start and the pay signal as
// children of that span, not of the caller's.
func TestStartOrderInRootSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp) // before the interceptor is made
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})
	srv := txnbridgetest.StartDevServer(t)
	ti, err := txnbridge.NewTracingInterceptor()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := temporalclient.NewClientFromExisting(txnbridgetest.DialTemporal(t, srv),
		temporalclient.Options{Interceptors: []interceptor.ClientInterceptor{ti}, Logger: txnbridgetest.TemporalLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)

	// The caller's own span is not the parent: every order is a trace.
	ctx, caller := otel.Tracer("test").Start(context.Background(), "starter")
	defer caller.End()
	o := Options{Orders: 1, TaskQueue: "trace-test", Prefix: "o"}.withDefaults()
	var out Outcome
	if _, err := startOrder(ctx, tc, o, o.input(0), true, &out); err != nil {
		t.Fatal(err)
	}
	var root sdktrace.ReadOnlySpan
	children := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		if sp.Name() == "order o-1" {
			root = sp
		} else {
			children[sp.Name()] = sp
		}
	}
	if root == nil || root.Parent().IsValid() {
		t.Fatalf("no root span \"order o-1\" among %v", rec.Ended())
	}
	rc := root.SpanContext()
	if out.TraceID != rc.TraceID().String() || rc.TraceID() == caller.SpanContext().TraceID() || !out.PaySent {
		t.Fatalf("outcome %+v, root span %v", out, rc)
	}
	for _, name := range []string{"StartWorkflow:" + workflows.OrderPaymentWorkflowName, "SignalWorkflow:" + workflows.SignalPay} {
		sp, ok := children[name]
		if !ok {
			t.Fatalf("no span %q; ended: %v", name, rec.Ended())
		}
		if sp.Parent().SpanID() != rc.SpanID() || sp.SpanContext().TraceID() != rc.TraceID() {
			t.Fatalf("span %q has parent %v in trace %v, want the root span %v in trace %v",
				name, sp.Parent().SpanID(), sp.SpanContext().TraceID(), rc.SpanID(), rc.TraceID())
		}
	}
}
