package compat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rmqadmin "github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
)

// sendTagged sends body<i> with tag tags[i] (and key "k<i>") to topic.
func sendTagged(t *testing.T, c *cluster, topic string, tags ...string) {
	t.Helper()
	p := newProducer(t, c)
	for i, tag := range tags {
		m := primitive.NewMessage(topic, []byte(tag+strconv.Itoa(i)))
		m.WithTag(tag)
		m.WithKeys([]string{"k" + strconv.Itoa(i)})
		m.WithProperty("i", strconv.Itoa(i)) // for SQL92 selectors
		if _, err := p.SendSync(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// publishQueues is the topic's queues as the official admin client sees them.
func publishQueues(t *testing.T, c *cluster, topic string) []*primitive.MessageQueue {
	t.Helper()
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	mqs, err := ra.FetchPublishMessageQueues(context.Background(), topic)
	if err != nil || len(mqs) == 0 {
		t.Fatalf("FetchPublishMessageQueues(%s) = %v, %v", topic, mqs, err)
	}
	return mqs
}

// pullConsumer is what the official client's NewPullConsumer returns.
type pullConsumer interface {
	PullFrom(ctx context.Context, mq *primitive.MessageQueue, offset int64, n int) (*primitive.PullResult, error)
	UpdateOffset(mq *primitive.MessageQueue, offset int64) error
	PersistOffset(ctx context.Context, topic string) error
	CurrentOffset(mq *primitive.MessageQueue) (int64, error)
	Shutdown() error
}

func newPullConsumer(t *testing.T, c *cluster, group, topic string, sel consumer.MessageSelector) pullConsumer {
	t.Helper()
	pc, err := consumer.NewPullConsumer(consumer.WithNsResolver(c.resolver()), consumer.WithGroupName(group),
		consumer.WithInstance(uniq("ci")), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, sel); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Shutdown() })
	return pc
}

// TestOfficialPullConsumer: the official client's pull consumer pulls a
// queue with a tag selector, is told the queue's bounds, commits offsets
// the broker keeps for the group's next member, and an offset past the
// end is moved back to it.
func TestOfficialPullConsumer(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("pull"), uniq("pullg")
	tags := []string{"A", "B", "C", "A", "B", "C", "A", "B", "C", "A", "B", "C"}
	sendTagged(t, c, topic, tags...)
	ctx := context.Background()
	mqs := publishQueues(t, c, topic)
	pc := newPullConsumer(t, c, group, topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "A || B"})
	var got []string
	ends := map[int]int64{}
	for _, mq := range mqs {
		r, err := pc.PullFrom(ctx, mq, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != primitive.PullFound || r.MinOffset != 0 || r.NextBeginOffset != r.MaxOffset {
			t.Fatalf("queue %d: status %v, offsets min %d next %d max %d", mq.QueueId, r.Status, r.MinOffset, r.NextBeginOffset, r.MaxOffset)
		}
		for _, e := range r.GetMessageExts() {
			got = append(got, string(e.Body))
		}
		ends[mq.QueueId] = r.MaxOffset
	}
	slices.Sort(got)
	if want := []string{"A0", "A3", "A6", "A9", "B1", "B10", "B4", "B7"}; !slices.Equal(got, want) {
		t.Fatalf("pulled %v with selector A || B, want %v", got, want)
	}
	// The client persists only the queues its rebalance has taken (it
	// does that in the background after Start) and forgets the offsets of
	// others as it persists: update and persist until all are in.
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitFor(t, 30*time.Second, "the broker to hold every committed offset", func() bool {
		for _, mq := range mqs {
			if err := pc.UpdateOffset(mq, ends[mq.QueueId]); err != nil {
				t.Fatal(err)
			}
		}
		if err := pc.PersistOffset(ctx, topic); err != nil {
			t.Fatal(err)
		}
		for _, mq := range mqs {
			if off, ok, err := ac.QueryOffset(ctx, group, topic, int32(mq.QueueId)); err != nil || !ok || off != ends[mq.QueueId] {
				return false
			}
		}
		return true
	})
	pc.Shutdown()

	next := newPullConsumer(t, c, group, topic, consumer.MessageSelector{})
	for _, mq := range mqs {
		if off, err := next.CurrentOffset(mq); err != nil || off != ends[mq.QueueId] {
			t.Fatalf("queue %d: the group's next member starts at %d (%v), want the committed %d", mq.QueueId, off, err, ends[mq.QueueId])
		}
		r, err := next.PullFrom(ctx, mq, ends[mq.QueueId]+100, 32)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != primitive.PullOffsetIllegal || r.NextBeginOffset != ends[mq.QueueId] {
			t.Fatalf("queue %d: pull past the end: status %v, next %d; want offset illegal, next %d", mq.QueueId, r.Status, r.NextBeginOffset, ends[mq.QueueId])
		}
	}
}

// brokerCode is the response code of a broker's refusal as the official
// client reports it ("CODE: 13, DESC: ..."), or -1.
func brokerCode(err error) int16 {
	var code int16
	if err == nil {
		return -1
	}
	if _, serr := fmt.Sscanf(err.Error(), "CODE: %d,", &code); serr != nil {
		return -1
	}
	return code
}

// TestOfficialBatchSend: a batch keeps each message's tag, keys and
// properties (a tag selector picks among them, a key finds each), and a
// batch to a retry topic or with a delay level is refused as RocketMQ
// refuses it (MESSAGE_ILLEGAL).
func TestOfficialBatchSend(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("batch")
	ctx := context.Background()
	var batch []*primitive.Message
	for i := range 6 {
		m := primitive.NewMessage(topic, []byte("b"+strconv.Itoa(i)))
		m.WithTag("T" + strconv.Itoa(i%3))
		m.WithKeys([]string{"bk" + strconv.Itoa(i)})
		m.WithProperty("n", strconv.Itoa(i))
		batch = append(batch, m)
	}
	res, err := p.SendSync(ctx, batch...)
	if err != nil || res.Status != primitive.SendOK || len(strings.Split(res.OffsetMsgID, ",")) != 6 {
		t.Fatalf("batch SendSync = %+v, %v", res, err)
	}
	all, picked := newReceived(), newReceived()
	pa := newPushConsumer(t, c, uniq("ball"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			all.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer pa.Shutdown()
	selectingConsumer(t, c, uniq("bsel"), topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "T1 || T2"}, picked)
	waitFor(t, 30*time.Second, "all 6 batched messages", func() bool { return all.distinct() == 6 })
	// Every queue the selecting group consumes past the batch's own: the
	// messages it was not given were filtered, not late.
	waitFor(t, 30*time.Second, "the selecting group past the batch", func() bool { return picked.distinct() == 4 })
	if picked.has("b0") || picked.has("b3") || !picked.atLeast(1, "b1", "b2", "b4", "b5") {
		t.Fatalf("selector T1 || T2 got %v", picked.msgs)
	}
	all.mu.Lock()
	for _, e := range all.exts {
		i := strings.TrimPrefix(string(e.Body), "b")
		n, _ := strconv.Atoi(i)
		if e.GetTags() != "T"+strconv.Itoa(n%3) || e.GetKeys() != "bk"+i || e.GetProperty("n") != i {
			t.Errorf("%s: tag %q keys %q n %q", e.Body, e.GetTags(), e.GetKeys(), e.GetProperty("n"))
		}
	}
	all.mu.Unlock()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	for i := range 6 {
		if ms, err := ac.QueryByKey(ctx, topic, "bk"+strconv.Itoa(i)); err != nil || len(ms) != 1 {
			t.Fatalf("query by key bk%d: %d messages, %v", i, len(ms), err)
		}
	}

	retry := "%RETRY%" + uniq("g")
	_, err = p.SendSync(ctx, primitive.NewMessage(retry, []byte("r1")), primitive.NewMessage(retry, []byte("r2")))
	if code := brokerCode(err); code != remoting.RespMessageIllegal {
		t.Fatalf("batch to %s: %v (code %d), want MESSAGE_ILLEGAL", retry, err, code)
	}
	d1, d2 := primitive.NewMessage(topic, []byte("d1")), primitive.NewMessage(topic, []byte("d2"))
	d1.WithDelayTimeLevel(2)
	d2.WithDelayTimeLevel(2)
	if _, err := p.SendSync(ctx, d1, d2); brokerCode(err) != remoting.RespMessageIllegal {
		t.Fatalf("delayed batch: %v, want MESSAGE_ILLEGAL", err)
	}
}

// selectingConsumer starts a clustering push consumer of group with sel
// that collects into r.
func selectingConsumer(t *testing.T, c *cluster, group, topic string, sel consumer.MessageSelector, r *received) {
	t.Helper()
	pc, err := consumer.NewPushConsumer(consumer.WithNsResolver(c.resolver()), consumer.WithGroupName(group),
		consumer.WithInstance(uniq("ci")), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, sel, func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		r.add(ms...)
		return consumer.ConsumeSuccess, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Shutdown() })
}

// TestOfficialSelectors: "a || b" and "*" tag selectors get what they
// name; an SQL92 subscription is refused as RocketMQ refuses it with
// enablePropertyFilter off: every pull of the group (the push consumer
// pulls with the subscription its heartbeat registered), and the pull
// consumer's own, answers SYSTEM_ERROR naming SQL92.
func TestOfficialSelectors(t *testing.T) {
	c := startCluster(t)
	topic := uniq("sel")
	sendTagged(t, c, topic, "A", "B", "C", "A", "B", "C")
	ab, star := newReceived(), newReceived()
	selectingConsumer(t, c, uniq("ab"), topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "A || B"}, ab)
	selectingConsumer(t, c, uniq("star"), topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}, star)
	waitFor(t, 30*time.Second, "the selectors' messages", func() bool { return ab.distinct() == 4 && star.distinct() == 6 })
	if !ab.atLeast(1, "A0", "B1", "A3", "B4") {
		t.Fatalf("A || B got %v", ab.msgs)
	}

	sqlGroup := uniq("sql")
	sql := consumer.MessageSelector{Type: consumer.SQL92, Expression: "a > 1"}
	selectingConsumer(t, c, sqlGroup, topic, sql, newReceived())
	ctx := context.Background()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitFor(t, 30*time.Second, "the SQL92 group's heartbeat", func() bool {
		gc, err := ac.GroupConnections(ctx, sqlGroup)
		return err == nil && gc.Subscriptions[topic] != ""
	})
	conn, err := remoting.Dial(ctx, c.b.Addr(), remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The official push consumer's pull: suspend flag, no subscription.
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": sqlGroup, "topic": topic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
		"sysFlag": "2", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "", "subVersion": "0", "expressionType": "TAG"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != remoting.RespSystemError || !strings.Contains(resp.Remark, "SQL92") {
		t.Fatalf("the SQL92 group's pull: code %d %q, want SYSTEM_ERROR naming SQL92", resp.Code, resp.Remark)
	}
	pc := newPullConsumer(t, c, uniq("sqlpull"), topic, sql)
	_, err = pc.PullFrom(ctx, publishQueues(t, c, topic)[0], 0, 32)
	if err == nil || !strings.Contains(err.Error(), "does not support consumer to filter message by SQL92") {
		t.Fatalf("SQL92 PullFrom: %v, want the broker's refusal", err)
	}
}

// TestOfficialSQL92Selector: with broker.enablePropertyFilter on, the
// official client's SQL92 selector (consumer.SQL92, RocketMQ's
// MessageSelector.bySql) gets exactly the messages its expression matches
// over their properties (a user property and TAGS): the push consumer,
// which pulls with the subscription its heartbeat registered, and the pull
// consumer, which sends the expression with every pull.
func TestOfficialSQL92Selector(t *testing.T) {
	c := startClusterWith(t, func(o *broker.Options) { o.EnablePropertyFilter = true })
	topic := uniq("sql")
	sendTagged(t, c, topic, "A", "B", "C", "A", "B", "C", "A", "B", "C")
	sql := consumer.MessageSelector{Type: consumer.SQL92, Expression: "i > 2 AND TAGS IN ('A', 'B') AND i <> 6"}
	want := []string{"A3", "B4", "B7"}

	ctx := context.Background()
	pc := newPullConsumer(t, c, uniq("sqlpull"), topic, sql)
	var pulled []string
	for _, mq := range publishQueues(t, c, topic) {
		r, err := pc.PullFrom(ctx, mq, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.GetMessageExts() {
			pulled = append(pulled, string(e.Body))
		}
	}
	slices.Sort(pulled)
	if !slices.Equal(pulled, want) {
		t.Fatalf("pull consumer with %q got %v, want %v", sql.Expression, pulled, want)
	}

	pushed := newReceived()
	selectingConsumer(t, c, uniq("sqlpush"), topic, sql, pushed)
	waitFor(t, 30*time.Second, "the SQL92 push consumer's messages", func() bool { return pushed.atLeast(1, want...) })
	// A message the selector wrongly let through would most likely have
	// come in the same pull as a matching one of its queue.
	if n := pushed.distinct(); n != len(want) {
		t.Fatalf("push consumer with %q got %v, want only %v", sql.Expression, pushed.msgs, want)
	}
}

// TestOfficialOversizedSend: a body over the 4 MiB limit (after the
// client's compression), or a batch over it, is refused with
// MESSAGE_ILLEGAL; one over the 16 MiB frame limit drops the connection;
// the broker goes on taking and serving messages.
func TestOfficialOversizedSend(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("big")
	ctx := context.Background()
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b) // incompressible
		return b
	}
	_, err := p.SendSync(ctx, primitive.NewMessage(topic, random(4<<20+1)))
	if code := brokerCode(err); code != remoting.RespMessageIllegal || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("4 MiB + 1 body: %v (code %d), want MESSAGE_ILLEGAL", err, code)
	}
	_, err = p.SendSync(ctx, primitive.NewMessage(topic, random(3<<20)), primitive.NewMessage(topic, random(3<<20)))
	if brokerCode(err) != remoting.RespMessageIllegal {
		t.Fatalf("6 MiB batch: %v, want MESSAGE_ILLEGAL", err)
	}
	if _, err = p.SendSync(ctx, primitive.NewMessage(topic, random(17<<20))); err == nil {
		t.Fatal("a 17 MiB body was taken")
	}
	sendBodies(t, p, topic, "small", 3)
	_, r := startCollector(t, c, uniq("bigc"), topic)
	waitFor(t, 30*time.Second, "the small messages", func() bool { return r.atLeast(1, "small0", "small1", "small2") })
	if n := r.distinct(); n != 3 {
		t.Fatalf("consumed %d distinct bodies, want only the 3 small ones", n)
	}
}

// TestOfficialAdminListsGroupsAndTopics: the official admin client lists
// a consumer's group (GET_ALL_SUBSCRIPTIONGROUP_CONFIG) and its topic.
func TestOfficialAdminListsGroupsAndTopics(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("adm"), uniq("admg")
	p := newProducer(t, c)
	sendBodies(t, p, topic, "m", 1)
	_, r := startCollector(t, c, group, topic)
	waitFor(t, 30*time.Second, "the message", func() bool { return r.has("m0") })
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ctx := context.Background()
	w, err := ra.GetAllSubscriptionGroup(ctx, c.b.Addr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := w.SubscriptionGroupTable[group]; !ok || g.GroupName != group || !g.ConsumeEnable || g.RetryMaxTimes != 16 {
		t.Fatalf("subscription group %s: %+v (listed: %v)", group, g, ok)
	}
	l, err := ra.FetchAllTopicList(ctx)
	if err != nil || !slices.Contains(l.TopicList, topic) || !slices.Contains(l.TopicList, "%RETRY%"+group) {
		t.Fatalf("FetchAllTopicList = %v, %v; want %s and its group's retry topic", l, err, topic)
	}
}

// TestOfficialAsyncAndOnewayAcrossRestart: with the broker down, SendAsync
// calls back with an error and SendOneWay returns one (neither hangs);
// once it is back both deliver again.
func TestOfficialAsyncAndOnewayAcrossRestart(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("ar")
	ctx := context.Background()
	async := func(body string) error {
		var wg sync.WaitGroup
		wg.Add(1)
		var cbErr error
		if err := p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
			cbErr = err
			if err == nil && r.Status != primitive.SendOK {
				cbErr = errors.New(r.String())
			}
			wg.Done()
		}, primitive.NewMessage(topic, []byte(body))); err != nil {
			return err
		}
		wg.Wait()
		return cbErr
	}
	if err := async("a0"); err != nil {
		t.Fatal(err)
	}
	if err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte("o0"))); err != nil {
		t.Fatal(err)
	}
	_, r := startCollector(t, c, uniq("arc"), topic)
	waitFor(t, 30*time.Second, "a0 and o0", func() bool { return r.atLeast(1, "a0", "o0") })
	c.b.Close()
	if err := async("down"); err == nil {
		t.Fatal("SendAsync to a stopped broker reported success")
	}
	if err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte("down"))); err == nil {
		t.Fatal("SendOneWay to a stopped broker reported success")
	}
	c.startBroker()
	waitFor(t, 30*time.Second, "SendAsync to the restarted broker", func() bool { return async("a1") == nil })
	if err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte("o1"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a1 and o1 consumed", func() bool { return r.atLeast(1, "a1", "o1") })
	if r.has("down") {
		t.Fatal("a send refused while the broker was down was stored")
	}
}

// TestGoClientsResumeSoonAfterBrokerRestart: idle official push consumers
// (a long-polling pull held on every queue) take messages sent to the
// restarted broker within seconds. Close answered the held pulls with
// PULL_NOT_FOUND, on which the client pulls again at once on the closing
// connection; a pull in flight when it closed was never answered, and the
// client (it does not fail a closed connection's calls) waited its 30 s
// pull timeout before it pulled that queue again.
func TestGoClientsResumeSoonAfterBrokerRestart(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic := uniq("rs")
	sendBodies(t, p, topic, "before", 4)
	var groups []*received
	for range 4 {
		_, r := startCollector(t, c, uniq("rsg"), topic)
		groups = append(groups, r)
	}
	waitFor(t, 30*time.Second, "every group to take the first messages", func() bool {
		for _, r := range groups {
			if r.distinct() != 4 {
				return false
			}
		}
		return true
	})
	// The groups are idle now: each pull of theirs is held by the broker
	// (no new messages) while Close runs.
	c.b.Close()
	c.startBroker()
	sendBodies(t, p, topic, "after", 4) // one to each queue
	// Well under the client's 30 s pull timeout; above its 3 s pause after
	// a failed pull.
	waitFor(t, 15*time.Second, "every group to take the messages sent after the restart", func() bool {
		for _, r := range groups {
			if !r.atLeast(1, "after0", "after1", "after2", "after3") {
				return false
			}
		}
		return true
	})
}
