package orderpayment

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/sdk/mocks"

	"github.com/halfbackmq/halfback/workflows"
)

// Each order is started and paid inside its own root span "order <id>",
// whose trace id the outcome notes.
func TestStartOrderInRootSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})

	var started, paid trace.SpanContext
	tc := &mocks.Client{}
	tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.OrderPaymentWorkflowName, mock.Anything).
		Run(func(args mock.Arguments) { started = trace.SpanContextFromContext(args.Get(0).(context.Context)) }).
		Return(&mocks.WorkflowRun{}, nil)
	tc.On("SignalWorkflow", mock.Anything, "o-1", "", workflows.SignalPay, mock.Anything).
		Run(func(args mock.Arguments) { paid = trace.SpanContextFromContext(args.Get(0).(context.Context)) }).
		Return(nil)

	// The caller's own span is not the parent: every order is a trace.
	ctx, caller := otel.Tracer("test").Start(context.Background(), "starter")
	defer caller.End()
	o := Options{Orders: 1, TaskQueue: "q", Prefix: "o"}.withDefaults()
	var out Outcome
	if _, err := startOrder(ctx, tc, o, o.input(0), true, &out); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "order o-1" || spans[0].Parent().IsValid() {
		t.Fatalf("spans %v, want one root span \"order o-1\"", spans)
	}
	root := spans[0].SpanContext()
	if out.TraceID != root.TraceID().String() || root.TraceID() == caller.SpanContext().TraceID() || !out.PaySent {
		t.Fatalf("outcome %+v, root span %v", out, root)
	}
	if !started.Equal(root) || !paid.Equal(root) {
		t.Fatalf("workflow started in %v and paid in %v, want the root span %v", started, paid, root)
	}
}
