package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Exporter names of [Options.Exporter].
const (
	ExporterNone   = "none"
	ExporterOTLP   = "otlp"
	ExporterStdout = "stdout"
	ExporterFile   = "file"
)

// OTLP protocols of [Options.OTLPProtocol].
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// MetricsPath is the path the Prometheus endpoint serves metrics on.
const MetricsPath = "/metrics"

// Errors of [Setup] and [Options.Validate].
var (
	// ErrInvalidOptions: an option is out of range; the message names
	// the option.
	ErrInvalidOptions = errors.New("telemetry: invalid options")
	// ErrSpanFile: [Options].File cannot be opened for appending.
	ErrSpanFile = errors.New("telemetry: span file cannot be opened")
	// ErrMetricsListen: nothing can listen on [Options].MetricsAddr.
	ErrMetricsListen = errors.New("telemetry: metrics endpoint cannot listen")
)

// Options say where traces and metrics go. The zero value exports
// nothing and installs no SDK at all.
type Options struct {
	// Exporter is where spans go: "otlp" (a collector, see OTLPEndpoint
	// and OTLPProtocol), "stdout" (pretty JSON on Writer), "file" (OTLP
	// JSON lines in File) or "none" (the default: no tracer provider is
	// installed, so spans cost what the global no-op costs).
	Exporter string
	// OTLPEndpoint is the collector, host:port (plaintext) or a URL
	// (http:// plaintext, https:// TLS; with protocol http the URL may
	// carry the path). Empty: the exporter's default, localhost:4317 for
	// grpc and localhost:4318 for http, plaintext unless the standard
	// OTEL_EXPORTER_OTLP_* variables say otherwise.
	OTLPEndpoint string
	// OTLPProtocol is "grpc" (the default) or "http" (OTLP/HTTP protobuf).
	OTLPProtocol string
	// File is the path exporter "file" appends to: one JSON object per
	// line, each an OTLP/JSON ExportTraceServiceRequest (see [FileExporter]).
	File string
	// ServiceName is the service.name resource attribute. Required unless
	// nothing is exported.
	ServiceName string
	// ResourceAttributes are added to the resource (service.version,
	// deployment.environment.name, ...).
	ResourceAttributes map[string]string
	// SampleRatio is the fraction of new traces sampled, in (0, 1]; a
	// span with a parent follows its parent's decision. 0 means 1.
	SampleRatio float64
	// MetricsAddr is the host:port a Prometheus endpoint serves
	// [MetricsPath] on, with an SDK meter provider installed globally.
	// Port 0 picks a free port ([Telemetry.MetricsAddr] tells which).
	// Empty: no meter provider and no endpoint.
	MetricsAddr string
	// Writer receives exporter "stdout"'s spans. Default os.Stdout.
	Writer io.Writer
}

// Validate reports the first option out of range, naming it.
func (o Options) Validate() error {
	switch o.exporter() {
	case ExporterNone, ExporterStdout:
	case ExporterOTLP:
		if p := o.protocol(); p != ProtocolGRPC && p != ProtocolHTTP {
			return fmt.Errorf("%w: OTLPProtocol %q (want grpc or http)", ErrInvalidOptions, o.OTLPProtocol)
		}
		if p := EndpointProblem(o.OTLPEndpoint, o.OTLPProtocol); p != "" {
			return fmt.Errorf("%w: OTLPEndpoint %q: %s", ErrInvalidOptions, o.OTLPEndpoint, p)
		}
	case ExporterFile:
		if strings.TrimSpace(o.File) == "" {
			return fmt.Errorf("%w: File is empty (exporter file needs a path)", ErrInvalidOptions)
		}
	default:
		return fmt.Errorf("%w: Exporter %q (want otlp, stdout, file or none)", ErrInvalidOptions, o.Exporter)
	}
	if !(o.SampleRatio >= 0 && o.SampleRatio <= 1) {
		return fmt.Errorf("%w: SampleRatio %v (want 0 to 1)", ErrInvalidOptions, o.SampleRatio)
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("%w: MetricsAddr %q: %v", ErrInvalidOptions, o.MetricsAddr, err)
		}
	}
	if (o.exporter() != ExporterNone || o.MetricsAddr != "") && strings.TrimSpace(o.ServiceName) == "" {
		return fmt.Errorf("%w: ServiceName is empty", ErrInvalidOptions)
	}
	return nil
}

// EndpointProblem says what is wrong with an OTLP endpoint for protocol
// ("" is grpc), or returns "" when nothing is. The one case it catches is
// a URL with a path under grpc: gRPC has no path (the exporter would drop
// it silently), so a collector's HTTP path there means protocol http was
// meant.
func EndpointProblem(endpoint, protocol string) string {
	ep := strings.TrimSpace(endpoint)
	if !strings.Contains(ep, "://") || strings.ToLower(strings.TrimSpace(protocol)) == ProtocolHTTP {
		return ""
	}
	u, err := neturl.Parse(ep)
	if err != nil || u.Path == "" || u.Path == "/" {
		return ""
	}
	return fmt.Sprintf("the URL's path %q needs protocol http: gRPC has no path (give host:port or a URL without a path)", u.Path)
}

func (o Options) exporter() string {
	if e := strings.ToLower(strings.TrimSpace(o.Exporter)); e != "" {
		return e
	}
	return ExporterNone
}

func (o Options) protocol() string {
	if p := strings.ToLower(strings.TrimSpace(o.OTLPProtocol)); p != "" {
		return p
	}
	return ProtocolGRPC
}

// Telemetry is what [Setup] installed. Shutdown flushes and stops it.
type Telemetry struct {
	tp      *sdktrace.TracerProvider // nil with exporter none
	mp      *sdkmetric.MeterProvider // nil without MetricsAddr
	srv     *http.Server             // the Prometheus endpoint
	addr    string                   // its listen address
	closers []func(context.Context) error
}

// Setup builds the tracer and meter providers o asks for and installs
// them globally (otel.SetTracerProvider, otel.SetMeterProvider), with W3C
// Trace Context as the global propagator. Exporter "none" without
// MetricsAddr installs the no-op providers: no SDK runs at all. Call
// [Telemetry.Shutdown] on exit to flush what is buffered.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t := &Telemetry{}
	otel.SetTextMapPropagator(propagator)
	if o.exporter() == ExporterNone && o.MetricsAddr == "" {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		return t, nil
	}
	res, err := newResource(o)
	if err != nil {
		return nil, err
	}
	if o.exporter() != ExporterNone {
		exp, err := newSpanExporter(ctx, o)
		if err != nil {
			return nil, err
		}
		if o.exporter() == ExporterOTLP {
			exp = validUTF8Exporter{exp} // protobuf refuses a batch with a string not UTF-8
		}
		ratio := o.SampleRatio
		if ratio == 0 {
			ratio = 1
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
		t.closers = append(t.closers, t.tp.Shutdown)
	}
	if o.MetricsAddr != "" {
		if err := t.serveMetrics(o.MetricsAddr, res); err != nil {
			t.Shutdown(ctx)
			return nil, err
		}
	}
	// Install only what fully started.
	otel.SetTracerProvider(t.TracerProvider())
	otel.SetMeterProvider(t.MeterProvider())
	return t, nil
}

// newResource is the default resource (host, process, SDK and OTEL_*
// attributes) with service.name and o's attributes on top.
func newResource(o Options) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	for k, v := range o.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil { // conflicting schema URLs: keep ours
		return resource.NewSchemaless(attrs...), nil
	}
	return res, nil
}

// newSpanExporter builds the span exporter o names.
func newSpanExporter(ctx context.Context, o Options) (sdktrace.SpanExporter, error) {
	switch o.exporter() {
	case ExporterStdout:
		w := o.Writer
		if w == nil {
			w = os.Stdout
		}
		return stdouttrace.New(stdouttrace.WithWriter(w))
	case ExporterFile:
		return OpenFileExporter(o.File)
	}
	ep := strings.TrimSpace(o.OTLPEndpoint)
	url := strings.Contains(ep, "://")
	envSet := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if o.protocol() == ProtocolHTTP {
		var opts []otlptracehttp.Option
		switch {
		case url:
			opts = append(opts, otlptracehttp.WithEndpointURL(ep))
			if u, err := neturl.Parse(ep); err == nil && (u.Path == "" || u.Path == "/") {
				// A URL without a path is the collector's base URL, as
				// OTEL_EXPORTER_OTLP_ENDPOINT: spans go to its /v1/traces.
				opts = append(opts, otlptracehttp.WithURLPath("/v1/traces"))
			}
		case ep != "":
			opts = append(opts, otlptracehttp.WithEndpoint(ep), otlptracehttp.WithInsecure())
		case !envSet:
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	var opts []otlptracegrpc.Option
	switch {
	case url:
		opts = append(opts, otlptracegrpc.WithEndpointURL(ep))
	case ep != "":
		opts = append(opts, otlptracegrpc.WithEndpoint(ep), otlptracegrpc.WithInsecure())
	case !envSet:
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, opts...)
}

// serveMetrics starts the meter provider with a Prometheus reader and
// serves it on addr.
func (t *Telemetry) serveMetrics(addr string, res *resource.Resource) error {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.closers = append(t.closers, t.mp.Shutdown)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w on %s: %w", ErrMetricsListen, addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	t.addr = ln.Addr().String()
	go t.srv.Serve(ln)
	// Close, not Shutdown: a connection that never finishes a request
	// must not hold up the flush of the spans.
	t.closers = append(t.closers, func(context.Context) error { return t.srv.Close() })
	return nil
}

// MetricsAddr is the address the Prometheus endpoint listens on, or ""
// when there is none.
func (t *Telemetry) MetricsAddr() string { return t.addr }

// TracerProvider is the provider Setup installed (the no-op one when
// nothing is exported).
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tp == nil {
		return tracenoop.NewTracerProvider()
	}
	return t.tp
}

// MeterProvider is the provider Setup installed (the no-op one without
// MetricsAddr).
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t.mp == nil {
		return metricnoop.NewMeterProvider()
	}
	return t.mp
}

// Shutdown flushes buffered spans, stops the providers and the metrics
// endpoint, and returns the first errors joined. ctx bounds the flush.
// It is safe on a nil *Telemetry.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	// In the order started: the tracer provider (the spans' flush) first.
	for i := range t.closers {
		if err := t.closers[i](ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	t.closers = nil
	return errors.Join(errs...)
}
