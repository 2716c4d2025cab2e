package mirror_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// TestClosedMirrorsLateBatchKeepsKeyOrder closes a mirror while Kafka
// holds its produce request. Close waits for Kafka's answer (at most
// Kafka.ProduceTimeout) before the queue goes to another mirror of the
// group, so the next owner's records of the key come after that batch
// and the last copy of each message is in the key's order. (Before,
// Close gave the batch up at once: Kafka stored it after the next
// owner's copies, "message 3's last copy (record 11) comes after message
// 4's (record 4)".)
func TestClosedMirrorsLateBatchKeepsKeyOrder(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("handover"), uniq("handover.kafka"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, ktopic))
	release := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	first := int64(-1) // the first mirror's producer id
	kc.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err != nil {
					continue
				}
				mu.Lock()
				if first < 0 {
					first = b.ProducerID
				}
				mine := b.ProducerID == first
				mu.Unlock()
				if mine {
					once.Do(func() { close(held) })
					kc.SleepControl(func() { <-release })
				}
			}
		}
		return nil, nil, false
	})
	p := newProducer(t, c, client.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 8
	ids := make([]string, n)
	for i := range n {
		ids[i] = send(t, ctx, p, &client.Message{Topic: topic, Body: []byte(fmt.Sprint(i)),
			Keys: []string{"order-1"}, ShardingKey: "order-1"})
	}
	opts := func(c *client.Client) mirror.Options {
		return mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst, BatchSize: 4,
			Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
			Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), ProduceTimeout: 30 * time.Second}}
	}
	// The first mirror logs when, stopping, it waits for Kafka's answer.
	waiting := make(chan struct{})
	ao := opts(c)
	var waitOnce sync.Once
	ao.Logger = slog.New(&countHandler{Handler: txnbridgetest.Logger(t).Handler(),
		msg: "mirror: stopping; waiting for Kafka's answer to a batch", f: func() { waitOnce.Do(func() { close(waiting) }) }})
	a := startMirror(t, ao)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the first mirror never produced")
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case <-waiting: // Close waits for the held batch: Kafka stores it now
	case err := <-closed:
		t.Fatalf("Close returned (%v) without waiting for the batch Kafka holds", err)
	case <-ctx.Done():
		t.Fatal("the stopping mirror did not wait for Kafka's answer")
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	startMirror(t, opts(txnbridgetest.NewClient(t, st.NamesrvAddr))) // the next owner
	r.waitIDs(t, 30*time.Second, ids)
	last := map[string]int{}
	for i, rec := range r.records() {
		last[header(rec, mirror.HeaderMsgID)] = i
	}
	for i := 1; i < n; i++ {
		if last[ids[i-1]] > last[ids[i]] {
			t.Fatalf("message %d's last copy (record %d) comes after message %d's (record %d) of %d records",
				i-1, last[ids[i-1]], i, last[ids[i]], r.count())
		}
	}
}

// TestStoppingMirrorWaitsForKafkaOnce closes a mirror while Kafka holds
// its batch, then refuses the batch as too large. Close is bounded by one
// Kafka.ProduceTimeout: the stopping mirror must give the batch up, not
// send its records again one at a time, each send waiting up to another
// ProduceTimeout (with a Kafka that holds them, Close took 1+n timeouts).
func TestStoppingMirrorWaitsForKafkaOnce(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("stopwait"), uniq("stopwait.kafka"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(1, ktopic))
	held := make(chan struct{})
	waiting := make(chan struct{})
	var once sync.Once
	answerProduce(kc, func(*kmsg.ProduceRequest) (int16, bool) {
		once.Do(func() { close(held) })
		kc.SleepControl(func() { <-waiting })
		return 10, true // MESSAGE_TOO_LARGE
	})
	p := newProducer(t, c, client.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 4
	for i := range n {
		send(t, ctx, p, &client.Message{Topic: topic, Body: []byte(fmt.Sprint(i)),
			Keys: []string{"order-1"}, ShardingKey: "order-1"})
	}
	var waits atomic.Int32
	var waitOnce sync.Once
	h := &countHandler{Handler: txnbridgetest.Logger(t).Handler(), msg: "mirror: stopping; waiting for Kafka's answer to a batch",
		f: func() { waits.Add(1); waitOnce.Do(func() { close(waiting) }) }}
	a := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst, BatchSize: n,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}}, Logger: slog.New(h),
		Kafka: mirror.KafkaOptions{Brokers: kc.ListenAddrs(), ProduceTimeout: time.Second}})
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the mirror never produced")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if w := waits.Load(); w != 1 {
		t.Fatalf("the stopping mirror waited for Kafka %d times (each up to Kafka.ProduceTimeout), want once", w)
	}
}

// countHandler calls f for each record with message msg, logged through
// it or a logger derived from it, and passes every record on.
type countHandler struct {
	slog.Handler
	msg string
	f   func()
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.f()
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(as)
	return &c
}

func (h *countHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}
