package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/config"
)

func TestBrokerServesMetricsFromConfig(t *testing.T) {
	clearEnv(t)
	spans := filepath.Join(t.TempDir(), "spans.jsonl")
	t.Setenv("HALFBACK_TELEMETRY_METRICSADDR", "127.0.0.1:0")
	t.Setenv("HALFBACK_TELEMETRY_EXPORTER", "file")
	t.Setenv("HALFBACK_TELEMETRY_FILE", spans)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, done := startReady(t, ctx, "broker", "--config", smallStoreConfig(t), "--data-dir", filepath.Join(t.TempDir(), "data"))
	url := regexp.MustCompile(`metrics=(http://\S+)`).FindStringSubmatch(out.String())
	if url == nil || !strings.Contains(out.String(), "service=halfback-broker") {
		t.Fatalf("no telemetry line with service=halfback-broker and metrics=:\n%s", out)
	}
	resp, err := http.Get(url[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "halfback_txn_half_pending") || !strings.Contains(string(body), `service_name="halfback-broker"`) {
		t.Errorf("metrics page lacks the broker's metrics:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker returned %v after cancel\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not stop after cancel")
	}
	if _, err := os.Stat(spans); err != nil {
		t.Errorf("span file: %v", err)
	}
	if _, err := http.Get(url[1]); err == nil {
		t.Error("metrics endpoint still serving after the broker stopped")
	}
}

// A bad telemetry setting stops `halfback broker` before it serves,
// with an error naming the key; a span file it cannot open names the
// section and the file.
func TestBrokerRejectsBadTelemetry(t *testing.T) {
	for _, tc := range []struct{ env, val, want string }{
		{"HALFBACK_TELEMETRY_EXPORTER", "jaeger", "telemetry.exporter"},
		{"HALFBACK_TELEMETRY_ENDPOINT", "collector", "telemetry.endpoint"},
		{"HALFBACK_TELEMETRY_ENDPOINT", "ftp://collector:21", "telemetry.endpoint"},
		{"HALFBACK_TELEMETRY_PROTOCOL", "thrift", "telemetry.protocol"},
		{"HALFBACK_TELEMETRY_SAMPLERATIO", "2", "telemetry.sampleRatio"},
		{"HALFBACK_TELEMETRY_SAMPLERATIO", "half", "telemetry.sampleRatio"},
		{"HALFBACK_TELEMETRY_METRICSADDR", "9464", "telemetry.metricsAddr"},
	} {
		clearEnv(t)
		t.Setenv(tc.env, tc.val)
		out, err := run(t, "broker", "--config", "", "--data-dir", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%s=%s: err = %v, want an ErrInvalid naming %s\n%s", tc.env, tc.val, err, tc.want, out)
		}
	}
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "no-such-dir", "spans.jsonl")
	t.Setenv("HALFBACK_TELEMETRY_EXPORTER", "file")
	t.Setenv("HALFBACK_TELEMETRY_FILE", missing)
	if _, err := run(t, "broker", "--config", "", "--data-dir", t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "telemetry.file") || !strings.Contains(err.Error(), missing) {
		t.Errorf("unopenable span file: err = %v, want one naming telemetry.file and %s", err, missing)
	}
	// An address taken by another listener.
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("HALFBACK_TELEMETRY_METRICSADDR", ln.Addr().String())
	if _, err := run(t, "broker", "--config", "", "--data-dir", t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "telemetry.metricsAddr") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("metrics address in use: err = %v, want one naming telemetry.metricsAddr and %s", err, ln.Addr())
	}
}
