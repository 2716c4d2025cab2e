package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"

	"github.com/halfbackmq/halfback/workflows"
)

// fileSpan is a span of the telemetry file exporter's OTLP JSON lines.
type fileSpan struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
	Name    string `json:"name"`
}

// readSpans returns the spans of an OTLP JSON-lines file.
func readSpans(t *testing.T, path string) []fileSpan {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fileSpan
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []fileSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			t.Fatal(err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out
}

// The pay signal is traced: with the telemetry section exporting spans,
// the payer records a SignalWorkflow span and the signal carries its
// context in the tracing header, for the workflow's HandleSignal span.
func TestRunTracesPay(t *testing.T) {
	const id = "order-traced"
	hostPort, tc, runID := startOrder(t, id)
	ctx := context.Background()
	dir := t.TempDir()
	spansFile := filepath.Join(dir, "spans.jsonl")
	cfg := writeConfig(t, dir, hostPort, fmt.Sprintf("telemetry:\n  exporter: file\n  file: %s\n", spansFile))
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"--config", cfg, "--order", id, "--amount", "1500"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}

	var signal *fileSpan
	spans := readSpans(t, spansFile) // run flushed them on exit
	for i, sp := range spans {
		if sp.Name == "SignalWorkflow:"+workflows.SignalPay {
			signal = &spans[i]
		}
	}
	if signal == nil {
		t.Fatalf("no SignalWorkflow:%s span among %+v", workflows.SignalPay, spans)
	}
	var header map[string]string
	for _, a := range paySignals(t, tc, id, runID) {
		p := a.GetHeader().GetFields()["_tracer-data"]
		if p == nil {
			t.Fatalf("pay signal without a tracing header: %v", a.GetHeader())
		}
		if err := converter.GetDefaultDataConverter().FromPayload(p, &header); err != nil {
			t.Fatal(err)
		}
	}
	if want := "00-" + signal.TraceID + "-" + signal.SpanID + "-"; !strings.HasPrefix(header["traceparent"], want) {
		t.Fatalf("pay signal's traceparent %q, want the SignalWorkflow span's %s..", header["traceparent"], want)
	}
}
