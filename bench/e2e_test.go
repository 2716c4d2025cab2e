package bench

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
)

// TestRunE2E checks that every message produced in a short run is consumed
// once, for both flush types. It asserts behaviour, not speed.
func TestRunE2E(t *testing.T) {
	for _, flush := range []store.FlushType{store.SyncFlush, store.AsyncFlush} {
		t.Run(flush.String(), func(t *testing.T) {
			dir := t.TempDir()
			res, err := RunE2E(t.Context(), E2EOptions{
				ProduceOptions: ProduceOptions{Dir: dir, Flush: flush, Producers: 3, Size: 100,
					Duration: 300 * time.Millisecond, SegmentSize: 8 << 20},
				Consumers: 3, // one consumer owns two of the four queues
				Drain:     time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Flush != flush.String() || res.Producers != 3 || res.Consumers != 3 || res.Size != 100 || res.Queues != DefaultQueues {
				t.Errorf("result echoes %+v, want %s, 3 producers, 3 consumers, 100 bytes, %d queues", res, flush, DefaultQueues)
			}
			if res.Produced < 3 {
				t.Errorf("produced %d, want at least one message a producer", res.Produced)
			}
			if res.Consumed != res.Produced || res.Missing != 0 || res.Duplicates != 0 {
				t.Errorf("produced %d, consumed %d, missing %d, duplicates %d: want all consumed once",
					res.Produced, res.Consumed, res.Missing, res.Duplicates)
			}
			if res.MsgsPerSec <= 0 || res.ProducedPerSec <= 0 || res.DurationSec <= 0 || res.DrainSec < 0 {
				t.Errorf("no throughput: %+v", res)
			}
			if res.P50ms <= 0 || res.P99ms < res.P50ms || res.SendP50ms <= 0 || res.SendP99ms < res.SendP50ms {
				t.Errorf("latency p50 %v, p99 %v, send p50 %v, p99 %v ms: want 0 < p50 <= p99",
					res.P50ms, res.P99ms, res.SendP50ms, res.SendP99ms)
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("Dir holds %v after the run (err %v), want it empty", entries, err)
			}
			requireJSONKeys(t, res, "flush", "producers", "connections", "consumers", "size", "queues",
				"duration_sec", "produced", "consumed", "missing", "duplicates", "msgs_per_sec", "mb_per_sec",
				"p50_ms", "p99_ms", "produced_msgs_per_sec", "send_p50_ms", "send_p99_ms", "drain_sec")
		})
	}
}

func TestRunE2ERejectsBadOptions(t *testing.T) {
	good := E2EOptions{ProduceOptions: ProduceOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Producers: 1,
		Size: StampSize, Duration: time.Second}}
	for name, mutate := range map[string]func(*E2EOptions){
		"bad producer option": func(o *E2EOptions) { o.Producers = 0 },
		"body without stamp":  func(o *E2EOptions) { o.Size = StampSize - 1 },
		"negative consumers":  func(o *E2EOptions) { o.Consumers = -1 },
		"consumers > queues":  func(o *E2EOptions) { o.Consumers = DefaultQueues + 1 },
		"negative drain":      func(o *E2EOptions) { o.Drain = -time.Second },
		"fewer queues":        func(o *E2EOptions) { o.Queues, o.Consumers = 2, 3 },
	} {
		o := good
		mutate(&o)
		if _, err := RunE2E(t.Context(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
}
