package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/workflows"
)

// An unpaid order's delayed checks join its trace: the broker's schedule
// and deliver_scheduled spans of each check are children of its send, and
// the check consumer's
// "process payment-check" span (a child of the check's send, through the
// message's traceparent) is the parent of the SignalWorkflow span of the
// signal it sends, whose HandleSignal span in the workflow follows. The
// worker's Temporal client carries the tracing interceptor; the plugin
// adds none, so no span is recorded twice (nested in one of its name).
func TestCheckSignalsJoinTheOrderTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp) // before start makes the interceptor
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})
	cfg := testConfig(t, devServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := start(ctx, cfg, testLogger(t, "worker"), options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}

	id := "traced-" + time.Now().Format("150405.000000") // unique on the shared dev server
	octx, root := otel.Tracer("test").Start(ctx, "order "+id)
	run, err := s.temporal.ExecuteWorkflow(octx, temporalclient.StartWorkflowOptions{ID: id, TaskQueue: cfg.Temporal.TaskQueue},
		workflows.OrderPaymentWorkflowName, workflows.OrderInput{OrderID: id, User: "ann", SKU: "sku", Qty: 1, Amount: 100})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.OrderResult
	if err := run.Get(ctx, &res); err != nil || res.Status != workflows.StatusCancelled {
		t.Fatalf("order %+v, %v; want it cancelled, unpaid", res, err)
	}
	tid := root.SpanContext().TraceID()
	spans := func() []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == tid {
				out = append(out, sp)
			}
		}
		return out
	}
	// childrenOf returns the spans named name whose parent is named parent.
	childrenOf := func(all []sdktrace.ReadOnlySpan, name, parent string) []sdktrace.ReadOnlySpan {
		byID := map[[8]byte]sdktrace.ReadOnlySpan{}
		for _, sp := range all {
			byID[sp.SpanContext().SpanID()] = sp
		}
		var out []sdktrace.ReadOnlySpan
		for _, sp := range all {
			if p, ok := byID[sp.Parent().SpanID()]; ok && sp.Name() == name && p.Name() == parent {
				out = append(out, sp)
			}
		}
		return out
	}
	process := "process " + workflows.TopicPaymentCheck
	signal := "SignalWorkflow:" + workflows.SignalPaymentCheck
	handle := "HandleSignal:" + workflows.SignalPaymentCheck
	send := "send " + workflows.TopicPaymentCheck
	testutil.WaitFor(t, 30*time.Second, "a signal span per payment check", func() bool {
		all := spans()
		return len(childrenOf(all, signal, process)) >= res.Checks && len(childrenOf(all, handle, signal)) >= res.Checks
	})
	// The broker's steps of each delayed check, between its send and its
	// processing: scheduled on its delay level, delivered when due.
	testutil.WaitFor(t, 30*time.Second, "a schedule and a delivery span per payment check", func() bool {
		all := spans()
		return len(childrenOf(all, "schedule "+workflows.TopicPaymentCheck, send)) >= res.Checks &&
			len(childrenOf(all, "deliver_scheduled "+workflows.TopicPaymentCheck, send)) >= res.Checks &&
			len(childrenOf(all, process, send)) >= res.Checks
	})
	all := spans()
	for _, sp := range all {
		for _, p := range all {
			if sp.Parent().SpanID() == p.SpanContext().SpanID() && sp.Name() == p.Name() {
				t.Errorf("span %q is a child of a span of its own name: traced twice", sp.Name())
			}
		}
	}
	if t.Failed() || testing.Verbose() {
		var names []string
		for _, sp := range all {
			names = append(names, sp.Name())
		}
		t.Logf("trace %s:\n  %s", tid, strings.Join(names, "\n  "))
	}
}
