package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/halfbackmq/halfback/config"
)

func TestSetupTelemetryFromConfig(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Telemetry.Exporter = "file"
	cfg.Telemetry.File = filepath.Join(t.TempDir(), "spans.jsonl")
	var logs bytes.Buffer
	stop, err := SetupTelemetry(context.Background(), cfg, config.ServiceWorker, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "work")
	span.End()
	stop()
	data, err := os.ReadFile(cfg.Telemetry.File)
	if err != nil || !strings.Contains(string(data), `"name":"work"`) || !strings.Contains(string(data), `"halfback-worker"`) {
		t.Errorf("span file after stop: %q, %v", data, err)
	}
	if !strings.Contains(logs.String(), "service=halfback-worker") {
		t.Errorf("no telemetry log line: %s", logs.String())
	}

	cfg.Telemetry.Exporter, cfg.Telemetry.File = "file", filepath.Join(t.TempDir(), "missing", "dir", "spans.jsonl")
	if _, err := SetupTelemetry(context.Background(), cfg, config.ServiceWorker, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "telemetry") {
		t.Errorf("span file in a missing directory: %v", err)
	}
}

// One TCP connection to the metrics endpoint that has not (yet) sent a
// request does not hold up the flush of the spans at shutdown (the metrics
// server's Shutdown used up the whole budget, and the tracer provider was
// shut down with an expired context: the buffered spans were lost).
func TestSpansFlushedDespiteOpenMetricsConnection(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Telemetry.Exporter = "file"
	cfg.Telemetry.File = filepath.Join(t.TempDir(), "spans.jsonl")
	cfg.Telemetry.MetricsAddr = "127.0.0.1:0"
	var logs bytes.Buffer
	stop, err := SetupTelemetry(context.Background(), cfg, config.ServiceBroker, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`metrics=http://([0-9.:]+)/metrics`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address logged: %s", logs.String())
	}
	conn, err := net.Dial("tcp", m[1]) // a scraper / health check connecting
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\n")); err != nil { // headers not finished yet
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "work")
	span.End()
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }() // what SIGTERM runs
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("telemetry shutdown still waits for the metrics connection after 3 s (its budget is 5 s, then the spans are dropped)")
	}
	data, err := os.ReadFile(cfg.Telemetry.File)
	if err != nil || !strings.Contains(string(data), `"name":"work"`) {
		t.Errorf("span lost at shutdown: file %q, err %v; logs: %s", data, err, logs.String())
	}
}
