package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// The tests below set global providers, so none of them runs in parallel.

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string // "" = valid
	}{
		{Options{}, ""},
		{Options{Exporter: "none"}, ""},
		{Options{Exporter: "stdout", ServiceName: "s"}, ""},
		{Options{Exporter: "OTLP", OTLPProtocol: "HTTP", ServiceName: "s"}, ""},
		{Options{Exporter: "jaeger", ServiceName: "s"}, "Exporter"},
		{Options{Exporter: "otlp", OTLPProtocol: "thrift", ServiceName: "s"}, "OTLPProtocol"},
		{Options{Exporter: "file", ServiceName: "s"}, "File"},
		{Options{Exporter: "stdout", ServiceName: "s", SampleRatio: 1.5}, "SampleRatio"},
		{Options{Exporter: "stdout"}, "ServiceName"},
		{Options{MetricsAddr: "nope", ServiceName: "s"}, "MetricsAddr"},
		{Options{Exporter: "otlp", OTLPEndpoint: "http://c:4318/v1/traces", OTLPProtocol: "http", ServiceName: "s"}, ""},
		{Options{Exporter: "otlp", OTLPEndpoint: "https://c:4317/", ServiceName: "s"}, ""},
		{Options{Exporter: "otlp", OTLPEndpoint: "http://c:4317/v1/traces", ServiceName: "s"}, "OTLPEndpoint"},
		{Options{Exporter: "otlp", OTLPEndpoint: "https://c:4317/otlp", OTLPProtocol: "grpc", ServiceName: "s"}, "OTLPEndpoint"},
	} {
		err := tc.o.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestSetupNoneInstallsNoSDK(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Exporter: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if _, ok := otel.GetTracerProvider().(tracenoop.TracerProvider); !ok {
		t.Errorf("tracer provider %T, want the no-op", otel.GetTracerProvider())
	}
	if _, ok := otel.GetMeterProvider().(metricnoop.MeterProvider); !ok || MetricsEnabled(nil) {
		t.Errorf("meter provider %T, want the no-op", otel.GetMeterProvider())
	}
	if tel.MetricsAddr() != "" {
		t.Errorf("metrics endpoint %q with no MetricsAddr", tel.MetricsAddr())
	}
}

func TestFileExporterWritesOTLPJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	tel, err := Setup(context.Background(), Options{Exporter: "file", File: path, ServiceName: "halfback-test",
		ResourceAttributes: map[string]string{"deployment.environment.name": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := otel.Tracer("halfback/test")
	ctx, parent := tr.Start(context.Background(), "parent")
	linkTo := trace.SpanContextFromContext(ctx)
	_, child := tr.Start(ctx, "send orders", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(KeyDestination.String("orders"), KeyBatchCount.Int(3), attribute.Bool("ok", true),
			attribute.StringSlice("tags", []string{"a", "b"})),
		trace.WithLinks(trace.Link{SpanContext: linkTo}))
	child.AddEvent("stored", trace.WithAttributes(attribute.Int64("offset", 42)))
	child.SetStatus(codes.Error, "broken")
	child.End()
	parent.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var spans []otlpSpan
	var res []otlpKeyValue
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var req otlpRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, rs := range req.ResourceSpans {
			res = rs.Resource.Attributes
			for _, ss := range rs.ScopeSpans {
				if ss.Scope.Name != "halfback/test" {
					t.Errorf("scope %q", ss.Scope.Name)
				}
				spans = append(spans, ss.Spans...)
			}
		}
	}
	if len(spans) != 2 {
		t.Fatalf("%d spans in the file, want 2", len(spans))
	}
	c, p := spans[0], spans[1]
	if c.Name != "send orders" || p.Name != "parent" {
		t.Fatalf("spans %q, %q", c.Name, p.Name)
	}
	if c.TraceID != p.TraceID || c.ParentSpanID != p.SpanID || len(c.TraceID) != 32 || len(c.SpanID) != 16 || p.ParentSpanID != "" {
		t.Errorf("ids: child %+v parent %+v", c, p)
	}
	if c.Kind != 4 || c.Status.Code != 2 || c.Status.Message != "broken" {
		t.Errorf("kind %d status %+v, want 4 (producer) and 2 (error)", c.Kind, c.Status)
	}
	if len(c.Links) != 1 || c.Links[0].SpanID != p.SpanID || len(c.Events) != 1 || *c.Events[0].Attributes[0].Value.IntValue != "42" {
		t.Errorf("links %+v events %+v", c.Links, c.Events)
	}
	attrs := map[string]otlpAnyValue{}
	for _, kv := range c.Attributes {
		attrs[kv.Key] = kv.Value
	}
	if v := attrs["messaging.destination.name"]; v.StringValue == nil || *v.StringValue != "orders" {
		t.Errorf("destination %+v", v)
	}
	if v := attrs["messaging.batch.message_count"]; v.IntValue == nil || *v.IntValue != "3" {
		t.Errorf("batch count %+v", v)
	}
	if v := attrs["tags"]; v.ArrayValue == nil || len(v.ArrayValue.Values) != 2 {
		t.Errorf("tags %+v", v)
	}
	found := map[string]string{}
	for _, kv := range res {
		if kv.Value.StringValue != nil {
			found[kv.Key] = *kv.Value.StringValue
		}
	}
	if found["service.name"] != "halfback-test" || found["deployment.environment.name"] != "test" {
		t.Errorf("resource %v", found)
	}
}

func TestStdoutExporterAndSampling(t *testing.T) {
	var buf strings.Builder
	tel, err := Setup(context.Background(), Options{Exporter: "stdout", ServiceName: "s", Writer: &buf, SampleRatio: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	_, s := otel.Tracer("t").Start(context.Background(), "unlikely")
	s.End()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	_, s = otel.Tracer("t").Start(ctx, "sampled parent")
	s.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "unlikely") || !strings.Contains(buf.String(), "sampled parent") {
		t.Errorf("stdout exporter wrote %q", buf.String())
	}
}

func TestPrometheusEndpointServesObservables(t *testing.T) {
	tel, err := Setup(context.Background(), Options{MetricsAddr: "127.0.0.1:0", ServiceName: "halfback-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if !MetricsEnabled(nil) {
		t.Fatal("metrics not enabled with MetricsAddr")
	}
	if _, ok := otel.GetTracerProvider().(tracenoop.TracerProvider); !ok {
		t.Errorf("tracer provider %T with exporter none, want the no-op", otel.GetTracerProvider())
	}
	obs := NewObservables(nil, "halfback/test")
	in := obs.Counter("halfback.test.messages.in", "{message}", "messages in")
	lag := obs.Gauge("halfback.test.lag", "{message}", "lag")
	reg, err := obs.Register(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(in, 7, metric.WithAttributes(KeyDestination.String("orders")))
		o.ObserveInt64(lag, 3)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	resp, err := http.Get("http://" + tel.MetricsAddr() + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`halfback_test_messages_in_total{`, `messaging_destination_name="orders"`, `halfback_test_lag{`, `service_name="halfback-test"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics page lacks %s:\n%s", want, body)
		}
	}
}

func TestSetupFailureInstallsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	otel.SetTracerProvider(tracenoop.NewTracerProvider())
	_, err = Setup(context.Background(), Options{Exporter: "stdout", Writer: io.Discard, ServiceName: "s", MetricsAddr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "metrics endpoint") {
		t.Fatalf("Setup on a taken port: %v", err)
	}
	if _, ok := otel.GetTracerProvider().(tracenoop.TracerProvider); !ok {
		t.Errorf("a failed Setup installed tracer provider %T", otel.GetTracerProvider())
	}
}

// endpoint "http://collector:4318" with protocol http (the README's "an
// http(s):// URL", the form OTEL_EXPORTER_OTLP_ENDPOINT takes) must post
// spans to the collector's /v1/traces, not to "/".
func TestOTLPHTTPEndpointURLWithoutPath(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/v1/traces" { // what a collector does
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	tel, err := Setup(context.Background(), Options{Exporter: ExporterOTLP, OTLPProtocol: ProtocolHTTP,
		OTLPEndpoint: srv.URL, ServiceName: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("audit").Start(context.Background(), "work")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := tel.Shutdown(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "/v1/traces" {
		t.Errorf("endpoint %s: spans posted to %q (shutdown error: %v), want /v1/traces", srv.URL, paths, serr)
	}
}

// A span whose float attribute is not finite (NaN, ±Inf, which an
// application may well record: a ratio of zero to zero) is written in the
// proto3 JSON form ("NaN", "Infinity", "-Infinity"), and does not take
// the other spans of its batch down with it.
func TestFileExporterNonFiniteDouble(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	e, err := OpenFileExporter(path)
	if err != nil {
		t.Fatal(err)
	}
	good := tracetest.SpanStub{Name: "send orders"}.Snapshot()
	bad := tracetest.SpanStub{Name: "ratio", Attributes: []attribute.KeyValue{
		attribute.Float64("nan", math.NaN()), attribute.Float64("inf", math.Inf(1)),
		attribute.Float64Slice("ninf", []float64{math.Inf(-1), 1.5})}}.Snapshot()
	if err := e.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{good, bad}); err != nil {
		t.Fatalf("export of a batch with a NaN attribute: %v", err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("no line written")
	}
	var req struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct {
					Name       string
					Attributes []struct {
						Key   string
						Value map[string]any
					}
				}
			}
		}
	}
	if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
		t.Fatalf("line %s: %v", sc.Bytes(), err)
	}
	got := map[string]any{}
	for _, sp := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		for _, kv := range sp.Attributes {
			got[kv.Key] = kv.Value
		}
	}
	want := `{"inf":{"doubleValue":"Infinity"},"nan":{"doubleValue":"NaN"},` +
		`"ninf":{"arrayValue":{"values":[{"doubleValue":"-Infinity"},{"doubleValue":1.5}]}}}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Fatalf("attributes %s, want %s", b, want)
	}
}
