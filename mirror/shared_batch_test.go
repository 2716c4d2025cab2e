package mirror_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
)

// Kafka refuses as too large a whole record batch, and sarama puts the
// records of several queues' handlers, sent at the same time to one
// partition, in one batch. A handler whose own batch is a single record
// must not take that refusal as the record being too large alone: each
// record below fits the topic, two together do not; none may be skipped.
func TestSingleRecordRefusedWithOtherQueuesRecordsIsNotSkipped(t *testing.T) {
	st, c := startStack(t)
	topic := uniq("shared")
	createTopic(t, st.Broker.Addr(), topic)
	// message.max.bytes 5000: a record of 3000 bytes fits, two do not.
	kc := startKafka(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "5000"}))
	failProduce(kc, 1) // the others' records queue up behind the retry
	p := newProducer(t, c, client.ProducerOptions{})
	var ids []string
	for i := range 8 {
		key := fmt.Sprintf("order-%d", i)
		ids = append(ids, send(t, context.Background(), p, &client.Message{Topic: topic,
			Body: []byte(strings.Repeat("x", 3000)), Keys: []string{key}, ShardingKey: key}))
	}
	m := startMirror(t, mirror.Options{Client: c, Group: uniq("mirror"), BatchSize: 1, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), MaxMessageBytes: 20000}})
	r := readKafka(t, kc.ListenAddrs(), topic)
	testutil.WaitFor(t, 30*time.Second, "every record mirrored or one rejected", func() bool {
		s := m.Stats()
		return s.Rejected > 0 || s.Mirrored >= int64(len(ids))
	})
	if s := m.Stats(); s.Rejected != 0 {
		got := r.byID()
		missing := 0
		for _, id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		t.Fatalf("Stats() = %+v: %d records that fit Kafka alone were skipped as too large (%d of %d not in Kafka)",
			s, s.Rejected, missing, len(ids))
	}
	r.waitIDs(t, 30*time.Second, ids)
}
