package mirror_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// The compression types of RocketMQ's Java client (5.x), in sysFlag bits
// 8 to 10 next to COMPRESSED_FLAG (MessageSysFlag.COMPRESSION_*_TYPE); 0
// is the older clients' zlib.
const (
	compressedFlag  = 0x1
	compressionLZ4  = 0x1 << 8
	compressionZstd = 0x2 << 8
	compressionZlib = 0x3 << 8
)

// TestMirrorInflatesEveryJavaCompressionType sends, over the wire as the
// Java client does for a body over 4 KiB, bodies compressed with each of
// its compression types (rocketmq.message.compressType: ZLIB, the
// default, LZ4 or ZSTD; and the older clients' plain zlib), and checks
// that Kafka gets every body inflated.
func TestMirrorInflatesEveryJavaCompressionType(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic := uniq("zipped"), uniq("zipped.kafka")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, ktopic))
	startMirror(t, mirror.Options{Client: c, Group: uniq("mirror"), StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}}, Kafka: mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), ktopic)

	compress := map[string]func([]byte) []byte{
		"zlib": func(b []byte) []byte {
			var buf bytes.Buffer
			w := zlib.NewWriter(&buf)
			w.Write(b)
			w.Close()
			return buf.Bytes()
		},
		"lz4": func(b []byte) []byte {
			var buf bytes.Buffer
			w := lz4.NewWriter(&buf)
			if _, err := w.Write(b); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		},
		"zstd": func(b []byte) []byte {
			enc, err := zstd.NewWriter(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			return enc.EncodeAll(b, nil)
		},
	}
	cases := []struct {
		name    string
		sysFlag int
		codec   string
	}{
		{"zlib, older clients", compressedFlag, "zlib"},
		{"ZLIB", compressedFlag | compressionZlib, "zlib"},
		{"LZ4", compressedFlag | compressionLZ4, "lz4"},
		{"ZSTD", compressedFlag | compressionZstd, "zstd"},
	}
	conn := remotetest.Dial(t, st.Broker.Addr())
	want := map[string]string{} // body by queue offset
	for _, tc := range cases {
		body := bytes.Repeat([]byte("order-42 paid by "+tc.name+"; "), 400)
		ext := map[string]string{
			"producerGroup": "pg", "topic": topic, "queueId": "0", "sysFlag": strconv.Itoa(tc.sysFlag),
			"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0", "reconsumeTimes": "0",
			"unitMode": "false", "maxReconsumeTimes": "0", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"batch": "false", "properties": "",
		}
		resp := remotetest.Call(t, conn, remoting.ReqSendMessage, ext, compress[tc.codec](body))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("send %s: code %d %q", tc.name, resp.Code, resp.Remark)
		}
		want[resp.Ext("queueOffset")] = string(body)
	}
	testutil.WaitFor(t, 30*time.Second, "every message in Kafka", func() bool { return r.count() >= len(cases) })
	for _, rec := range r.records() {
		id := header(rec, mirror.HeaderQueueOffset)
		body, ok := want[id]
		if !ok {
			t.Errorf("record of unknown message %q", id)
			continue
		}
		if string(rec.Value) != body {
			t.Errorf("message %s: Kafka got %d bytes %q..., want the inflated %d bytes %q...",
				id, len(rec.Value), rec.Value[:min(16, len(rec.Value))], len(body), body[:24])
		}
	}
}

// TestMirrorNeverCopiesScheduledMessages maps the broker's delay topic
// (listed by `halfback topic list` with the others): a message delayed
// by an hour must not reach Kafka before it is due, so the mapping must
// be refused as the half and retry topics are.
func TestMirrorNeverCopiesScheduledMessages(t *testing.T) {
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{Levels: "300ms 1h"})
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	topic, ktopic := uniq("later"), uniq("later.kafka")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, ktopic))
	o := mirror.Options{Client: c, Group: uniq("mirror"), StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: "SCHEDULE_TOPIC_XXXX", Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}, Logger: txnbridgetest.Logger(t)}
	m, err := mirror.New(o)
	if errors.Is(err, mirror.ErrInvalidOptions) {
		return // refused: what the test wants
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		return // refused at start: fine too
	}
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	p := newProducer(t, c, client.ProducerOptions{})
	send(t, ctx, p, &client.Message{Topic: topic, Body: []byte("due in an hour"), DelayLevel: 2})
	testutil.WaitFor(t, 10*time.Second, "the mirror to read its queues", func() bool {
		return groupLag(t, st.Broker.Addr(), o.Group, "SCHEDULE_TOPIC_XXXX") == 0 && m.Stats().Retrying == 0
	})
	testutil.WaitFor(t, 5*time.Second, "the reader to catch up", func() bool { return int64(r.count()) >= m.Stats().Mirrored })
	for _, rec := range r.records() {
		t.Errorf("Kafka got %q (rocketmq.topic %s) an hour before it is due", rec.Value, header(rec, mirror.HeaderTopic))
	}
}
