package mirror_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/mirror"
)

// answerProduce makes kc answer each produce request that refuse picks
// with refuse's error code for every partition; kfake stores the others.
func answerProduce(kc *kfake.Cluster, refuse func(r *kmsg.ProduceRequest) (code int16, ok bool)) {
	kc.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		code, ok := refuse(r)
		if !ok {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

// failProduce makes kc answer its first n produce requests with
// NOT_LEADER_FOR_PARTITION, as during a leader election.
func failProduce(kc *kfake.Cluster, n int32) {
	var seen atomic.Int32
	answerProduce(kc, func(*kmsg.ProduceRequest) (int16, bool) { return 6, seen.Add(1) <= n })
}

// When Kafka refuses produce requests for longer than sarama retries, sarama
// gives up on the first records of a key and still stores the later ones.
// The mirror then sends the key's records again from the first that did
// not arrive: every message arrives, and the last copy of each is in the
// order the messages were sent.
func TestMirrorKeepsKeyOrderAfterPartialFailure(t *testing.T) {
	// 14 refused requests: the whole first batch fails (sarama's retries
	// spent), then, on the mirror's retry, sarama gives up on the first
	// record alone and stores the rest (seen in the stats: 63 records).
	for _, fails := range []int32{14} {
		t.Run(fmt.Sprintf("%d refused requests", fails), func(t *testing.T) {
			st, c := startStack(t)
			topic, ktopic := uniq("ordered"), uniq("ordered.kafka")
			createTopic(t, st.Broker.Addr(), topic)
			kc := startKafka(t, kfake.SeedTopics(1, ktopic))
			failProduce(kc, fails)
			p := newProducer(t, c, client.ProducerOptions{})
			const n = 32
			ids := make([]string, n)
			for i := range n {
				ids[i] = send(t, context.Background(), p, &client.Message{Topic: topic, Body: []byte(fmt.Sprint(i)),
					Keys: []string{"order-1"}, ShardingKey: "order-1"})
			}
			group := uniq("mirror")
			m := startMirror(t, mirror.Options{Client: c, StartFrom: mirror.StartFirst, Group: group,
				Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
				Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
			checkLastCopiesInOrder(t, 30*time.Second, st.Broker.Addr(), m, readKafka(t, kc.ListenAddrs(), ktopic), group, topic, ids)
		})
	}
}

// refuseTimestampsBefore makes kc answer INVALID_TIMESTAMP for every
// record batch whose first timestamp is before cutoff, as a topic with
// message.timestamp.before.max.ms does for records older than its window.
func refuseTimestampsBefore(kc *kfake.Cluster, cutoff time.Time) {
	answerProduce(kc, func(r *kmsg.ProduceRequest) (int16, bool) {
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err != nil {
					continue
				}
				if oldest, err := oldestTimestamp(&b); err != nil || oldest < cutoff.UnixMilli() {
					return 32, true // INVALID_TIMESTAMP (CORRUPT_MESSAGE would do for err; the test sends none)
				}
			}
		}
		return 0, false
	})
}

// oldestTimestamp is the earliest timestamp of an uncompressed batch's
// records. Kafka checks each record's timestamp, not only the batch's
// first: a batch whose first record was restamped may still carry an old
// one.
func oldestTimestamp(b *kmsg.RecordBatch) (int64, error) {
	if b.Attributes&0x07 != 0 {
		return 0, fmt.Errorf("compressed batch (codec %d)", b.Attributes&0x07)
	}
	oldest, src := b.FirstTimestamp, b.Records
	for range b.NumRecords {
		l, n := binary.Varint(src)
		if n <= 0 || l < 0 || int64(len(src)-n) < l {
			return 0, fmt.Errorf("malformed record in batch")
		}
		var r kmsg.Record
		if err := r.ReadFrom(src[:n+int(l)]); err != nil {
			return 0, err
		}
		oldest = min(oldest, b.FirstTimestamp+r.TimestampDelta64)
		src = src[n+int(l):]
	}
	return oldest, nil
}

// Messages stored before a Kafka outage longer than the topic's timestamp
// window are refused with their store time: the mirror sends them again
// stamped with the time of sending, the store time in a header, instead
// of skipping them.
func TestMirrorRestampsRecordsOutsideKafkasTimestampWindow(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("stream"), uniq("stream"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(4, ktopic))
	p := newProducer(t, c, client.ProducerOptions{})
	stored := map[string]int64{} // msg id -> store time (ms)
	var last int64
	for i := range 6 {
		res, err := p.Send(context.Background(), &client.Message{Topic: topic, Keys: []string{fmt.Sprintf("k%d", i%2)},
			Body: []byte(fmt.Sprintf("m-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		_, phys, err := message.ParseOffsetMsgID(res.OffsetMsgID)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := st.Broker.Store().ReadMessage(phys)
		if err != nil {
			t.Fatal(err)
		}
		stored[res.MsgID], last = ext.StoreTimestamp, max(last, ext.StoreTimestamp)
	}
	testutil.WaitFor(t, 5*time.Second, "a millisecond after the last store time", func() bool {
		return time.Now().UnixMilli() > last
	})
	refuseTimestampsBefore(kc, time.Now())

	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 4, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	ids := make([]string, 0, len(stored))
	for id := range stored {
		ids = append(ids, id)
	}
	r.waitIDs(t, 30*time.Second, ids)
	if s := m.Stats(); s.Rejected != 0 {
		t.Fatalf("Stats() = %+v: records skipped", s)
	}
	for _, rec := range r.records() {
		id := header(rec, mirror.HeaderMsgID)
		if got := header(rec, mirror.HeaderStoreTimestamp); got != fmt.Sprint(stored[id]) {
			t.Errorf("record %s: %s header %q, want its store time %d", id, mirror.HeaderStoreTimestamp, got, stored[id])
		}
	}
}

// A record restamped after INVALID_TIMESTAMP can be refused again (the
// producer batched it with older records of the same partition, which
// Kafka refuses whole). It is retried, not skipped, and carries its store
// time header once.
func TestMirrorRetriesARestampedRecordRefusedAgain(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("stream"), uniq("stream"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, ktopic))
	p := newProducer(t, c, client.ProducerOptions{})
	res, err := p.Send(context.Background(), &client.Message{Topic: topic, Body: []byte("late")})
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	answerProduce(kc, func(*kmsg.ProduceRequest) (int16, bool) { return 32, refused.Add(1) <= 3 }) // INVALID_TIMESTAMP
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 4, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	r.waitIDs(t, 30*time.Second, []string{res.MsgID})
	if s := m.Stats(); s.Rejected != 0 {
		t.Fatalf("Stats() = %+v: the record was skipped", s)
	}
	if n := refused.Load(); n < 3 {
		t.Fatalf("Kafka refused %d produce requests, want 3: the test shows nothing", n)
	}
	for _, rec := range r.records() {
		n := 0
		for _, h := range rec.Headers {
			if h.Key == mirror.HeaderStoreTimestamp {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("record carries %d %s headers, want 1", n, mirror.HeaderStoreTimestamp)
		}
	}
}

// A Kafka topic that refuses every batch (a retriable error, so the mirror
// keeps trying) on more queues than the consumer's default concurrency
// does not hold up another mapped topic: each queue waits on its own.
func TestRefusingKafkaTopicDoesNotStallOtherTopics(t *testing.T) {
	st, c := startStack(t)
	stuck, flowing, group := uniq("stuck"), uniq("flowing"), uniq("mirror")
	kStuck, kFlowing := uniq("kstuck"), uniq("kflowing")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, st.Broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	const stuckQueues = 24 // above client.DefaultConsumeConcurrency (20)
	if err := ac.CreateTopic(ctx, stuck, stuckQueues); err != nil {
		t.Fatal(err)
	}
	createTopic(t, st.Broker.Addr(), flowing)
	kc := startKafka(t, kfake.SeedTopics(4, kStuck, kFlowing))
	answerProduce(kc, func(r *kmsg.ProduceRequest) (int16, bool) {
		return 6, len(r.Topics) > 0 && r.Topics[0].Topic == kStuck // NOT_LEADER_FOR_PARTITION: retried for ever
	})
	for q := range stuckQueues {
		if _, err := st.Broker.Store().Append(context.Background(), &message.Message{Topic: stuck, QueueID: int32(q),
			Body: []byte("stuck")}); err != nil {
			t.Fatal(err)
		}
	}
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 4, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: stuck, Kafka: kStuck}, {RocketMQ: flowing, Kafka: kFlowing}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	testutil.WaitFor(t, 30*time.Second, "every stuck queue retrying", func() bool { return m.Stats().Retrying >= stuckQueues })
	res, err := newProducer(t, c, client.ProducerOptions{}).Send(context.Background(),
		&client.Message{Topic: flowing, Body: []byte("flows")})
	if err != nil {
		t.Fatal(err)
	}
	readKafka(t, kc.ListenAddrs(), kFlowing).waitIDs(t, 30*time.Second, []string{res.MsgID})
}

// A record that fits Kafka.MaxMessageBytes but is refused with
// INVALID_TIMESTAMP (a long outage) is restamped with an extra header,
// rocketmq.storeTimestamp, which can push it over MaxMessageBytes (sarama
// then refuses it locally, a ConfigurationError that was retried forever):
// it is skipped as a record Kafka cannot take, and the queue goes on.
func TestRestampedRecordOverMaxMessageBytesIsSkipped(t *testing.T) {
	st, c := startStack(t)
	topic, kprobe, ktopic := uniq("edge"), uniq("probe"), uniq("edge")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, kprobe, ktopic))
	p := newProducer(t, c, client.ProducerOptions{})
	id := send(t, context.Background(), p, &client.Message{Topic: topic, Body: []byte(strings.Repeat("x", 5000))})

	// Mirror it once with no tight limit, to learn the size sarama counts
	// for its record (ProducerMessage.ByteSize(2)).
	probe := startMirror(t, mirror.Options{Client: c, Group: uniq("probe"), StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: kprobe}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), kprobe)
	r.waitIDs(t, 20*time.Second, []string{id})
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	rec := r.records()[0]
	size := 5*binary.MaxVarintLen32 + binary.MaxVarintLen64 + 1 + len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		size += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	extra := len(mirror.HeaderStoreTimestamp) + 13 + 2*binary.MaxVarintLen32

	refuseTimestampsBefore(kc, time.Now())
	group := uniq("mirror")
	m := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), MaxMessageBytes: size + extra/2}})
	// Either outcome keeps the documented contract: the record arrives
	// (restamped) or it is rejected and skipped. The queue must go on.
	testutil.WaitFor(t, 20*time.Second, "the mirror to skip the restamped record (lag 0)", func() bool {
		return groupLag(t, st.Broker.Addr(), group, topic) == 0
	})
	if s := m.Stats(); s.Rejected != 1 {
		t.Fatalf("stats %+v (record size %d, MaxMessageBytes %d), want the record rejected", s, size, size+extra/2)
	}
}

// TestMirrorKeepsShardingKeyOrder sends each order's events with the
// order id as the sharding key (which picks the RocketMQ queue and so the
// order) and a key of the event's own (KEYS, for lookups, as RocketMQ's
// ordered-message example does): every order's events must land in one
// Kafka partition, in the order they were sent.
func TestMirrorKeepsShardingKeyOrder(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic := uniq("orders"), uniq("orders.kafka")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(6, ktopic))
	startMirror(t, mirror.Options{Client: c, Group: uniq("mirror"),
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}}, Kafka: mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	p := newProducer(t, c, client.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const orders, events = 4, 8
	var ids []string
	for i := range orders * events {
		order, n := fmt.Sprintf("order-%d", i%orders), i/orders
		ids = append(ids, send(t, ctx, p, &client.Message{Topic: topic, Body: []byte(fmt.Sprintf("%s#%d", order, n)),
			ShardingKey: order, Keys: []string{fmt.Sprintf("event-%d", i)}}))
	}
	r.waitIDs(t, 30*time.Second, ids)
	partition := map[string]int32{}
	last := map[string]int{}
	for _, rec := range r.records() { // each partition's records in offset order
		order, n, _ := strings.Cut(string(rec.Value), "#")
		seq := int(n[0] - '0')
		if p, ok := partition[order]; ok && p != rec.Partition {
			t.Errorf("%s: events in partitions %d and %d (record key %q)", order, p, rec.Partition, rec.Key)
			continue
		}
		if l, ok := last[order]; ok && seq <= l {
			t.Errorf("%s: event %d after event %d", order, seq, l)
		}
		partition[order], last[order] = rec.Partition, seq
	}
}

// A key's first record that Kafka does not take in its turn (refused
// for longer than sarama retries) must still come before the key's later
// records, even when one of those is refused for its timestamp and sent
// again alone at once: that one arrives ahead of the first record and must
// be sent again after it, so that the last copy of each is in order.
func TestMirrorKeepsKeyOrderWhenALaterRecordIsRestamped(t *testing.T) {
	for _, refusals := range []int32{6, 12} {
		t.Run(fmt.Sprintf("first record refused %d times", refusals), func(t *testing.T) {
			st, c := startStack(t)
			topic, ktopic, group := uniq("keyed"), uniq("keyed"), uniq("mirror")
			createTopic(t, st.Broker.Addr(), topic)
			kc := startKafka(t, kfake.SeedTopics(1, ktopic))
			p := newProducer(t, c, client.ProducerOptions{})
			const n = 8
			ids := make([]string, n)
			var first, lastStored int64 // store times (ms) of the first and last message
			for i := range n {
				res, err := p.Send(context.Background(), &client.Message{Topic: topic, Body: []byte(fmt.Sprint(i)),
					Keys: []string{"order-1"}, ShardingKey: "order-1"})
				if err != nil {
					t.Fatal(err)
				}
				_, phys, err := message.ParseOffsetMsgID(res.OffsetMsgID)
				if err != nil {
					t.Fatal(err)
				}
				ext, err := st.Broker.Store().ReadMessage(phys)
				if err != nil {
					t.Fatal(err)
				}
				ids[i], lastStored = res.MsgID, ext.StoreTimestamp
				if i == 0 {
					first = ext.StoreTimestamp
					// The others stored in a later millisecond: a batch
					// whose first timestamp is first's starts with it.
					testutil.WaitFor(t, 5*time.Second, "a millisecond after the first store time", func() bool {
						return time.Now().UnixMilli() > first
					})
				}
			}
			testutil.WaitFor(t, 5*time.Second, "a millisecond after the last store time", func() bool {
				return time.Now().UnixMilli() > lastStored
			})
			cutoff := time.Now().UnixMilli()
			var refused atomic.Int32
			answerProduce(kc, func(r *kmsg.ProduceRequest) (int16, bool) {
				for _, tp := range r.Topics {
					for _, p := range tp.Partitions {
						var b kmsg.RecordBatch
						if err := b.ReadFrom(p.Records); err != nil {
							continue
						}
						if b.FirstTimestamp == first && refused.Add(1) <= refusals {
							return 6, true // NOT_LEADER_FOR_PARTITION: the first record does not arrive
						}
						if oldest, err := oldestTimestamp(&b); err != nil || oldest < cutoff {
							return 32, true // INVALID_TIMESTAMP: the others are restamped
						}
					}
				}
				return 0, false
			})
			m := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst,
				Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
				Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
			checkLastCopiesInOrder(t, 60*time.Second, st.Broker.Addr(), m, readKafka(t, kc.ListenAddrs(), ktopic), group, topic, ids)
		})
	}
}

// checkLastCopiesInOrder waits until Kafka holds every one of ids (sent
// to topic in that order), the mirror's group has caught up and r has
// read everything mirrored, then checks that the last copy of each
// message comes after the last copy of the one before.
func checkLastCopiesInOrder(t *testing.T, wait time.Duration, brokerAddr string, m *mirror.Mirror, r *kafkaReader, group, topic string, ids []string) {
	t.Helper()
	r.waitIDs(t, wait, ids)
	testutil.WaitFor(t, wait, "the mirror done and Kafka read to its end", func() bool {
		return m.Stats().Retrying == 0 && groupLag(t, brokerAddr, group, topic) == 0 &&
			int64(r.count()) == m.Stats().Mirrored
	})
	last := map[string]int{} // msg id -> position of its last copy
	for i, rec := range r.records() {
		last[header(rec, mirror.HeaderMsgID)] = i
	}
	for i := 1; i < len(ids); i++ {
		if last[ids[i-1]] > last[ids[i]] {
			t.Fatalf("message %d's last copy (record %d) comes after message %d's (record %d); stats %+v",
				i-1, last[ids[i-1]], i, last[ids[i]], m.Stats())
		}
	}
	t.Logf("%d records for %d messages; stats %+v", r.count(), len(ids), m.Stats())
}
