package compat

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	rmqadmin "github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// startProducer starts an official producer with opts added to the usual.
func startProducer(t *testing.T, c *cluster, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	p, err := rocketmq.NewProducer(append([]producer.Option{producer.WithNsResolver(c.resolver()),
		producer.WithGroupName(uniq("pg")), producer.WithInstanceName(uniq("pi")),
		producer.WithSendMsgTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// collect is a push consumer callback that adds to r and succeeds.
func collect(r *received) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		r.add(ms...)
		return consumer.ConsumeSuccess, nil
	}
}

// TestOfficialTraceIsStored: with WithTrace on the producer and the
// consumer, sends succeed and the client's trace records (Pub for each
// send, SubBefore/SubAfter for each consumption, keyed by message id and
// keys) are stored in RMQ_SYS_TRACE_TOPIC, where a trace viewer reads them.
func TestOfficialTraceIsStored(t *testing.T) {
	c := startCluster(t)
	trace := func() *primitive.TraceConfig {
		return &primitive.TraceConfig{GroupName: uniq("tg"), Access: primitive.Local, Resolver: c.resolver()}
	}
	p := startProducer(t, c, producer.WithTrace(trace()))
	topic := uniq("traced")
	for i := range 3 {
		m := primitive.NewMessage(topic, []byte("t"+strconv.Itoa(i)))
		m.WithKeys([]string{"tk" + strconv.Itoa(i)})
		if r, err := p.SendSync(context.Background(), m); err != nil || r.Status != primitive.SendOK {
			t.Fatalf("traced send: %v, %v", r, err)
		}
	}
	r := newReceived()
	pc := newPushConsumer(t, c, uniq("tcg"), topic, consumer.Clustering, false, collect(r), consumer.WithTrace(trace()))
	defer pc.Shutdown()
	waitFor(t, 30*time.Second, "the traced messages consumed", func() bool { return r.distinct() == 3 })
	const traceTopic = "RMQ_SYS_TRACE_TOPIC"
	waitFor(t, 30*time.Second, "Pub and SubAfter records of every key", func() bool {
		var all strings.Builder
		for q := range int32(8) {
			if _, hi := c.b.Store().QueueBounds(traceTopic, q); hi == 0 {
				continue
			}
			for _, m := range queueMsgs(t, c, traceTopic, q) {
				all.Write(m.Body)
			}
		}
		for i := range 3 {
			key := "\x01tk" + strconv.Itoa(i) + "\x01"
			pub, sub := false, false
			for _, rec := range strings.Split(all.String(), "\x02") {
				pub = pub || strings.HasPrefix(rec, "Pub\x01") && strings.Contains(rec, topic) && strings.Contains(rec, key)
				sub = sub || strings.HasPrefix(rec, "SubAfter\x01") && strings.Contains(rec, key)
			}
			if !pub || !sub {
				return false
			}
		}
		return true
	})
}

// TestOfficialNamespaceAndCredentials: WithNamespace prefixes topics and
// groups ("ns%topic", "ns%group"), names the broker takes; WithCredentials
// adds AccessKey and Signature to every request, which the broker (it has
// no ACL) ignores.
func TestOfficialNamespaceAndCredentials(t *testing.T) {
	c := startCluster(t)
	creds := primitive.Credentials{AccessKey: "ak", SecretKey: "sk"}
	const ns = "nsx"
	p := startProducer(t, c, producer.WithNamespace(ns), producer.WithCredentials(creds))
	topic, group := uniq("nst"), uniq("nsg")
	sendBodies(t, p, topic, "n", 4)
	r := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false, collect(r),
		consumer.WithNamespace(ns), consumer.WithCredentials(creds))
	defer pc.Shutdown()
	waitFor(t, 30*time.Second, "the namespaced messages", func() bool { return r.distinct() == 4 })
	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.GetTopic(context.Background(), ns+"%"+topic); err != nil {
		t.Fatal(err)
	}
	gc, err := ac.GroupConnections(context.Background(), ns+"%"+group)
	if err != nil || gc.Subscriptions[ns+"%"+topic] == "" {
		t.Fatalf("group %s%%%s: %+v, %v", ns, group, gc, err)
	}
}

// TestOfficialRequestAsync: RequestAsync's callback gets the reply (see
// TestRequestReply for why requester and responder share an instance).
func TestOfficialRequestAsync(t *testing.T) {
	c := startCluster(t)
	instance := uniq("rai")
	requester := startProducer(t, c, producer.WithInstanceName(instance))
	responder := newProducer(t, c)
	topic := uniq("rasync")
	pc := newPushConsumer(t, c, uniq("rag"), topic, consumer.Clustering, false,
		func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range ms {
				reply, err := consumer.CreateReplyMessage(m, nil)
				if err != nil {
					return consumer.ConsumeRetryLater, err
				}
				reply.Body = append([]byte("re: "), m.Body...)
				if _, err := responder.SendSync(ctx, reply); err != nil {
					return consumer.ConsumeRetryLater, err
				}
			}
			return consumer.ConsumeSuccess, nil
		}, consumer.WithInstance(instance))
	defer pc.Shutdown()
	done := make(chan string, 1)
	if err := requester.RequestAsync(context.Background(), 20*time.Second, func(_ context.Context, m *primitive.Message, err error) {
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		done <- string(m.Body)
	}, primitive.NewMessage(topic, []byte("q"))); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != "re: q" {
			t.Fatalf("RequestAsync: %s", got)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("RequestAsync: no callback")
	}
	// As in TestRequestReply: nothing of the requester left pending.
	if _, err := requester.SendSync(context.Background(), primitive.NewMessage(uniq("radrain"), []byte("drain"))); err != nil {
		t.Fatal(err)
	}
}

// TestOfficialLitePullPollAndAck: the pull consumer's Poll gets the
// messages of the queues its rebalance took, ACK commits them, and
// Shutdown leaves the group's offsets on the broker.
func TestOfficialLitePullPollAndAck(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("poll"), uniq("pollg")
	sendBodies(t, p, topic, "p", 8)
	pc, err := rocketmq.NewPullConsumer(consumer.WithNsResolver(c.resolver()), consumer.WithGroupName(group),
		consumer.WithInstance(uniq("ci")), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, consumer.MessageSelector{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	r := newReceived()
	waitFor(t, 30*time.Second, "every message polled", func() bool {
		cr, err := pc.Poll(context.Background(), time.Second)
		if err == nil {
			r.add(cr.GetMsgList()...)
			pc.ACK(context.Background(), cr, consumer.ConsumeSuccess)
		}
		return r.distinct() == 8
	})
	if err := pc.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	// The client commits with oneway requests as it shuts down.
	waitFor(t, 10*time.Second, "the group's offsets at the end of every queue", func() bool {
		var sum int64
		for q := range int32(4) {
			off, _, err := ac.QueryOffset(context.Background(), group, topic, q)
			if err != nil {
				t.Fatal(err)
			}
			sum += off
		}
		return sum == 8
	})
}

// TestOfficialConsumeFromTimestamp: a new group with ConsumeFromTimestamp
// starts each queue at the first message stored at or after the time
// (SEARCH_OFFSET_BY_TIMESTAMP) once the broker no longer answers 0 for a
// queue's start (see TestNewGoClientGroupSkipsAnOldQueueFromLast).
func TestOfficialConsumeFromTimestamp(t *testing.T) {
	c := startCluster(t)
	c.b.Close()
	c.opts.AccessMessageInMemoryMaxRatio = 1e-15
	c.startBroker()
	p := newProducer(t, c)
	topic := uniq("ts")
	sendBodies(t, p, topic, "old", 8)
	// The client reads the time to the second, in UTC.
	cut := time.Now().Truncate(time.Second).Add(time.Second)
	waitFor(t, 5*time.Second, "the next second", func() bool { return time.Now().After(cut) })
	sendBodies(t, p, topic, "new", 8)
	r := newReceived()
	pc := newPushConsumer(t, c, uniq("tsg"), topic, consumer.Clustering, false, collect(r),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromTimestamp), consumer.WithConsumeTimestamp(cut.UTC().Format("20060102150405")))
	defer pc.Shutdown()
	waitFor(t, 30*time.Second, "the new messages", func() bool { return r.distinct() >= 8 })
	for i := range 8 {
		if b := "old" + strconv.Itoa(i); r.has(b) {
			t.Fatalf("%s, sent before the timestamp, was consumed", b)
		}
	}
}

// TestOfficialTwoBrokers: a topic on two brokers of one name server takes
// sends on both (the client's round robin over the route's queues) and a
// consumer group gets every message from both.
func TestOfficialTwoBrokers(t *testing.T) {
	c := startCluster(t)
	o := c.opts
	o.Store = store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 64 << 20}
	o.ListenAddr = testutil.FreeAddr(t)
	o.BrokerName = uniq("broker2")
	b2, err := broker.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ctx := context.Background()
	topic := uniq("two")
	for _, addr := range []string{c.b.Addr(), b2.Addr()} {
		if err := ra.CreateTopic(ctx, rmqadmin.WithTopicCreate(topic), rmqadmin.WithBrokerAddrCreate(addr),
			rmqadmin.WithReadQueueNums(2), rmqadmin.WithWriteQueueNums(2)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "both brokers in the topic's route", func() bool {
		mqs, err := ra.FetchPublishMessageQueues(ctx, topic)
		return err == nil && len(mqs) == 4
	})
	p := newProducer(t, c)
	brokers := map[string]int{}
	for i := range 8 {
		res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i))))
		if err != nil {
			t.Fatal(err)
		}
		brokers[res.MessageQueue.BrokerName]++
	}
	if brokers[c.opts.BrokerName] != 4 || brokers[o.BrokerName] != 4 {
		t.Fatalf("sends per broker: %v, want 4 each", brokers)
	}
	_, r := startCollector(t, c, uniq("twog"), topic)
	waitFor(t, 30*time.Second, "every message from both brokers", func() bool { return r.distinct() == 8 })
}

// TestOfficialManualQueueSelector: NewManualQueueSelector sends to the
// queue the message names.
func TestOfficialManualQueueSelector(t *testing.T) {
	c := startCluster(t)
	p := startProducer(t, c, producer.WithQueueSelector(producer.NewManualQueueSelector()))
	topic := uniq("manual")
	mqs := publishQueues(t, c, topic)
	for i := range 4 {
		m := primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i)))
		m.Queue = mqs[2]
		res, err := p.SendSync(context.Background(), m)
		if err != nil || res.MessageQueue.QueueId != mqs[2].QueueId {
			t.Fatalf("send to queue %d: %v, %v", mqs[2].QueueId, res, err)
		}
	}
	waitFor(t, 10*time.Second, "4 messages in the chosen queue", func() bool {
		_, hi := c.b.Store().QueueBounds(topic, int32(mqs[2].QueueId))
		return hi == 4
	})
}

// TestOfficialCompressedBody: a body over the client's 4 KiB threshold is
// sent compressed (sysFlag bit 0); it reaches a consumer intact directly
// and through a delay level, and its send-back for retry keeps the flag
// with the compressed bytes (the consumer decompresses by the flag).
func TestOfficialCompressedBody(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("zip"), uniq("zipg")
	big := strings.Repeat("compressible ", 1000)
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("plain:"+big))); err != nil {
		t.Fatal(err)
	}
	d := primitive.NewMessage(topic, []byte("delayed:"+big))
	d.WithDelayTimeLevel(1)
	if _, err := p.SendSync(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	r := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			r.add(ms...)
			return consumer.ConsumeRetryLater, nil
		})
	defer pc.Shutdown()
	waitFor(t, 30*time.Second, "both bodies intact", func() bool { return r.has("plain:"+big) && r.has("delayed:"+big) })
	if n := r.distinct(); n != 2 {
		t.Fatalf("%d distinct bodies, want the 2 sent", n)
	}
	retry := "%RETRY%" + group
	waitFor(t, 30*time.Second, "both sent back to "+retry, func() bool {
		_, hi := c.b.Store().QueueBounds(retry, 0)
		return hi >= 2
	})
	var orig []message.Ext
	for q := range int32(4) {
		orig = append(orig, queueMsgs(t, c, topic, q)...)
	}
	for _, m := range queueMsgs(t, c, retry, 0) {
		found := false
		for _, o := range orig {
			if o.Property("UNIQ_KEY") == m.Property("UNIQ_KEY") {
				found = true
				if m.SysFlag&1 == 0 || string(m.Body) != string(o.Body) {
					t.Errorf("retry of %s: sysFlag %d, body %d bytes (stored %d, sysFlag %d)", m.Property("UNIQ_KEY"), m.SysFlag, len(m.Body), len(o.Body), o.SysFlag)
				}
			}
		}
		if !found {
			t.Errorf("retry record %s matches no stored message", m.Property("UNIQ_KEY"))
		}
	}
}
