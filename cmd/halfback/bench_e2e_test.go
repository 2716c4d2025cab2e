package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/bench"
)

func TestBenchE2EJSON(t *testing.T) {
	var res bench.E2EResult
	runBenchJSON(t, &res, "e2e", "--duration", "300ms", "--producers", "2", "--flush", "async")
	if res.Flush != "ASYNC_FLUSH" || res.Producers != 2 || res.Consumers != 4 || res.Size != 1024 {
		t.Errorf("got %+v: want ASYNC_FLUSH, 2 producers and the defaults 4 consumers, 1024 bytes", res)
	}
	if res.Produced <= 0 || res.Consumed != res.Produced || res.Missing != 0 || res.P99ms < res.P50ms {
		t.Errorf("inconsistent result: %+v", res)
	}
}

func TestBenchE2ERejectsBadFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"--consumers", "5"}, // more than the 4 queues
		{"--consumers", "-1"},
		{"--size", "15"},
	} {
		_, err := run(t, append([]string{"bench", "e2e", "--config", "", "--dir", t.TempDir()}, args...)...)
		if !errors.Is(err, bench.ErrInvalidOptions) {
			t.Errorf("%v: err = %v, want ErrInvalidOptions", args, err)
		}
	}
}

func TestPrintE2EResult(t *testing.T) {
	var out bytes.Buffer
	err := printE2EResult(&out, bench.E2EResult{Flush: "SYNC_FLUSH", Producers: 64, Connections: 4, Consumers: 4,
		Size: 1024, Queues: 4, Produced: 200_000, Consumed: 199_990, Missing: 10, ProducedPerSec: 20_000,
		MsgsPerSec: 19_000, MBPerSec: 19.5, P50ms: 3.5, P99ms: 12, SendP50ms: 3, SendP99ms: 11, DrainSec: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 consumers", "200000", "20000 msgs/s", "199990", "19000 msgs/s", "19.5 MB/s",
		"end-to-end p50 3.50 ms, p99 12.00 ms", "send p50 3.00 ms", "missing           10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchTxnJSON(t *testing.T) {
	var res bench.TxnResult
	runBenchJSON(t, &res, "txn", "--duration", "300ms", "--producers", "2", "--unknown-percent", "20", "--check-timeout", "100ms")
	if res.Producers != 2 || res.UnknownPercent != 20 || res.CheckTimeoutMs != 100 {
		t.Errorf("got %+v: want the flags echoed", res)
	}
	if res.Transactions <= 0 || res.Consumed != res.Transactions || res.Missing != 0 || res.P99ms < res.P50ms {
		t.Errorf("inconsistent result: %+v", res)
	}
}

func TestBenchTxnRejectsBadFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"--unknown-percent", "101"}, {"--size", "15"}, {"--check-timeout", "-1s"}} {
		_, err := run(t, append([]string{"bench", "txn", "--config", "", "--dir", t.TempDir()}, args...)...)
		if !errors.Is(err, bench.ErrInvalidOptions) {
			t.Errorf("%v: err = %v, want ErrInvalidOptions", args, err)
		}
	}
}

// A bench run that did not receive every message exactly once fails
// (after printing its result), so that it exits non-zero.
func TestCheckDeliveryFailsOnLossOrDuplicates(t *testing.T) {
	if err := checkDelivery("e2e", 0, 0); err != nil {
		t.Fatalf("nothing missing: %v", err)
	}
	for _, c := range [][2]int64{{3, 0}, {0, 2}, {1, 1}} {
		err := checkDelivery("txn", c[0], c[1])
		if err == nil || !strings.Contains(err.Error(), "bench txn") {
			t.Fatalf("missing %d, duplicates %d: %v", c[0], c[1], err)
		}
	}
}
