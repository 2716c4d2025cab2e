package lifecycle

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A message is indexed under the trace id of its traceparent only when
// that traceparent is one OpenTelemetry continues: the broker's and the
// consumers' spans of a message whose traceparent is malformed start a new
// trace, so `halfback trace TRACEID` must not list it under the id it
// seemed to carry (nor print that id as the message's trace).
func TestTraceIDOfAgreesWithThePropagator(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tp := range []string{
		"00-" + tid + "-00f067aa0ba902b7-01",
		"00-" + tid + "-00f067aa0ba902b7-00",
		"01-" + tid + "-00f067aa0ba902b7-01-future",
		"00-" + tid + "-zz-01",                     // span id not hex
		"00-" + tid + "-0000000000000000-01",       // zero span id
		"00-" + tid + "-00f067aa0ba902b7",          // no flags
		"00-" + tid + "-00f067aa0ba902b7-01-extra", // version 00 has four parts
		"ff-" + tid + "-00f067aa0ba902b7-01",       // forbidden version
		"00-" + tid + "-00f067aa0ba902b7-zz",       // flags not hex
		"00-" + tid + "-00f067aa0ba902b7-04",       // version 00 reserves flag bits past 0x03
		"00-" + tid + "-00f067aa0ba902b7-ff",
		"0-" + tid + "-00f067aa0ba902b7-01",  // short version
		"00-" + tid + "-00F067AA0BA902B7-01", // upper case
		"00-" + tid + "-00f067aa0ba902b7-01" + strings.Repeat("x", 100),
	} {
		want := ""
		ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			want = sc.TraceID().String()
		}
		if got := TraceIDOf(tp); got != want {
			t.Errorf("TraceIDOf(%q) = %q; OpenTelemetry reads trace id %q", tp, got, want)
		}
	}
}
