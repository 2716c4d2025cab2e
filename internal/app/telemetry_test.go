package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
