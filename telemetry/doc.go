// Package telemetry is halfback's OpenTelemetry glue: trace context carried
// through message properties (W3C traceparent / tracestate, as RocketMQ 5
// clients carry them), the messaging semantic-convention attributes every
// message span uses, and the set-up of tracer and meter providers from
// configuration.
//
// # Propagation
//
// A producer injects its span's context into the message's properties
// ([Inject], [InjectProperties]); the broker and consumers extract it
// ([Extract], [ExtractProperties]) to parent or link their own spans, so one
// order's workflow, messages and consumers form one trace.
//
// # Usage
//
//	props := map[string]string{}
//	telemetry.Inject(ctx, props)             // producer side
//	ctx = telemetry.Extract(ctx, m.Properties) // consumer side
package telemetry
