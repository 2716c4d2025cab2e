package mirror_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/mirror"
)

// A Kafka topic whose segment.bytes is below the size of a batch sarama
// builds refuses the batch with RECORD_LIST_TOO_LARGE, however often it is
// sent (the queue stalled for ever): the mirror sends its records one at a
// time, and skips as rejected the one too large for a segment even alone.
func TestMirrorSplitsABatchLargerThanKafkasSegment(t *testing.T) {
	st, c := startStack(t)
	topic := uniq("segment")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, topic))
	const segment = 3000 // bytes of a partition's record batch Kafka takes
	answerProduce(kc, func(r *kmsg.ProduceRequest) (int16, bool) {
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				if len(p.Records) > segment {
					return 18, true // RECORD_LIST_TOO_LARGE
				}
			}
		}
		return 0, false
	})
	p := newProducer(t, c, client.ProducerOptions{})
	msg := func(body string) *client.Message {
		return &client.Message{Topic: topic, Body: []byte(body), Keys: []string{"k"}, ShardingKey: "k"}
	}
	var small []string
	var big string
	for _, body := range []string{"a", "b", "x", "c", "d", "e"} {
		n := 1000 // two fit a segment, not three
		if body == "x" {
			n = 2 * segment // too large alone
		}
		id := send(t, context.Background(), p, msg(strings.Repeat(body, n)))
		if body == "x" {
			big = id
		} else {
			small = append(small, id)
		}
	}
	group := uniq("mirror")
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), topic)
	checkLastCopiesInOrder(t, 20*time.Second, st.Broker.Addr(), m, r, group, topic, small)
	if n := r.byID()[big]; n != 0 {
		t.Errorf("the message larger than a segment is in Kafka %d times", n)
	}
	if s := m.Stats(); s.Rejected != 1 || s.Retrying != 0 {
		t.Errorf("Stats() = %+v, want 1 rejected, none retrying", s)
	}
}

// Records sarama batched with one Kafka can never take are refused with
// it and sent again one at a time, in their order: they arrive in order,
// so none of them is sent a second time. (The large one is the batch's
// last: no request after the refused one can store a later record of
// the key ahead of them, which would rightly be sent again.)
func TestRecordsRefusedWithATooLargeOneArriveOnce(t *testing.T) {
	st, c := startStack(t)
	topic := uniq("once")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8000"}))
	p := newProducer(t, c, client.ProducerOptions{})
	var small []string
	var big string
	for i := range 8 {
		body := strings.Repeat("s", 2000)
		if i == 7 {
			body = strings.Repeat("b", 12000) // refused by Kafka alone too
		}
		id := send(t, context.Background(), p, &client.Message{Topic: topic, Body: []byte(body),
			Keys: []string{"k"}, ShardingKey: "k"})
		if i == 7 {
			big = id
		} else {
			small = append(small, id)
		}
	}
	group := uniq("mirror")
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), MaxMessageBytes: 20000}})
	r := readKafka(t, kc.ListenAddrs(), topic)
	checkLastCopiesInOrder(t, 20*time.Second, st.Broker.Addr(), m, r, group, topic, small)
	counts := r.byID()
	for i, id := range small {
		if counts[id] != 1 {
			t.Errorf("message %d is in Kafka %d times, want once", i, counts[id])
		}
	}
	if counts[big] != 0 {
		t.Errorf("the message Kafka cannot take is in Kafka")
	}
	if s := m.Stats(); s.Rejected != 1 {
		t.Errorf("Stats() = %+v, want 1 rejected", s)
	}
}
