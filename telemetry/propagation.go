package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/message"
)

// propagator is W3C Trace Context: the traceparent and tracestate
// properties (message.PropertyTraceparent, message.PropertyTracestate).
var propagator = propagation.TraceContext{}

// Propagator returns the propagator halfback uses in message properties.
func Propagator() propagation.TextMapPropagator { return propagator }

// MapCarrier adapts a message's user properties to a TextMapCarrier.
type MapCarrier map[string]string

// Get returns the value of key.
func (c MapCarrier) Get(key string) string { return c[key] }

// Set sets key to value.
func (c MapCarrier) Set(key, value string) { c[key] = value }

// Keys lists the keys.
func (c MapCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes the trace context of ctx into props (nothing when ctx
// carries no valid span context). A tracestate props carried is dropped
// with its traceparent: it belonged to the trace replaced.
func Inject(ctx context.Context, props map[string]string) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		delete(props, message.PropertyTracestate)
	}
	propagator.Inject(ctx, MapCarrier(props))
}

// Extract returns ctx carrying the remote span context found in props
// (ctx unchanged when props carry none).
func Extract(ctx context.Context, props map[string]string) context.Context {
	return propagator.Extract(ctx, MapCarrier(props))
}

// wireCarrier reads and writes the wire form of properties
// (name\x01value\x02...), as the broker holds them.
type wireCarrier struct{ props *string }

func (c wireCarrier) Get(key string) string {
	v, _ := message.Property(*c.props, key)
	return v
}

func (c wireCarrier) Set(key, value string) { *c.props = message.SetProperty(*c.props, key, value) }

func (c wireCarrier) Keys() []string {
	return []string{message.PropertyTraceparent, message.PropertyTracestate}
}

// InjectProperties returns the wire-form properties with the trace context
// of ctx set in them (a tracestate they carried is dropped, as by [Inject]).
func InjectProperties(ctx context.Context, props string) string {
	if trace.SpanContextFromContext(ctx).IsValid() {
		props = message.RemoveProperties(props, message.PropertyTracestate)
	}
	propagator.Inject(ctx, wireCarrier{&props})
	return props
}

// ExtractProperties returns ctx carrying the remote span context found in
// wire-form properties.
func ExtractProperties(ctx context.Context, props string) context.Context {
	return propagator.Extract(ctx, wireCarrier{&props})
}
