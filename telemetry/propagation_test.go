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
