package bench

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
)

func TestRunDelaySmall(t *testing.T) {
	res, err := RunDelay(t.Context(), DelayOptions{Dir: t.TempDir(), Flush: store.SyncFlush,
		Messages: 3000, Burst: 1000, DueSpread: time.Second, Lead: 500 * time.Millisecond, SegmentSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 3000 || res.Missing != 0 || res.Duplicates != 0 {
		t.Fatalf("delivered %d, missing %d, duplicates %d of 3000", res.Delivered, res.Missing, res.Duplicates)
	}
	if res.LevelMessages == 0 || res.TimerMessages != 3000-res.LevelMessages {
		t.Fatalf("mix: %d level, %d timer", res.LevelMessages, res.TimerMessages)
	}
	if res.LatenessP99ms < res.LatenessP50ms || res.LatenessMaxms < 0 || res.BurstMsgsPerSec <= 0 {
		t.Fatalf("inconsistent figures: %+v", res)
	}
	b, _ := json.Marshal(res)
	for _, k := range []string{"messages", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "delivered"} {
		if !strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
}

func TestRunDelayRejectsBadOptions(t *testing.T) {
	for _, o := range []DelayOptions{
		{},
		{Dir: t.TempDir(), Messages: 10, Burst: 10, DueSpread: time.Second},
		{Dir: t.TempDir(), Messages: 10, Burst: 1, DueSpread: time.Millisecond},
		{Dir: t.TempDir(), Messages: 10, Burst: 1, DueSpread: time.Second, SegmentSize: -1},
	} {
		if _, err := RunDelay(t.Context(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("RunDelay(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}
