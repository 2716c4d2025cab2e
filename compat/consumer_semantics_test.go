package compat

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	"github.com/halfbackmq/halfback/message"
)

// queueMsgs decodes every message of topic/qid on the cluster's broker.
func queueMsgs(t *testing.T, c *cluster, topic string, qid int32) []message.Ext {
	t.Helper()
	r, err := c.b.Store().GetMessages(topic, qid, 0, store.GetOptions{MaxMessages: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := message.DecodeAll(r.Records)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestRetriedMessageAsTheGoClientSeesIt: a message the official client
// fails twice comes back through %RETRY%<group> with its own topic, id,
// keys and tag, a growing reconsume count and the retry properties
// (ORIGIN_MESSAGE_ID, RETRY_TOPIC, REAL_TOPIC, REAL_QID) RocketMQ sets.
func TestRetriedMessageAsTheGoClientSeesIt(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("rs"), uniq("rsg")
	var mu sync.Mutex
	var seen []*primitive.MessageExt
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ms...)
			if len(seen) < 3 {
				return consumer.ConsumeRetryLater, nil
			}
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()
	m := primitive.NewMessage(topic, []byte("r"))
	m.WithTag("TagR")
	m.WithKeys([]string{"k1"})
	res, err := p.SendSync(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	// The retries come through %RETRY%<group>, made by the client's first
	// heartbeat, just after its look-up of routes at its start: it finds
	// the topic at a later route poll or rebalance (every 30 s, every
	// 20 s), and the retries come 20 s or 40 s after the start.
	waitFor(t, 90*time.Second, "3 deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	for i, e := range seen[:3] {
		if e.Topic != topic || e.MsgId != res.MsgID || e.GetTags() != "TagR" || e.GetKeys() != "k1" || e.ReconsumeTimes != int32(i) {
			t.Errorf("delivery %d: topic %q msgId %q tags %q keys %q reconsumeTimes %d", i, e.Topic, e.MsgId, e.GetTags(), e.GetKeys(), e.ReconsumeTimes)
		}
		if i == 0 {
			continue
		}
		for name, want := range map[string]string{
			"ORIGIN_MESSAGE_ID": res.OffsetMsgID,
			"RETRY_TOPIC":       topic,
			"REAL_TOPIC":        "%RETRY%" + group,
			"REAL_QID":          "0",
		} {
			if got := e.GetProperty(name); got != want {
				t.Errorf("delivery %d: %s = %q, want %q", i, name, got, want)
			}
		}
	}
}

// TestOrderlyGoClientFailureSuspendsThenDeadLetters: the official orderly
// consumer retries a failing message on the spot (no send-back, the queue
// waits), and past maxReconsumeTimes sends it back with delay level -1:
// it lands in %DLQ%<group>, and the queue goes on to the next message.
func TestOrderlyGoClientFailureSuspendsThenDeadLetters(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ors"), uniq("orsg")
	var mu sync.Mutex
	var order []string
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, true,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				order = append(order, string(m.Body)+":"+strconv.Itoa(int(m.ReconsumeTimes)))
				if string(m.Body) == "poison" {
					return consumer.SuspendCurrentQueueAMoment, nil
				}
			}
			return consumer.ConsumeSuccess, nil
		}, consumer.WithMaxReconsumeTimes(2), consumer.WithSuspendCurrentQueueTimeMillis(100*time.Millisecond))
	defer pc.Shutdown()
	hp, err := rocketmq.NewProducer(producer.WithNsResolver(c.resolver()), producer.WithGroupName(uniq("opg")),
		producer.WithInstanceName(uniq("opi")), producer.WithQueueSelector(producer.NewHashQueueSelector()))
	if err != nil {
		t.Fatal(err)
	}
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	defer hp.Shutdown()
	for _, b := range []string{"poison", "after"} {
		m := primitive.NewMessage(topic, []byte(b))
		m.WithShardingKey("k")
		if _, err := hp.SendSync(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	dlq := "%DLQ%" + group
	waitFor(t, 60*time.Second, "poison in "+dlq, func() bool { _, hi := c.b.Store().QueueBounds(dlq, 0); return hi == 1 })
	waitFor(t, 30*time.Second, "the next message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) > 0 && order[len(order)-1] == "after:0"
	})
	mu.Lock()
	// The Go client gives up once reconsumeTimes passes the limit (2).
	if want := []string{"poison:0", "poison:1", "poison:2", "poison:3", "after:0"}; !slices.Equal(order, want) {
		t.Errorf("deliveries %v, want %v", order, want)
	}
	mu.Unlock()
	if _, hi := c.b.Store().QueueBounds("%RETRY%"+group, 0); hi != 0 {
		t.Fatalf("the orderly consumer's failure went through the retry topic (%d messages)", hi)
	}
	d := queueMsgs(t, c, dlq, 0)[0]
	if string(d.Body) != "poison" || d.Property("RETRY_TOPIC") != topic || d.Property("ORIGIN_MESSAGE_ID") == "" {
		t.Fatalf("DLQ message %q RETRY_TOPIC %q ORIGIN_MESSAGE_ID %q", d.Body, d.Property("RETRY_TOPIC"), d.Property("ORIGIN_MESSAGE_ID"))
	}
}

// TestBroadcastingGoClientCommitsNothing: a broadcasting member keeps its
// offsets itself; the broker holds none for its group.
func TestBroadcastingGoClientCommitsNothing(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("bcn"), uniq("bcng")
	got := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.BroadCasting, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	for i := 0; i < 10; i++ {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "all 10", func() bool { return got.distinct() == 10 })
	pc.Shutdown()
	if n := committed(t, c.b.Addr(), group, topic); n != 0 {
		t.Fatalf("the broker holds offsets summing to %d for a broadcasting group", n)
	}
}

// TestLongGroupFailedMessageIsNotLost: a group name the client accepts
// (up to 255 characters) but too long for %RETRY%<group> (a topic has at
// most 127) has no retry topic. A message its handler fails must still be
// consumed again: the official client takes any answer to a send-back as
// "stored" and acknowledges the message, so an error answer loses it.
func TestLongGroupFailedMessageIsNotLost(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("lg")
	group := uniq("lgg") + "-" + strings.Repeat("g", 180)
	var mu sync.Mutex
	calls := 0
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return consumer.ConsumeRetryLater, nil
			}
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first delivery", func() bool { mu.Lock(); defer mu.Unlock(); return calls >= 1 })
	// The client consumes a message it could not send back again after 5 s.
	waitFor(t, 30*time.Second, "the failed message consumed again", func() bool { mu.Lock(); defer mu.Unlock(); return calls >= 2 })
}

// TestDLQCanBeConsumed: %DLQ%<group> (one read-write queue, as current
// RocketMQ) is routed and readable: an operator's consumer re-drives it.
func TestDLQCanBeConsumed(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("dq"), uniq("dqg")
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			return consumer.ConsumeRetryLater, nil
		}, consumer.WithMaxReconsumeTimes(0))
	defer pc.Shutdown()
	res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("dead")))
	if err != nil {
		t.Fatal(err)
	}
	dlq := "%DLQ%" + group
	waitFor(t, 30*time.Second, "the message in "+dlq, func() bool { _, hi := c.b.Store().QueueBounds(dlq, 0); return hi == 1 })
	got := newReceived()
	rd := newPushConsumer(t, c, uniq("redrive"), dlq, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer rd.Shutdown()
	waitFor(t, 30*time.Second, "the dead letter re-driven", func() bool { return got.has("dead") })
	got.mu.Lock()
	defer got.mu.Unlock()
	if e := got.exts[0]; e.MsgId != res.MsgID || e.GetProperty("RETRY_TOPIC") != topic || e.GetProperty("ORIGIN_MESSAGE_ID") != res.OffsetMsgID {
		t.Fatalf("dead letter id %s RETRY_TOPIC %q ORIGIN_MESSAGE_ID %q", e.MsgId, e.GetProperty("RETRY_TOPIC"), e.GetProperty("ORIGIN_MESSAGE_ID"))
	}
}

// TestResetOffsetsThenTheGoClientReplays: a group's offsets reset to the
// start while it is offline (`halfback group reset --to earliest`) make
// the official client's next consumer of the group consume every message
// again: it starts from the committed offset, the reset one.
func TestResetOffsetsThenTheGoClientReplays(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("reset"), uniq("resetg")
	const n = 6
	sendBodies(t, p, topic, "m", n)
	pc, first := startCollector(t, c, group, topic)
	waitFor(t, 60*time.Second, "every message consumed", func() bool { return first.distinct() == n })
	// Committed while the client is online (it persists 10 s after its
	// start, then every 5 s). Its last commit, as it shuts down, is
	// written just before it closes the connection, and the broker's
	// answers (the Go client's "oneway" carries no oneway flag) then meet
	// a closed socket: the reset drops what the broker had not read yet,
	// on any broker (TestOffsetsSurviveBrokerRestart), and nothing commits
	// again.
	waitFor(t, 30*time.Second, "the group's offsets committed", func() bool { return committed(t, c.b.Addr(), group, topic) == n })
	if err := pc.Shutdown(); err != nil {
		t.Fatal(err)
	}
	resetToStart(t, c, group, topic)
	pc2, again := startCollector(t, c, group, topic)
	defer pc2.Shutdown()
	waitFor(t, 60*time.Second, "every message consumed again", func() bool { return again.distinct() == n })
}

// A broker that resets offsets through its clients, as RocketMQ 4 does
// (halfback's broker.useServerSideResetOffset false), sends the online
// official Go consumer RESET_CONSUMER_CLIENT_OFFSET: the client reads
// halfback's ResetOffsetBody, moves its queues and replays them.
func TestClientSideResetMovesTheGoClient(t *testing.T) {
	c := startClusterWith(t, func(o *broker.Options) { o.ClientSideResetOffset = true })
	p := newProducer(t, c)
	topic, group := uniq("creset"), uniq("cresetg")
	const n = 6
	sendBodies(t, p, topic, "m", n)
	pc, got := startCollector(t, c, group, topic)
	defer pc.Shutdown()
	waitFor(t, 60*time.Second, "every message consumed", func() bool { return got.distinct() == n })
	waitFor(t, 30*time.Second, "the group's offsets committed", func() bool { return committed(t, c.b.Addr(), group, topic) == n })
	resetToStart(t, c, group, topic)
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = "m" + strconv.Itoa(i)
	}
	waitFor(t, 60*time.Second, "every message consumed again", func() bool { return got.atLeast(2, bodies...) })
}

// resetToStart resets group's offsets on topic to the topic's start
// (`halfback group reset --to earliest`).
func resetToStart(t *testing.T, c *cluster, group, topic string) {
	t.Helper()
	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.ResetOffsets(context.Background(), group, topic, admin.ResetToTime(0)); err != nil {
		t.Fatal(err)
	}
}

// A group paused on the broker (`halfback group update --consume=false`)
// has its pulls refused; the official Go consumer keeps pulling and goes
// on where it stopped once the group is resumed. The official admin API
// reads the group's settings.
func TestPausedGroupThenTheGoClientResumes(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("paused"), uniq("pausedg")
	sendBodies(t, p, topic, "a", 3)
	pc, got := startCollector(t, c, group, topic)
	defer pc.Shutdown()
	waitFor(t, 60*time.Second, "the first messages consumed", func() bool { return got.distinct() == 3 })

	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.UpdateGroupConfig(context.Background(), group, map[string]any{"consumeEnable": false}); err != nil {
		t.Fatal(err)
	}
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	w, err := ra.GetAllSubscriptionGroup(context.Background(), c.b.Addr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := w.SubscriptionGroupTable[group]; !ok || g.ConsumeEnable || !g.ConsumeBroadcastEnable || g.RetryMaxTimes != 16 || g.GroupName != group {
		t.Fatalf("official admin's view of %s: %+v (found %v), want consumption off", group, g, ok)
	}

	sendBodies(t, p, topic, "b", 3)
	if n := got.distinct(); n != 3 {
		t.Fatalf("a paused group consumed %d messages, want the first 3", n)
	}
	if _, err := ac.UpdateGroupConfig(context.Background(), group, map[string]any{"consumeEnable": true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the rest consumed after resuming", func() bool { return got.distinct() == 6 })
}

// The official Go admin API creates a topic on the broker, finds it in the
// name server's topic list and route, and deletes it from both.
func TestOfficialAdminTopicLifecycle(t *testing.T) {
	c := startCluster(t)
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ctx := context.Background()
	topic := uniq("admin")
	if err := ra.CreateTopic(ctx, rmqadmin.WithTopicCreate(topic), rmqadmin.WithBrokerAddrCreate(c.b.Addr()),
		rmqadmin.WithReadQueueNums(3), rmqadmin.WithWriteQueueNums(3)); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		l, err := ra.FetchAllTopicList(ctx)
		return err == nil && slices.Contains(l.TopicList, topic)
	}
	waitFor(t, 30*time.Second, "the topic in the name server's list", listed)
	mqs, err := ra.FetchPublishMessageQueues(ctx, topic)
	if err != nil || len(mqs) != 3 {
		t.Fatalf("FetchPublishMessageQueues: %d queues, %v; want 3", len(mqs), err)
	}
	if err := ra.DeleteTopic(ctx, rmqadmin.WithTopicDelete(topic), rmqadmin.WithBrokerAddrDelete(c.b.Addr()),
		rmqadmin.WithNameSrvAddr([]string{c.nsAddr})); err != nil {
		t.Fatal(err)
	}
	// A registration the broker built just before the deletion may land
	// after it; the next one drops the topic again.
	waitFor(t, 30*time.Second, "the deleted topic gone from the name server's list", func() bool { return !listed() })
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if tc, err := ac.GetTopic(ctx, topic); err == nil {
		t.Errorf("the deleted topic is still on the broker: %+v", tc)
	}
}

// TestNewGoClientGroupSkipsAnOldQueueFromLast: a new group of the official
// client with CONSUME_FROM_LAST_OFFSET starts at the end of a queue whose
// first message the broker no longer counts as in memory
// (AccessMessageInMemoryMaxRatio, RocketMQ's accessMessageInMemoryMaxRatio):
// QUERY_CONSUMER_OFFSET answers QUERY_NOT_FOUND, and the client asks for
// the max offset, instead of being told 0 and replaying the whole topic.
func TestNewGoClientGroupSkipsAnOldQueueFromLast(t *testing.T) {
	c := startCluster(t)
	c.b.Close()
	c.opts.AccessMessageInMemoryMaxRatio = 1e-15 // well under a byte of any machine's memory
	c.startBroker()
	p := newProducer(t, c)
	topic, group := uniq("hist"), uniq("histg")
	sendBodies(t, p, topic, "old", 8)
	got := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		}, consumer.WithConsumeFromWhere(consumer.ConsumeFromLastOffset))
	defer pc.Shutdown()
	// New messages until the consumer took one of each queue: its queues
	// have started, and each has something to commit.
	var sent []string
	var last time.Time
	waitFor(t, 60*time.Second, "the consumer taking new messages of every queue", func() bool {
		if time.Since(last) >= 100*time.Millisecond {
			body := "new" + strconv.Itoa(len(sent))
			if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
				t.Fatal(err)
			}
			sent, last = append(sent, body), time.Now()
		}
		got.mu.Lock()
		defer got.mu.Unlock()
		queues := map[int]bool{}
		for _, e := range got.exts {
			if strings.HasPrefix(string(e.Body), "new") {
				queues[e.Queue.QueueId] = true
			}
		}
		return len(queues) == 4
	})
	// Committed to the end: every message the client pulled was handled.
	// (New messages sent before their queue started are skipped, as the
	// last offset says.)
	waitFor(t, 60*time.Second, "the group's offsets committed to the queues' ends", func() bool {
		var end int64
		for q := range int32(4) {
			_, hi := c.b.Store().QueueBounds(topic, q)
			end += hi
		}
		return end == int64(8+len(sent)) && committed(t, c.b.Addr(), group, topic) == end
	})
	for i := range 8 {
		if b := "old" + strconv.Itoa(i); got.has(b) {
			t.Fatalf("a new group from the last offset got %s, sent before it started", b)
		}
	}
}

// TestBroadcastingGoClientJoinsLateFromLast: a broadcasting member of the
// official client that joins a topic with messages already in it, with
// CONSUME_FROM_LAST_OFFSET and no offsets file of its own, starts at the
// queues' end (GET_MAX_OFFSET, as RocketMQ's broadcasting consumers do:
// the broker's rule for a new clustering group's young queues answers
// QUERY_CONSUMER_OFFSET, which a broadcasting member never asks), gets
// everything sent after it, and a message its handler fails is neither
// sent back nor dead-lettered (the client drops it, as RocketMQ's does).
func TestBroadcastingGoClientJoinsLateFromLast(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("bcl"), uniq("bclg")
	sendBodies(t, p, topic, "old", 8)
	got := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.BroadCasting, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			if string(ms[0].Body) == "new0" {
				return consumer.ConsumeRetryLater, nil
			}
			return consumer.ConsumeSuccess, nil
		}, consumer.WithConsumeFromWhere(consumer.ConsumeFromLastOffset))
	defer pc.Shutdown()
	// The member's first rebalance takes the queues' ends: until then a
	// message sent may land before them. Send until one arrives.
	n := 0
	waitFor(t, 60*time.Second, "the member to consume a message sent after it joined", func() bool {
		sendBodies(t, p, topic, "probe"+strconv.Itoa(n), 1)
		n++
		return got.distinct() > 0
	})
	sendBodies(t, p, topic, "new", 8)
	waitFor(t, 30*time.Second, "every new message", func() bool {
		for i := 0; i < 8; i++ {
			if !got.has("new" + strconv.Itoa(i)) {
				return false
			}
		}
		return true
	})
	for i := 0; i < 8; i++ {
		if got.has("old" + strconv.Itoa(i)) {
			t.Fatalf("old%d, sent before the member joined, was consumed from CONSUME_FROM_LAST_OFFSET", i)
		}
	}
	for _, topic := range []string{"%RETRY%" + group, "%DLQ%" + group} {
		if _, hi := c.b.Store().QueueBounds(topic, 0); hi != 0 {
			t.Fatalf("the broadcasting member's failure reached %s (%d messages)", topic, hi)
		}
	}
}
