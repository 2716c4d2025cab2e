package mirror_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
)

// metricValue collects reader and returns the int64 value of the data
// point of name whose attributes include want (0 if there is none).
func metricValue(t *testing.T, reader *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
		point:
			for _, p := range points {
				for _, kv := range want {
					if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
						continue point
					}
				}
				return p.Value
			}
		}
	}
	return 0
}

// The mirror's metrics follow what it does: records mirrored and
// rejected, and, while Kafka is down, failed attempts and the queues
// waiting to retry.
func TestMirrorMetrics(t *testing.T) {
	stack, c := startStack(t)
	kafka := startKafka(t, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(queues))
	topic := uniq("metrics")
	createTopic(t, stack.Broker.Addr(), topic)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	group := uniq("metrics-mirror")
	m := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst, MeterProvider: mp,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: kafka.ListenAddrs(), MaxMessageBytes: 4000}})
	p := newProducer(t, newSender(t, stack.NamesrvAddr), client.ProducerOptions{}) // each message stored once
	ctx := t.Context()
	for i := range 5 {
		send(t, ctx, p, &client.Message{Topic: topic, Body: []byte{byte('a' + i)}, Keys: []string{"k"}})
	}
	send(t, ctx, p, &client.Message{Topic: topic, Body: make([]byte, 5000), Keys: []string{"k"}}) // too large for Kafka
	testutil.WaitFor(t, 20*time.Second, "5 mirrored and 1 rejected", func() bool {
		s := m.Stats()
		return s.Mirrored == 5 && s.Rejected == 1
	})
	g := attribute.String("messaging.consumer.group.name", group)
	if got := metricValue(t, reader, "halfback.mirror.records", g, attribute.String("outcome", "mirrored")); got != 5 {
		t.Errorf("records{outcome=mirrored} = %d, want 5", got)
	}
	if got := metricValue(t, reader, "halfback.mirror.records", g, attribute.String("outcome", "rejected")); got != 1 {
		t.Errorf("records{outcome=rejected} = %d, want 1", got)
	}
	if got := metricValue(t, reader, "halfback.mirror.retrying", g); got != 0 {
		t.Errorf("retrying = %d with Kafka up, want 0", got)
	}

	kafka.Close()
	send(t, ctx, p, &client.Message{Topic: topic, Body: []byte("while Kafka is down"), Keys: []string{"k"}})
	testutil.WaitFor(t, 20*time.Second, "the retrying metric to show the paused queue", func() bool {
		return metricValue(t, reader, "halfback.mirror.retrying", g) == 1 && metricValue(t, reader, "halfback.mirror.failures", g) >= 2
	})
}
