package lifecycle

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkRecorderWrite is the writer goroutine's cost per event: batches
// of maxBatch stored events, each with a key and a trace id as the broker
// records a send, encoded and committed to Pebble.
func BenchmarkRecorderWrite(b *testing.B) {
	r, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	batch := make([]*item, maxBatch)
	now := time.Now()
	for i := range batch {
		id := "7F00000100012A9F" + strconv.FormatInt(int64(1e15+i), 16)
		batch[i] = &item{ev: Event{MsgID: id, Time: now, Kind: Stored, Topic: "orders", Queue: int32(i % 4),
			Offset: int64(i), OffsetMsgID: "0A00000100002A9F" + strconv.FormatInt(int64(1e15+i), 16),
			Flush: "SYNC_FLUSH", Keys: "order-" + strconv.Itoa(i), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%maxBatch == 0 {
			r.write(batch)
		}
		n++
	}
}
