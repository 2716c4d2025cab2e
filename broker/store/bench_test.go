package store_test

import (
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// benchWriters is about how many goroutines append at once, as 64
// producers would through the broker.
const benchWriters = 64

// BenchmarkAppend measures Append from ~64 concurrent goroutines, each
// waiting for its acknowledgement, under both flush types. Under SyncFlush
// the figure is bound by the disk's fsync rate times the group-commit batch
// size; `halfback bench store` reports it against the disk's own limit.
func BenchmarkAppend(b *testing.B) {
	for _, flush := range []struct {
		name string
		typ  store.FlushType
	}{{"sync", store.SyncFlush}, {"async", store.AsyncFlush}} {
		b.Run(flush.name+"/1KiB", func(b *testing.B) { benchmarkAppend(b, flush.typ, 1<<10) })
	}
}

func benchmarkAppend(b *testing.B, flush store.FlushType, size int) {
	st, err := store.Open(store.Options{
		Dir:         b.TempDir(),
		FlushType:   flush,
		SegmentSize: 64 << 20,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := st.Close(); err != nil {
			b.Error(err)
		}
	})
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	var writer atomic.Int32
	b.SetBytes(int64(size))
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := writer.Add(1)
		m := message.Message{Topic: "bench", QueueID: w % 4, Body: body,
			Properties: message.Properties{message.PropertyTags: "bench", message.PropertyKeys: "w" + strconv.Itoa(int(w))}.Encode()}
		for pb.Next() {
			if _, err := st.Append(b.Context(), &m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkGetMessagesFilter is a pull of 32 1 KiB messages read from a
// queue: with no filter (a slice of the commit log), with a tag filter
// (consume-queue hash codes), and with a property filter, which reads and
// decodes every record (a SQL92 subscription's cost, the expression's
// own evaluation aside), keeping one message in two.
func BenchmarkGetMessagesFilter(b *testing.B) {
	st, err := store.Open(store.Options{Dir: b.TempDir(), FlushType: store.AsyncFlush, SegmentSize: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	const n = 4096
	body := make([]byte, 1024)
	for i := range n {
		m := message.Message{Topic: "bench", Body: body, Properties: message.Properties{
			message.PropertyTags: "t" + strconv.Itoa(i%2), "amount": strconv.Itoa(i)}.Encode()}
		if _, err := st.Append(b.Context(), &m); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); st.DispatchedOffset() < st.MaxPhysicalOffset(); {
		if time.Now().After(deadline) {
			b.Fatal("records not dispatched")
		}
		runtime.Gosched()
	}
	even := message.TagsCode("t0")
	for _, c := range []struct {
		name string
		o    store.GetOptions
	}{
		{"none", store.GetOptions{}},
		{"tag", store.GetOptions{Match: func(code int64) bool { return code == even }}},
		{"properties", store.GetOptions{Filter: func(props string) bool {
			v, _ := message.Property(props, message.PropertyTags)
			return v == "t0"
		}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				r, err := st.GetMessages("bench", 0, off, c.o)
				if err != nil || r.Count != 32 {
					b.Fatalf("GetMessages: %d messages, %v", r.Count, err)
				}
				if off = r.NextBeginOffset; off > n-128 {
					off = 0
				}
			}
		})
	}
}
