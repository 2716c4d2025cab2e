package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/message"
)

func TestPropagationThroughProperties(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	props := map[string]string{"a": "b"}
	Inject(ctx, props)
	if props[message.PropertyTraceparent] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("injected %v", props)
	}
	if got := trace.SpanContextFromContext(Extract(context.Background(), props)); got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Fatalf("extracted %+v", got)
	}

	wire := InjectProperties(ctx, message.Properties{"KEYS": "order-42"}.Encode())
	if v, _ := message.Property(wire, message.PropertyTraceparent); v != props[message.PropertyTraceparent] {
		t.Fatalf("wire properties %q", wire)
	}
	if k, _ := message.Property(wire, "KEYS"); k != "order-42" {
		t.Fatalf("wire properties lost KEYS: %q", wire)
	}
	if got := trace.SpanContextFromContext(ExtractProperties(context.Background(), wire)); got.TraceID() != tid {
		t.Fatalf("extracted from wire %+v", got)
	}
	// Nothing to carry, nothing written; nothing carried, nothing found.
	empty := map[string]string{}
	Inject(context.Background(), empty)
	if len(empty) != 0 {
		t.Fatalf("injected from an empty context: %v", empty)
	}
	if got := trace.SpanContextFromContext(ExtractProperties(context.Background(), "")); got.IsValid() {
		t.Fatalf("extracted %+v from nothing", got)
	}
}

// Injecting a trace context into properties that carry another trace's
// (a message forwarded with the properties it came with) replaces both
// traceparent and tracestate: the new context's tracestate, or none, never
// the old trace's.
func TestInjectReplacesStaleTracestate(t *testing.T) {
	oldTID, _ := trace.TraceIDFromHex("11111111111111111111111111111111")
	oldSID, _ := trace.SpanIDFromHex("1111111111111111")
	ts, _ := trace.ParseTraceState("vendor=old")
	old := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: oldTID, SpanID: oldSID, TraceFlags: trace.FlagsSampled, TraceState: ts}))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))

	props := map[string]string{}
	Inject(old, props)
	Inject(ctx, props)
	if got := trace.SpanContextFromContext(Extract(context.Background(), props)); got.TraceID() != tid || got.TraceState().Len() != 0 {
		t.Errorf("map: extracted trace %s with tracestate %q, want %s with none", got.TraceID(), got.TraceState(), tid)
	}

	wire := InjectProperties(ctx, InjectProperties(old, message.Properties{"KEYS": "order-42"}.Encode()))
	if got := trace.SpanContextFromContext(ExtractProperties(context.Background(), wire)); got.TraceID() != tid || got.TraceState().Len() != 0 {
		t.Errorf("wire: extracted trace %s with tracestate %q, want %s with none", got.TraceID(), got.TraceState(), tid)
	}
}
