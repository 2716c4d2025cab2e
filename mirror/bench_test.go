package mirror_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// The mirror against its peer, in one run: BenchmarkMirror copies b.N
// messages (1 KiB, one key each, four queues) that are already in the
// broker to Kafka, and BenchmarkSaramaDirect produces the same records
// straight to the same in-process Kafka with the same producer settings
// (idempotent, acks=all, batches of 32 from four goroutines, one per
// queue, about the same headers). Their ratio is what the mirror costs on top of producing:
// pulling, the publish spans and the durable offset commit per batch.
//
//	go test -run '^$' -bench 'Mirror|SaramaDirect' -benchtime 20000x -count 3 ./mirror/

const (
	benchQueues = 4
	benchBatch  = 32
	benchBody   = 1024
)

// benchKafka starts a Kafka that creates topics with benchQueues
// partitions on first use, and returns its address.
func benchKafka(b *testing.B) string {
	b.Helper()
	return startKafka(b, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(benchQueues)).ListenAddrs()[0]
}

func BenchmarkMirror(b *testing.B) {
	stack, c := startStack(b)
	kafka := benchKafka(b)
	ctx := context.Background()
	topic := uniq("bench")
	createTopic(b, stack.Broker.Addr(), topic)
	p := newProducer(b, c, client.ProducerOptions{})
	body := make([]byte, benchBody)
	for sent := 0; sent < b.N; {
		batch := make([]*client.Message, 0, benchBatch)
		for ; len(batch) < benchBatch && sent < b.N; sent++ {
			batch = append(batch, &client.Message{Topic: topic, Body: body, Keys: []string{"order-" + strconv.Itoa(sent)}})
		}
		if _, err := p.SendBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	m, err := mirror.New(mirror.Options{Client: c, Group: uniq("bench-mirror"), StartFrom: mirror.StartFirst, BatchSize: benchBatch,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: []string{kafka}}, Logger: txnbridgetest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()

	b.SetBytes(benchBody)
	b.ResetTimer()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for m.Stats().Mirrored < int64(b.N) {
		<-tick.C
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// benchHeaders are about the headers the mirror adds to such a message.
var benchHeaders = func() []sarama.RecordHeader {
	var hs []sarama.RecordHeader
	for _, kv := range [][2]string{{mirror.HeaderTopic, "bench-1"}, {mirror.HeaderMsgID, "7F0000010001B4AAC2B21F4E5A000000"},
		{mirror.HeaderOffsetMsgID, "7F00000100002A9F0000000000001000"}, {mirror.HeaderQueueID, "1"},
		{mirror.HeaderQueueOffset, "1234"}, {mirror.HeaderBornTimestamp, "1795000000000"}, {"KEYS", "order-1234"},
		{"UNIQ_KEY", "7F0000010001B4AAC2B21F4E5A000000"}, {"WAIT", "true"}} {
		hs = append(hs, sarama.RecordHeader{Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	return hs
}()

func BenchmarkSaramaDirect(b *testing.B) {
	kafka := benchKafka(b)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewReferenceHashPartitioner
	cfg.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer([]string{kafka}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	topic := uniq("bench")
	body := make([]byte, benchBody)

	b.SetBytes(benchBody)
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchQueues {
		wg.Go(func() {
			for {
				first := next.Add(benchBatch) - benchBatch
				if first >= int64(b.N) {
					return
				}
				var batch []*sarama.ProducerMessage
				for i := first; i < min(first+benchBatch, int64(b.N)); i++ {
					batch = append(batch, &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(body),
						Key: sarama.StringEncoder("order-" + strconv.FormatInt(i, 10)), Timestamp: time.Now(), Headers: benchHeaders})
				}
				if err := prod.SendMessages(batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
