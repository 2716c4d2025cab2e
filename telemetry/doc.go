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
// # Set-up
//
// [Setup] installs the global tracer and meter providers that [Options] (the
// config file's telemetry section, through config.Config.TelemetryOptions)
// ask for: spans to an OTLP collector (gRPC or HTTP), to standard output, or
// as OTLP JSON lines to a file ([FileExporter]); metrics on a Prometheus
// endpoint ([Options.MetricsAddr], served on [MetricsPath]). Exporter "none"
// without a metrics address installs the no-op providers, so instrumented
// code pays only a provider check. [Telemetry.Shutdown] flushes on exit.
//
// # Metrics
//
// [Observables] registers observable counters and gauges read by one
// callback at collection time, so a component keeps plain atomic counters
// and costs nothing between scrapes; [MetricsEnabled] tells a component
// whether to keep them at all.
//
// # Usage
//
//	tel, err := telemetry.Setup(ctx, cfg.TelemetryOptions(config.ServiceBroker))
//	if err != nil { ... }
//	defer tel.Shutdown(context.Background())
//
//	props := map[string]string{}
//	telemetry.Inject(ctx, props)             // producer side
//	ctx = telemetry.Extract(ctx, m.Properties) // consumer side
package telemetry
