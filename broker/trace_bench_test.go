package broker

import (
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// BenchmarkTraceStored is what a one-message send pays for spans and the
// lifecycle record with no tracer provider installed: the provider check
// and one queued event (the Pebble write is the writer goroutine's).
func BenchmarkTraceStored(b *testing.B) {
	for _, life := range []bool{false, true} {
		name := "lifecycle-off"
		if life {
			name = "lifecycle-on"
		}
		b.Run(name, func(b *testing.B) {
			br := &Broker{}
			if life {
				r, err := lifecycle.Open(lifecycle.Options{Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				br.life = r
			}
			m := &message.Message{Topic: "orders", Properties: props("UNIQ_KEY", "7F0000010001", "KEYS", "order-42",
				"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}
			msgs, res := []*message.Message{m}, []store.AppendResult{{MsgID: "0A00000100002A9F0000000000000000", QueueOffset: 1}}
			start := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				br.traceStored(msgs, res, start, nil)
			}
			if br.life != nil {
				br.life.Sync()
				b.ReportMetric(float64(br.life.Dropped())/float64(b.N), "dropped/op")
			}
		})
	}
}
