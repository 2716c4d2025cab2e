package mirror_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// TestMirrorHoldsLittleWhileKafkaIsDown keeps Kafka unreachable while a
// queue holds many messages: the mirror only ever sends BatchSize of them
// at a time, so it must not pull (and hold in memory) more than about two
// batches of the queue while it waits for Kafka. The broker's count of
// messages returned to the mirror group's pulls says how many it holds.
func TestMirrorHoldsLittleWhileKafkaIsDown(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp) // the broker's, read at Open
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		_ = mp.Shutdown(context.Background())
	})
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	topic, group := uniq("held"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	p := newProducer(t, c, client.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const sent, batch = 150, 8
	body := make([]byte, 64<<10)
	for i := range sent {
		send(t, ctx, p, &client.Message{Topic: topic, Body: body, ShardingKey: "one-queue", Keys: []string{strconv.Itoa(i)}})
	}
	m := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst, BatchSize: batch,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: []string{"127.0.0.1:1"}}}) // nothing listens there
	pulled := func() int64 {
		return metricValue(t, reader, "halfback.broker.messages.out",
			attribute.String("messaging.destination.name", topic), attribute.String("messaging.consumer.group.name", group))
	}
	testutil.WaitFor(t, 20*time.Second, "the mirror to fail at its first batch a few times", func() bool {
		return pulled() >= batch && m.Stats().Failures >= 5
	})
	// A batch in the handler, one being pulled and one waiting at most.
	if n, limit := pulled(), int64(3*batch); n > limit {
		t.Errorf("the mirror pulled %d messages (%d KiB) of one queue while Kafka is down, want at most %d (BatchSize %d)",
			n, n*int64(len(body))>>10, limit, batch)
	}
}
