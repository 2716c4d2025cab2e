package bench

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
)

// TestRunStore checks that one short run is self-consistent for both flush
// types. It asserts behaviour, not speed: the machine may be slow or busy.
func TestRunStore(t *testing.T) {
	for _, flush := range []store.FlushType{store.SyncFlush, store.AsyncFlush} {
		t.Run(flush.String(), func(t *testing.T) {
			dir := t.TempDir()
			res, err := RunStore(t.Context(), StoreOptions{
				Dir: dir, Flush: flush, Writers: 2, Size: 100, Duration: 300 * time.Millisecond,
				SegmentSize: 8 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Flush != flush.String() || res.Writers != 2 || res.Size != 100 {
				t.Errorf("result echoes %s/%d/%d, want %s/2/100", res.Flush, res.Writers, res.Size, flush)
			}
			if res.Messages < 2 || res.MsgsPerSec <= 0 || res.MBPerSec <= 0 || res.DurationSec <= 0 {
				t.Errorf("no throughput: %+v", res)
			}
			if res.RawLimitMsgsPerSec <= 0 || res.RawSeqMBPerSec <= 0 || res.Ratio <= 0 {
				t.Errorf("no baseline or ratio: %+v", res)
			}
			if res.RawLimitPreallocMsgsPerSec <= 0 || res.RawLimitGrowingMsgsPerSec <= 0 ||
				res.RawLimitMsgsPerSec != max(res.RawLimitPreallocMsgsPerSec, res.RawLimitGrowingMsgsPerSec) {
				t.Errorf("raw limit %v, want the greater of prealloc %v and growing %v", res.RawLimitMsgsPerSec,
					res.RawLimitPreallocMsgsPerSec, res.RawLimitGrowingMsgsPerSec)
			}
			if res.CPUUsPerMsg <= 0 {
				t.Errorf("CPU per message %v µs, want more than zero", res.CPUUsPerMsg)
			}
			if res.P50Us <= 0 || res.P99Us < res.P50Us {
				t.Errorf("p50 %v µs, p99 %v µs: want 0 < p50 <= p99", res.P50Us, res.P99Us)
			}
			want := res.MsgsPerSec / res.RawLimitMsgsPerSec
			if flush == store.AsyncFlush {
				want = res.MBPerSec / res.RawSeqMBPerSec
				if res.GoroutineLimitMsgsPerSec != 0 || res.PebbleMsgsPerSec != 0 || res.CycleUs != 0 {
					t.Errorf("peers or group-commit cycle measured under ASYNC_FLUSH: %+v", res)
				}
			} else {
				// No group commit holds more appends than there are writers.
				if res.AppendsPerFsync <= 0 || res.AppendsPerFsync > float64(res.Writers) ||
					res.FsyncUs <= 0 || res.CycleUs < res.FsyncUs || res.RawCycleUs <= 0 || res.RawCPUUsPerFsync <= 0 {
					t.Errorf("group-commit figures out of range: %.1f appends per fsync, cycle %.0f µs, fsync %.0f µs, raw cycle %.0f µs, raw CPU %.0f µs",
						res.AppendsPerFsync, res.CycleUs, res.FsyncUs, res.RawCycleUs, res.RawCPUUsPerFsync)
				}
				if res.GoroutineLimitMsgsPerSec <= 0 || res.PebbleMsgsPerSec <= 0 {
					t.Errorf("no peers under SYNC_FLUSH: %+v", res)
				}
				if res.RatioToGoroutineLimit != res.MsgsPerSec/res.GoroutineLimitMsgsPerSec ||
					res.RatioToPebble != res.MsgsPerSec/res.PebbleMsgsPerSec {
					t.Errorf("peer ratios %v, %v, want msgs/s over each peer: %+v", res.RatioToGoroutineLimit, res.RatioToPebble, res)
				}
			}
			if res.Ratio != want {
				t.Errorf("ratio %v, want %v for %s", res.Ratio, want, flush)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 0 {
				t.Errorf("Dir holds %v after the run (err %v), want it empty", entries, err)
			}

			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]any
			if err := json.Unmarshal(b, &keys); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"flush", "writers", "size", "duration_sec", "messages", "msgs_per_sec",
				"mb_per_sec", "cpu_us_per_msg", "p50_us", "p99_us", "raw_limit_msgs_per_sec", "raw_limit_prealloc_msgs_per_sec",
				"raw_limit_growing_msgs_per_sec", "raw_seq_mb_per_sec", "ratio"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("JSON lacks %q: %s", k, b)
				}
			}
			for _, k := range []string{"goroutine_limit_msgs_per_sec", "pebble_msgs_per_sec", "ratio_to_goroutine_limit", "ratio_to_pebble"} {
				if _, ok := keys[k]; ok != (flush == store.SyncFlush) {
					t.Errorf("JSON has %q = %v, want it only under SYNC_FLUSH: %s", k, ok, b)
				}
			}
		})
	}
}

func TestRunStoreRejectsBadOptions(t *testing.T) {
	good := StoreOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Writers: 1, Size: 1, Duration: time.Second}
	for name, mutate := range map[string]func(*StoreOptions){
		"no dir":       func(o *StoreOptions) { o.Dir = "" },
		"bad flush":    func(o *StoreOptions) { o.Flush = 7 },
		"no writers":   func(o *StoreOptions) { o.Writers = 0 },
		"empty body":   func(o *StoreOptions) { o.Size = 0 },
		"huge body":    func(o *StoreOptions) { o.Size = MaxSize + 1 },
		"no duration":  func(o *StoreOptions) { o.Duration = 0 },
		"neg. segment": func(o *StoreOptions) { o.SegmentSize = -1 },
	} {
		o := good
		mutate(&o)
		if _, err := RunStore(t.Context(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestRunStoreStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	_, err := RunStore(ctx, StoreOptions{Dir: dir, Flush: store.SyncFlush, Writers: 1, Size: 1, Duration: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Dir holds %v after a cancelled run, want it empty", entries)
	}
}
