package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/bench"
)

func TestBenchStoreJSON(t *testing.T) {
	clearEnv(t)
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetArgs([]string{"bench", "store", "--config", "", "--dir", t.TempDir(),
		"--duration", "300ms", "--writers", "2", "--json"})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("bench store: %v\n%s", err, stderr.String())
	}

	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	var res bench.StoreResult
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not a StoreResult: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
	if res.Flush != "SYNC_FLUSH" || res.Writers != 2 || res.Size != 1024 {
		t.Errorf("flush %s, writers %d, size %d: want the defaults SYNC_FLUSH and 1024 with --writers 2", res.Flush, res.Writers, res.Size)
	}
	if res.Messages <= 0 || res.Ratio <= 0 || res.P99Us < res.P50Us {
		t.Errorf("inconsistent result: %+v", res)
	}
}

func TestBenchStoreRejectsBadFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"--flush", "sometimes"},
		{"--writers", "0"},
		{"--size", "0"},
		{"--duration", "0s"},
	} {
		_, err := run(t, append([]string{"bench", "store", "--config", "", "--dir", t.TempDir()}, args...)...)
		if !errors.Is(err, bench.ErrInvalidOptions) {
			t.Errorf("%v: err = %v, want ErrInvalidOptions", args, err)
		}
	}
}

func TestPrintStoreResult(t *testing.T) {
	var out bytes.Buffer
	err := printStoreResult(&out, bench.StoreResult{Flush: "ASYNC_FLUSH", Writers: 64, Size: 1024, DurationSec: 10,
		Messages: 1_000_000, MsgsPerSec: 100_000, MBPerSec: 102.4, P50Us: 6, P99Us: 9000, CPUUsPerMsg: 3.25,
		RawLimitMsgsPerSec: 120_000, RawLimitPreallocMsgsPerSec: 120_000, RawLimitGrowingMsgsPerSec: 70_000,
		RawSeqMBPerSec: 512, Ratio: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"100000 msgs/s", "102.4 MB/s", "p50 6 µs", "p99 9000 µs", "CPU 3.2 µs/msg", "120000 msgs/s",
		"preallocated file 120000 msgs/s, growing file 70000 msgs/s", "512.0 MB/s", "0.20 of raw sequential"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The MB/s column lines up between the store and raw seq lines.
	if i, j := strings.Index(lines[1], "MB/s"), strings.Index(lines[4], "MB/s"); i != j {
		t.Errorf("MB/s at column %d and %d:\n%s", i, j, out.String())
	}
}

func TestPrintStoreResultWithPeers(t *testing.T) {
	var out bytes.Buffer
	err := printStoreResult(&out, bench.StoreResult{Flush: "SYNC_FLUSH", Writers: 64, Size: 1024, DurationSec: 6,
		Messages: 420_000, MsgsPerSec: 70_000, MBPerSec: 71.7, P50Us: 800, P99Us: 3000, CPUUsPerMsg: 4,
		RawLimitMsgsPerSec: 210_000, RawLimitPreallocMsgsPerSec: 210_000, RawLimitGrowingMsgsPerSec: 130_000,
		RawSeqMBPerSec: 450, Ratio: 1.0 / 3, GoroutineLimitMsgsPerSec: 175_000, PebbleMsgsPerSec: 50_000,
		RatioToGoroutineLimit: 0.4, RatioToPebble: 1.4, AppendsPerFsync: 63.5, CycleUs: 907, FsyncUs: 612, RawCycleUs: 305,
		RawCPUUsPerFsync: 75})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"0.33 of the raw limit", "175000 msgs/s", "store: 0.40 of it", "50000 msgs/s", "store: 1.40 of it",
		"907 µs per group commit of 63.5 appends, fdatasync 612 µs", "raw limit: 305 µs",
		"254 µs of CPU per group commit (raw limit: 75 µs per write + fdatasync)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The msgs/s column lines up between the store and the peers.
	if i, j := strings.Index(lines[1], "msgs/s"), strings.Index(lines[7], "msgs/s"); i != j {
		t.Errorf("msgs/s at column %d and %d:\n%s", i, j, out.String())
	}
}
