package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Writers×Size that overflows int is refused (it made the raw limit
// divide by zero).
func TestRunStoreRefusesAnOverflowingBatch(t *testing.T) {
	o := StoreOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Writers: 1 << 42, Size: MaxSize, Duration: time.Millisecond}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panicked: %v", r)
			}
		}()
		_, err = RunStore(t.Context(), o)
	}()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("RunStore(Writers %d, Size %d) = %v, want ErrInvalidOptions", o.Writers, o.Size, err)
	}
}

// A group commit of more than MaxBatch bytes is refused: the raw limit
// would hold it in memory and zero-fill four of them on disk.
func TestStoreOptionsRefuseAHugeBatch(t *testing.T) {
	o := StoreOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Writers: 4096, Size: MaxSize, Duration: time.Millisecond}
	if _, err := o.validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("validate(Writers %d × Size %d = %d GiB batch) = %v, want ErrInvalidOptions",
			o.Writers, o.Size, o.Writers*o.Size>>30, err)
	}
}

// openBareBroker opens a broker for tests that need one behind a txnRig.
func openBareBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Open(broker.Options{
		Store:      store.Options{Dir: filepath.Join(t.TempDir(), "store"), FlushType: store.AsyncFlush, SegmentSize: 8 << 20},
		ListenAddr: "127.0.0.1:0",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A committed message received twice is counted as a duplicate, in the
// JSON too, not folded away.
func TestTxnResultCountsDuplicates(t *testing.T) {
	tr := &txnRig{rig: &rig{b: openBareBroker(t)}}
	cs := &consumers{loops: []*pullLoop{{ids: []uint64{msgID(0, 0), msgID(0, 0), msgID(0, 1)}, last: time.Now()}}}
	res := tr.result(TxnOptions{Producers: 1, Size: StampSize}, cs, time.Now().Add(-time.Second), 2)
	b, _ := json.Marshal(res)
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	if d, ok := got["duplicates"]; !ok || d != float64(1) {
		t.Fatalf("one message received twice; result %s: want \"duplicates\":1", b)
	}
}

// A run in which nothing was consumed within Drain reports its duration
// from its start, not from the zero time (a negative figure).
func TestTxnNothingConsumedHasNoNegativeDuration(t *testing.T) {
	res, err := RunTxn(t.Context(), TxnOptions{Dir: t.TempDir(), Flush: store.AsyncFlush, Producers: 1, Size: 64,
		Duration: 100 * time.Millisecond, SegmentSize: 8 << 20, UnknownPercent: 100,
		CheckTimeout: time.Hour, Drain: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.DurationSec < 0 {
		t.Errorf("DurationSec = %g, want >= 0 (missing %d of %d)", res.DurationSec, res.Missing, res.Transactions)
	}
}

// The drain waits for distinct messages: three receipts of one message
// count once, so a wait for three messages goes on until the others come
// (or the drain ends and they are reported missing).
func TestDrainWaitsForDistinctMessages(t *testing.T) {
	cs := &consumers{seen: make(map[uint64]struct{})}
	l := &pullLoop{}
	n, err := l.take(stampedRecords(t, msgID(0, 0), msgID(0, 0), msgID(0, 0)), time.Now())
	if err != nil || n != 3 {
		t.Fatalf("took %d records, %v", n, err)
	}
	cs.note(l.ids[len(l.ids)-n:])
	if got := cs.distinct.Load(); got != 1 {
		t.Fatalf("three receipts of one message counted as %d distinct", got)
	}
	n, err = l.take(stampedRecords(t, msgID(0, 1), msgID(1, 0)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cs.note(l.ids[len(l.ids)-n:])
	if err := waitReceived(context.Background(), &cs.distinct, 3, time.Minute); err != nil || cs.distinct.Load() != 3 {
		t.Fatalf("waitReceived: %v with %d distinct", err, cs.distinct.Load())
	}
}

func stampedRecords(t *testing.T, ids ...uint64) []byte {
	t.Helper()
	var out []byte
	for i, id := range ids {
		body := make([]byte, StampSize)
		binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(body[8:], id)
		start := len(out)
		var err error
		if out, err = message.AppendRecord(out, &message.Message{Topic: benchTopic, Body: body}); err != nil {
			t.Fatal(err)
		}
		message.SetOffsets(out[start:], int64(i), int64(start), time.Now().UnixMilli())
	}
	return out
}

// With fewer queues than the default consumer count, the default fits
// the queues instead of being refused.
func TestE2EDefaultConsumersFitFewQueues(t *testing.T) {
	o := E2EOptions{ProduceOptions: ProduceOptions{Dir: t.TempDir(), Flush: store.SyncFlush, Producers: 2, Size: 64,
		Duration: time.Second, Queues: 2}}
	if _, err := o.validate(); err != nil {
		t.Fatalf("E2EOptions{Queues: 2} with the default consumers: %v", err)
	}
}

// Burst 0 means no burst, not the default 100,000 (which made a small run
// impossible).
func TestDelayBurstZeroMeansNone(t *testing.T) {
	v, err := DelayOptions{Dir: t.TempDir(), Messages: 10, Burst: 0, DueSpread: time.Second}.validate()
	if err != nil || v.Burst != 0 {
		t.Fatalf("validate(Burst 0) = Burst %d, %v; want Burst 0, nil", v.Burst, err)
	}
}
