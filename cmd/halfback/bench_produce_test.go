package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/bench"
)

// runBenchJSON runs `halfback bench <name> args... --json` in-process and
// decodes its stdout, strictly, into res.
func runBenchJSON(t *testing.T, res any, name string, args ...string) {
	t.Helper()
	clearEnv(t)
	// Small segments: a fresh SYNC_FLUSH store zero-fills its first one.
	t.Setenv("HALFBACK_STORE_SEGMENTSIZE", "16777216")
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetArgs(append([]string{"bench", name, "--config", "", "--dir", t.TempDir(), "--json"}, args...))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("bench %s: %v\n%s", name, err, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(res); err != nil {
		t.Fatalf("stdout is not a %T: %v\n%s", res, err, stdout.String())
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
}

func TestBenchProduceJSON(t *testing.T) {
	var res bench.ProduceResult
	runBenchJSON(t, &res, "produce", "--duration", "300ms", "--producers", "2")
	if res.Flush != "SYNC_FLUSH" || res.Producers != 2 || res.Connections != 2 || res.Size != 1024 || res.Queues != 4 {
		t.Errorf("got %+v: want the defaults SYNC_FLUSH, 1024 bytes, 4 queues and min(2, 4) connections with --producers 2", res)
	}
	if res.Messages <= 0 || res.MsgsPerSec <= 0 || res.P99ms < res.P50ms {
		t.Errorf("inconsistent result: %+v", res)
	}
}

func TestBenchProduceRejectsBadFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"--flush", "sometimes"},
		{"--producers", "0"},
		{"--connections", "3", "--producers", "2"},
		{"--size", "0"},
		{"--duration", "0s"},
		{"--queues", "-1"},
	} {
		_, err := run(t, append([]string{"bench", "produce", "--config", "", "--dir", t.TempDir()}, args...)...)
		if !errors.Is(err, bench.ErrInvalidOptions) {
			t.Errorf("%v: err = %v, want ErrInvalidOptions", args, err)
		}
	}
}

func TestPrintProduceResult(t *testing.T) {
	var out bytes.Buffer
	err := printProduceResult(&out, bench.ProduceResult{Flush: "ASYNC_FLUSH", Producers: 64, Connections: 4, Size: 1024,
		Queues: 4, DurationSec: 10, Messages: 500_000, MsgsPerSec: 50_000, MBPerSec: 51.2, P50ms: 1.25, P99ms: 9.5})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ASYNC_FLUSH, 64 producers over 4 connections", "500000 messages", "50000 msgs/s", "51.2 MB/s", "p50 1.25 ms", "p99 9.50 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
