package bench

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
)

// TestRunTxn checks that every transaction of a short run is consumed
// once, those left unknown through check-back. It asserts behaviour, not
// speed.
func TestRunTxn(t *testing.T) {
	dir := t.TempDir()
	res, err := RunTxn(t.Context(), TxnOptions{Dir: dir, Flush: store.SyncFlush, Producers: 4, Size: 64,
		Duration: 400 * time.Millisecond, SegmentSize: 8 << 20, UnknownPercent: 50,
		CheckTimeout: 100 * time.Millisecond, Drain: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Transactions < 4 || res.Consumed != res.Transactions || res.Missing != 0 {
		t.Fatalf("transactions %d, consumed %d, missing %d: want all consumed", res.Transactions, res.Consumed, res.Missing)
	}
	// A producer's commit that arrives after a check-back already
	// committed (a slow machine) counts in both, as an idempotent success.
	if res.CheckedBack == 0 || res.Committed == 0 || res.Committed+res.CheckedBack < res.Transactions {
		t.Fatalf("committed %d + checked back %d < %d transactions", res.Committed, res.CheckedBack, res.Transactions)
	}
	if res.TxnPerSec <= 0 || res.P50ms <= 0 || res.P99ms < res.P50ms || res.P99ms < 100 {
		t.Fatalf("figures %+v: want throughput, and p99 at least the 100 ms check timeout", res)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("Dir holds %v after the run (err %v), want it empty", entries, err)
	}
	requireJSONKeys(t, res, "flush", "producers", "size", "queues", "unknown_percent", "check_timeout_ms", "duration_sec",
		"transactions", "committed", "checked_back", "consumed", "missing", "txn_per_sec", "p50_ms", "p99_ms")
}

func TestRunTxnRejectsBadOptions(t *testing.T) {
	good := TxnOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Producers: 1, Size: StampSize, Duration: time.Second}
	for name, mutate := range map[string]func(*TxnOptions){
		"no producers":         func(o *TxnOptions) { o.Producers = 0 },
		"body without stamp":   func(o *TxnOptions) { o.Size = StampSize - 1 },
		"unknown over 100":     func(o *TxnOptions) { o.UnknownPercent = 101 },
		"negative unknown":     func(o *TxnOptions) { o.UnknownPercent = -1 },
		"negative check delay": func(o *TxnOptions) { o.CheckTimeout = -time.Second },
		"no duration":          func(o *TxnOptions) { o.Duration = 0 },
	} {
		o := good
		mutate(&o)
		if _, err := RunTxn(t.Context(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
}
