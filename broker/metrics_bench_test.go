package broker

import (
	"context"
	"io"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// BenchmarkSendTelemetry measures one SEND_MESSAGE round trip (ASYNC_FLUSH,
// so no fsync hides the cost) with telemetry off, as exporter none leaves
// it (the no-op tracer and meter providers), and with real SDK providers:
// every span batched to the stdout exporter writing to io.Discard, and
// the broker's metrics on a meter provider with a reader. Each message
// carries a sampled traceparent, as a traced producer's do.
//
//	go test ./broker -run '^$' -bench SendTelemetry -benchtime 20000x -count 6
func BenchmarkSendTelemetry(b *testing.B) {
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	b.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetMeterProvider(prevMP) })
	props := props(message.PropertyTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "KEYS", "order-42")
	body := make([]byte, 512)

	b.Run("none", func(b *testing.B) {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		benchSend(b, props, body)
	})
	b.Run("sdk", func(b *testing.B) {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(io.Discard))
		if err != nil {
			b.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() { tp.Shutdown(context.Background()); mp.Shutdown(context.Background()) })
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		benchSend(b, props, body)
	})
}

// benchSend runs "serial" (one connection, round-trip latency) and
// "parallel" (16 connections, CPU-bound throughput, where telemetry's
// cost shows) sends.
func benchSend(b *testing.B, props string, body []byte) {
	o := testOptions(b)
	o.Store.FlushType = store.AsyncFlush
	br := startBroker(b, o)
	ext := sendExt("bench", 0, props)
	send := func(b *testing.B, c *remoting.Conn) {
		if resp := call(b, c, remoting.ReqSendMessage, ext, body); resp.Code != remoting.RespSuccess {
			b.Errorf("send: %d %s", resp.Code, resp.Remark)
		}
	}
	b.Run("serial", func(b *testing.B) {
		c := dial(b, br)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			send(b, c)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		conns := make(chan *remoting.Conn, 16)
		for range cap(conns) {
			conns <- dial(b, br)
		}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.SetParallelism(8) // 16 goroutines on 2 CPUs
		b.RunParallel(func(pb *testing.PB) {
			c := <-conns
			for pb.Next() {
				send(b, c)
			}
		})
	})
}

// BenchmarkMetricsHooks measures the request paths' metric hooks alone: a
// nil *brokerMetrics (metrics off) against the per-topic atomic counters,
// from one goroutine and from many.
//
//	go test ./broker -run '^$' -bench MetricsHooks -count 6
func BenchmarkMetricsHooks(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		m    *brokerMetrics
	}{{"off", nil}, {"on", newBrokerMetrics(mp)}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				tc.m.stored("orders", 1, nil)
				tc.m.pulled("orders", "cg", 1)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tc.m.stored("orders", 1, nil)
					tc.m.pulled("orders", "cg", 1)
				}
			})
		})
	}
}
