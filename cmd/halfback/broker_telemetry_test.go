package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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
