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

// TestRunProduce checks that one short run over the protocol is
// self-consistent for both flush types. It asserts behaviour, not speed.
func TestRunProduce(t *testing.T) {
	for _, flush := range []store.FlushType{store.SyncFlush, store.AsyncFlush} {
		t.Run(flush.String(), func(t *testing.T) {
			dir := t.TempDir()
			res, err := RunProduce(t.Context(), ProduceOptions{
				Dir: dir, Flush: flush, Producers: 3, Connections: 2, Size: 100,
				Duration: 300 * time.Millisecond, SegmentSize: 8 << 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Flush != flush.String() || res.Producers != 3 || res.Connections != 2 || res.Size != 100 || res.Queues != DefaultQueues {
				t.Errorf("result echoes %+v, want %s, 3 producers, 2 connections, 100 bytes, %d queues", res, flush, DefaultQueues)
			}
			if res.Messages < 3 || res.MsgsPerSec <= 0 || res.MBPerSec <= 0 || res.DurationSec <= 0 {
				t.Errorf("no throughput: %+v", res)
			}
			if res.P50ms <= 0 || res.P99ms < res.P50ms {
				t.Errorf("p50 %v ms, p99 %v ms: want 0 < p50 <= p99", res.P50ms, res.P99ms)
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("Dir holds %v after the run (err %v), want it empty", entries, err)
			}
			requireJSONKeys(t, res, "flush", "producers", "connections", "size", "queues", "duration_sec",
				"messages", "msgs_per_sec", "mb_per_sec", "p50_ms", "p99_ms")
		})
	}
}

// TestRunProduceTinyBody checks that a body too small for the stamp is sent as is.
func TestRunProduceTinyBody(t *testing.T) {
	res, err := RunProduce(t.Context(), ProduceOptions{Dir: t.TempDir(), Flush: store.AsyncFlush, Producers: 1, Size: 1,
		Duration: 50 * time.Millisecond, SegmentSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages < 1 || res.Connections != 1 {
		t.Errorf("%d messages over %d connections, want at least 1 over 1", res.Messages, res.Connections)
	}
}

func TestRunProduceRejectsBadOptions(t *testing.T) {
	good := ProduceOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Producers: 2, Size: 1, Duration: time.Second}
	for name, mutate := range map[string]func(*ProduceOptions){
		"no dir":            func(o *ProduceOptions) { o.Dir = "" },
		"bad flush":         func(o *ProduceOptions) { o.Flush = 7 },
		"no producers":      func(o *ProduceOptions) { o.Producers = 0 },
		"negative conns":    func(o *ProduceOptions) { o.Connections = -1 },
		"conns > producers": func(o *ProduceOptions) { o.Connections = 3 },
		"empty body":        func(o *ProduceOptions) { o.Size = 0 },
		"huge body":         func(o *ProduceOptions) { o.Size = MaxSize + 1 },
		"no duration":       func(o *ProduceOptions) { o.Duration = 0 },
		"negative queues":   func(o *ProduceOptions) { o.Queues = -1 },
		"too many queues":   func(o *ProduceOptions) { o.Queues = 1025 },
		"neg. segment":      func(o *ProduceOptions) { o.SegmentSize = -1 },
	} {
		o := good
		mutate(&o)
		if _, err := RunProduce(t.Context(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestRunProduceStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	dir := t.TempDir()
	_, err := RunProduce(ctx, ProduceOptions{Dir: dir, Flush: store.AsyncFlush, Producers: 2, Size: 10,
		Duration: time.Hour, SegmentSize: 8 << 20})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Dir holds %v after a cancelled run, want it empty", entries)
	}
}

// requireJSONKeys marshals v and fails unless every key is in the object.
func requireJSONKeys(t *testing.T, v any, keys ...string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
}
