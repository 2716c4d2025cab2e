package compat

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/halfbackmq/halfback/internal/admin"
)

func newProducer(t *testing.T, c *cluster) rocketmq.Producer {
	t.Helper()
	return startProducer(t, c, producer.WithRetry(2))
}

func newPushConsumer(t *testing.T, c *cluster, group, topic string, model consumer.MessageModel, orderly bool,
	fn func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error), extra ...consumer.Option) rocketmq.PushConsumer {
	t.Helper()
	opts := append([]consumer.Option{consumer.WithNsResolver(c.resolver()), consumer.WithGroupName(group),
		consumer.WithInstance(uniq("ci")), consumer.WithConsumerModel(model), consumer.WithConsumerOrder(orderly),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset)}, extra...)
	pc, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, consumer.MessageSelector{}, fn); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	return pc
}

func TestSendModes(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("send")
	ctx := context.Background()

	msg := primitive.NewMessage(topic, []byte("sync"))
	msg.WithTag("TagA")
	msg.WithKeys([]string{"order-1"})
	msg.WithProperty("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	res, err := p.SendSync(ctx, msg)
	if err != nil || res.Status != primitive.SendOK || res.OffsetMsgID == "" {
		t.Fatalf("SendSync = %+v, %v", res, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var asyncErr error
	if err := p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, e error) {
		asyncErr = e
		if e == nil && r.Status != primitive.SendOK {
			asyncErr = fmt.Errorf("status %v", r.Status)
		}
		wg.Done()
	}, primitive.NewMessage(topic, []byte("async"))); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if asyncErr != nil {
		t.Fatalf("SendAsync: %v", asyncErr)
	}
	if err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte("oneway"))); err != nil {
		t.Fatal(err)
	}
	batch := []*primitive.Message{primitive.NewMessage(topic, []byte("b1")), primitive.NewMessage(topic, []byte("b2")), primitive.NewMessage(topic, []byte("b3"))}
	if res, err := p.SendSync(ctx, batch...); err != nil || res.Status != primitive.SendOK {
		t.Fatalf("batch SendSync = %+v, %v", res, err)
	}

	got := newReceived()
	pc := newPushConsumer(t, c, uniq("cg"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()
	waitFor(t, 30*time.Second, "all 6 messages", func() bool { return got.distinct() == 6 })
	got.mu.Lock()
	defer got.mu.Unlock()
	syncs := 0
	for _, e := range got.exts {
		if string(e.Body) == "sync" {
			syncs++
			if e.GetTags() != "TagA" || e.GetKeys() != "order-1" || e.GetProperty("traceparent") != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
				t.Fatalf("properties not kept: %v", e)
			}
			if e.MsgId != res.MsgID || e.OffsetMsgId != res.OffsetMsgID {
				t.Fatalf("ids: consumed %s/%s, sent %s/%s", e.MsgId, e.OffsetMsgId, res.MsgID, res.OffsetMsgID)
			}
		}
	}
	if syncs == 0 {
		t.Fatal("the sync message was not among those consumed")
	}
}

func TestClusteringSharesQueuesAndTakesOver(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("cl"), uniq("cg")
	send := func(i int) {
		t.Helper()
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	handler := func(r *received) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		return func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			r.add(ms...)
			return consumer.ConsumeSuccess, nil
		}
	}
	got1, got2 := newReceived(), newReceived()
	c1 := newPushConsumer(t, c, group, topic, consumer.Clustering, false, handler(got1))
	c2 := newPushConsumer(t, c, group, topic, consumer.Clustering, false, handler(got2))
	// Until both members have queues (the rebalance after the second one
	// joins), one of them gets everything: keep sending until both have
	// had a message.
	n := 0
	waitFor(t, 60*time.Second, "both members to get messages", func() bool {
		send(n)
		n++
		return got1.distinct() > 0 && got2.distinct() > 0
	})
	waitFor(t, 30*time.Second, "every message once", func() bool { return got1.distinct()+got2.distinct() >= n })
	for i := 0; i < n; i++ {
		if b := "m" + strconv.Itoa(i); got1.has(b) == got2.has(b) {
			t.Fatalf("%s consumed by both members or neither (member 1: %v)", b, got1.has(b))
		}
	}
	c1.Shutdown()
	for i := n; i < n+20; i++ {
		send(i)
	}
	waitFor(t, 60*time.Second, "the remaining member to take over every queue", func() bool {
		for i := n; i < n+20; i++ {
			if !got2.has("m" + strconv.Itoa(i)) {
				return false
			}
		}
		return true
	})
	c2.Shutdown()
}

func TestBroadcasting(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("bc"), uniq("bg")
	a, b := newReceived(), newReceived()
	ca := newPushConsumer(t, c, group, topic, consumer.BroadCasting, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			a.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer ca.Shutdown()
	cb := newPushConsumer(t, c, group, topic, consumer.BroadCasting, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			b.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer cb.Shutdown()
	for i := 0; i < 10; i++ {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every consumer to get every message", func() bool { return a.distinct() == 10 && b.distinct() == 10 })
	// What the admin tools show of the group while both members are
	// online: two members consuming by broadcast, and no lag, since the
	// broker holds no offsets of a broadcasting group (its members keep
	// them) and so cannot know one.
	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	conns, err := ac.GroupConnections(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns.Clients) != 2 || conns.MessageModel != "BROADCASTING" || conns.Subscriptions[topic] == "" {
		t.Errorf("group connections %+v, want the 2 members, BROADCASTING, subscribed to %s", conns, topic)
	}
	queues, err := ac.GroupOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	for _, q := range queues {
		lag += q.Lag
	}
	if lag != 0 {
		t.Errorf("group offsets show a lag of %d for a broadcasting group whose members consumed everything: %+v", lag, queues)
	}
}

func TestDelayedSendArrivesNoEarlier(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("dl")
	var sentAt time.Time
	var arrived time.Time
	var mu sync.Mutex
	pc := newPushConsumer(t, c, uniq("dg"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			if arrived.IsZero() {
				arrived = time.Now()
			}
			mu.Unlock()
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()
	m := primitive.NewMessage(topic, []byte("later"))
	m.WithDelayTimeLevel(3) // 600 ms in this cluster
	sentAt = time.Now()
	if _, err := p.SendSync(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the delayed message", func() bool { mu.Lock(); defer mu.Unlock(); return !arrived.IsZero() })
	if d := arrived.Sub(sentAt); d < 600*time.Millisecond {
		t.Fatalf("delayed message arrived after %v, before its 600 ms level", d)
	}
}

func TestFailingMessageLandsInDLQ(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("rt"), uniq("rg")
	var attempts sync.Map
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range ms {
				n, _ := attempts.LoadOrStore(string(m.Body), new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
			}
			return consumer.ConsumeRetryLater, nil
		}, consumer.WithMaxReconsumeTimes(2))
	defer pc.Shutdown()
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("poison"))); err != nil {
		t.Fatal(err)
	}
	dlq := "%DLQ%" + group
	// The retries come through %RETRY%<group>, which the client finds 20 s
	// or 40 s after its start (see TestRetriedMessageAsTheGoClientSeesIt).
	waitFor(t, 90*time.Second, "the message in "+dlq, func() bool {
		_, hi := c.b.Store().QueueBounds(dlq, 0)
		return hi == 1
	})
	n, _ := attempts.Load("poison")
	if n == nil || n.(*atomic.Int32).Load() != 3 {
		t.Fatalf("consumed %v times before the DLQ, want 3 (1 + 2 retries)", n)
	}
}
