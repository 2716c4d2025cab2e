package client

import (
	"bytes"
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// flowSetup starts a cluster, and a producer that sends to queue 0 of
// every topic, so that one queue holds all of a test's messages.
func flowSetup(t *testing.T) (*cluster, *Client, *Producer) {
	t.Helper()
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	queue0 := QueueSelectorFunc(func(_ *Message, qs []MessageQueue, _ string) MessageQueue {
		for _, q := range qs {
			if q.QueueID == 0 {
				return q
			}
		}
		return qs[0]
	})
	p := newProducer(t, c, ProducerOptions{Group: uniq("pg"), Selector: queue0})
	return cl, c, p
}

// flowQueue returns pc's started queue of topic with id 0, or nil.
func flowQueue(pc *PushConsumer, topic string) *processQueue {
	for _, q := range pc.processQueues() {
		if _, ok := q.ackOffset(); ok && q.mq.Topic == topic && q.mq.QueueID == 0 {
			return q
		}
	}
	return nil
}

// A message whose handler call lasts holds its queue's committed offset,
// while the messages behind it are consumed: RocketMQ's concurrent
// consumer stops pulling once the offsets in flight span more than
// consumeConcurrentlyMaxSpan (2000), so that a crash meanwhile delivers
// at most that many again. Without the limit the queue went on pulling,
// and everything consumed since the slow message would be delivered again.
func TestConsumerMaxSpanPausesPulls(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("span")
	createTopic(t, p, topic) // offset 0 of queue 0
	const span, n = 20, 200
	release := make(chan struct{})
	var mu sync.Mutex
	done := map[string]bool{}
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) == "slow" {
			<-release
		}
		mu.Lock()
		done[string(msgs[0].Body)] = true
		mu.Unlock()
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), FromWhere: ConsumeFromFirst, PullBatchSize: 4,
		ConsumeConcurrentlyMaxSpan: span}, topic, "*", h)
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	sendN(t, p, topic, "m", "", n)
	cl.waitStored(t, topic, n+2)
	var q *processQueue
	waitFor(t, "the queue paused, or pulled past the span", func() bool {
		if q == nil {
			q = flowQueue(pc, topic)
			return false
		}
		return q.paused() || q.nextOffset() > 1+span+4+1
	})
	if next := q.nextOffset(); next > 1+span+4+1 {
		close(release)
		t.Fatalf("queue pulled up to offset %d while offset 1 was in its handler (max span %d)", next, span)
	}
	if off, _ := q.ackOffset(); off != 1 {
		t.Fatalf("offset to commit %d, want 1 (the slow message)", off)
	}
	close(release)
	waitFor(t, "every message consumed after the slow one", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == n+2
	})
	waitFor(t, "the queue caught up", func() bool { return cl.caughtUp(topic, pc) })
}

// Large messages in flight pause a queue's pulls once their bodies pass
// PullThresholdSizeForQueue MiB (RocketMQ's pullThresholdSizeForQueue,
// 100 MiB), however few they are: 1000 messages of 4 MiB are 4 GiB.
func TestConsumerSizeThresholdPausesPulls(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("size")
	createTopic(t, p, topic)
	const n = 12
	big := bytes.Repeat([]byte("x"), 300<<10) // 4 make more than 1 MiB
	release := make(chan struct{})
	var mu sync.Mutex
	got := 0
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if strings.HasPrefix(string(msgs[0].Body), "x") {
			<-release
		}
		mu.Lock()
		got++
		mu.Unlock()
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), FromWhere: ConsumeFromFirst, PullBatchSize: 1,
		Concurrency: 64, PullThresholdSizeForQueue: 1}, topic, "*", h)
	for range n {
		if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: big}); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitStored(t, topic, n+1)
	var q *processQueue
	waitFor(t, "the queue paused, or pulled every message", func() bool {
		if q == nil {
			q = flowQueue(pc, topic)
			return false
		}
		return q.paused() || q.nextOffset() == n+1
	})
	if next := q.nextOffset(); next > 1+5 {
		close(release)
		t.Fatalf("queue pulled up to offset %d with %d KiB in flight (threshold 1 MiB)", next, (next-1)*300)
	}
	close(release)
	waitFor(t, "every message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got == n+1
	})
}

func TestConsumerFlowDefaults(t *testing.T) {
	d := ConsumerOptions{Group: "g"}.withDefaults()
	if d.PullThresholdSizeForQueue != 100 || d.ConsumeConcurrentlyMaxSpan != 2000 {
		t.Fatalf("PullThresholdSizeForQueue %d, ConsumeConcurrentlyMaxSpan %d; want 100, 2000",
			d.PullThresholdSizeForQueue, d.ConsumeConcurrentlyMaxSpan)
	}
	for _, o := range []ConsumerOptions{{Group: "g", PullThresholdSizeForQueue: -1}, {Group: "g", ConsumeConcurrentlyMaxSpan: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted a negative limit", o)
		}
	}
}

// A handler call that ignores its context and never returns holds its
// message's offset, and with it the queue's committed offset: RocketMQ's
// concurrent consumer sends a message consumed for longer than
// consumeTimeout back (cleanExpireMsg) and lets the offset move on. Here
// a call that has not returned ConsumeTimeout after its context ended is
// a failed one: the message goes back through the retry topic (its
// Concurrency slot stays taken until the call returns).
func TestConsumerHungHandlerSentBack(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("hung")
	createTopic(t, p, topic)
	release := make(chan struct{})
	var mu sync.Mutex
	var hungTimes []int32
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) == "hang" {
			mu.Lock()
			hungTimes = append(hungTimes, msgs[0].ReconsumeTimes)
			mu.Unlock()
			if msgs[0].ReconsumeTimes == 0 {
				<-release // ignores ctx
			}
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), FromWhere: ConsumeFromFirst,
		ConsumeTimeout: 500 * time.Millisecond}, topic, "*", h)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the call
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("hang")}); err != nil {
		t.Fatal(err)
	}
	sendN(t, p, topic, "m", "", 5)
	cl.waitStored(t, topic, 7)
	waitFor(t, "the queue's offset past the hung call's message", func() bool { return cl.caughtUp(topic, pc) })
	waitFor(t, "the hung message redelivered from the retry topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		// More than twice if a later call ran past twice ConsumeTimeout
		// as well (a loaded machine).
		return len(hungTimes) >= 2 && hungTimes[1] >= 1
	})
}

// The messages a hung call was given are its own: a retry of the batch
// (broadcasting members retry here) gets copies, and does not change the
// ReconsumeTimes or Topic the hung call sees.
func TestConsumerRetryLeavesHungCallMessages(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("hungb")
	createTopic(t, p, topic)
	release, retried := make(chan struct{}), make(chan struct{})
	seen := make(chan int32, 1)
	var once sync.Once
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) != "hang" {
			return ConsumeSuccess, nil
		}
		if msgs[0].ReconsumeTimes == 0 {
			<-release
			seen <- msgs[0].ReconsumeTimes
			return ConsumeSuccess, nil
		}
		once.Do(func() { close(retried) })
		return ConsumeSuccess, nil
	}
	startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), Model: Broadcasting, MemoryOffsets: true,
		FromWhere: ConsumeFromFirst, ConsumeTimeout: 100 * time.Millisecond, SuspendInterval: 10 * time.Millisecond},
		topic, "*", h)
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("hang")}); err != nil {
		t.Fatal(err)
	}
	cl.waitStored(t, topic, 2)
	releaseAfterRetry(t, retried, release)
	if got := <-seen; got != 0 {
		t.Fatalf("the hung call's message has ReconsumeTimes %d after the retry, want 0 (as it was called)", got)
	}
}

// Each call's copies are deep: a hung call that changes its messages'
// properties, keys or body (the maps and slices of the stored message)
// changes neither what a retry running beside it sees nor what a
// send-back stores. Shallow copies shared them: the retry saw the hung
// call's changes, and a hung call writing a map while the retry (or its
// process span) read it is a concurrent map access, which kills the
// process.
func TestConsumerRetryCopiesAreDeep(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("hungd")
	createTopic(t, p, topic)
	release, changed := make(chan struct{}), make(chan struct{})
	type view struct {
		prop, sys, key, body string
	}
	seen := make(chan view, 1)
	var once sync.Once
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		if m.Tags != "hang" {
			return ConsumeSuccess, nil
		}
		if m.ReconsumeTimes == 0 {
			m.Properties["p"] = "hung"
			m.SystemProperties["UNIQ_KEY"] = "hung"
			m.Keys[0] = "hung"
			m.Body[0] = 'H'
			close(changed)
			<-release
			return ConsumeSuccess, nil
		}
		once.Do(func() {
			seen <- view{m.Properties["p"], m.SystemProperties["UNIQ_KEY"], m.Keys[0], string(m.Body)}
		})
		return ConsumeSuccess, nil
	}
	startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), Model: Broadcasting, MemoryOffsets: true,
		FromWhere: ConsumeFromFirst, ConsumeTimeout: 100 * time.Millisecond, SuspendInterval: 10 * time.Millisecond},
		topic, "*", h)
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("hang"), Tags: "hang", Keys: []string{"k1"},
		Properties: map[string]string{"p": "sent"}})
	if err != nil {
		t.Fatal(err)
	}
	cl.waitStored(t, topic, 2)
	var v view
	select {
	case v = <-seen:
	case <-time.After(15 * time.Second):
		close(release)
		t.Fatal("the hung call's message was not retried")
	}
	<-changed
	close(release)
	if want := (view{"sent", res.MsgID, "k1", "hang"}); v != want {
		t.Fatalf("the retry saw %+v, want %+v (the hung call's changes leaked into it)", v, want)
	}
}

// A ConsumeTimeout too long to double (math.MaxInt64, "no deadline") does
// not take every call for hung: twice it overflowed to a negative time,
// the hung-call timer fired at once, and every message was consumed twice
// (sent back, or retried here, while its first call still ran).
func TestConsumerLongestConsumeTimeoutNotHung(t *testing.T) {
	cl, c, p := flowSetup(t)
	topic := uniq("longto")
	createTopic(t, p, topic)
	var mu sync.Mutex
	calls := 0
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if msgs[0].Tags != "slow" {
			return ConsumeSuccess, nil
		}
		mu.Lock()
		calls++
		mu.Unlock()
		select { // a call that takes a while
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), Model: Broadcasting, MemoryOffsets: true,
		FromWhere: ConsumeFromFirst, ConsumeTimeout: math.MaxInt64, SuspendInterval: 10 * time.Millisecond},
		topic, "*", h)
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("slow"), Tags: "slow"}); err != nil {
		t.Fatal(err)
	}
	cl.waitStored(t, topic, 2)
	waitFor(t, "the slow message acknowledged", func() bool { return cl.caughtUp(topic, pc) })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("the slow message was handled %d times, want 1 (its call was taken for hung)", calls)
	}
}

// releaseAfterRetry waits until retried is closed (the hung call's
// message was consumed again), then closes release to let the hung call
// return; after 15 s it releases it and fails the test.
func releaseAfterRetry(t *testing.T, retried <-chan struct{}, release chan struct{}) {
	t.Helper()
	defer close(release)
	select {
	case <-retried:
	case <-time.After(15 * time.Second):
		t.Fatal("the hung call's message was not retried")
	}
}
