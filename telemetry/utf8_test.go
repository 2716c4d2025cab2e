package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// A span attribute that is not valid UTF-8 (a message key or tag is
// bytes to RocketMQ, and the client and broker put them in attributes)
// must not cost the OTLP exporter the batch it is in: protobuf refuses to
// encode a string field that is not UTF-8, and every span of the batch,
// the order's others among them, was lost.
func TestOTLPInvalidUTF8AttributeKeepsTheBatch(t *testing.T) {
	var mu sync.Mutex
	var names []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: %v", err)
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					names = append(names, sp.Name)
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	tel, err := Setup(context.Background(), Options{Exporter: ExporterOTLP, OTLPProtocol: ProtocolHTTP,
		OTLPEndpoint: srv.URL, ServiceName: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	tr := otel.Tracer("audit")
	_, good := tr.Start(context.Background(), "send order-events")
	good.End()
	_, bad := tr.Start(context.Background(), "process \xff")
	bad.SetAttributes(attribute.String("messaging.rocketmq.message.tag", "Order\xffPaid"),
		attribute.StringSlice("messaging.rocketmq.message.keys", []string{"o-1", "\xc3"}))
	bad.AddEvent("ev\xfe", trace.WithAttributes(attribute.String("k", "\xfe")))
	bad.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := tel.Shutdown(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 2 {
		t.Fatalf("collector got spans %q (shutdown: %v), want both spans of the batch", names, serr)
	}
}
