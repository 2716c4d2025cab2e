package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
)

// Helpers of the consumer tests.

// delivery is one handler call's view of one message.
type delivery struct {
	consumer       string
	body           string
	topic          string
	tags           string
	queueID        int32
	reconsumeTimes int32
}

// inbox records what handlers were given.
type inbox struct {
	mu    sync.Mutex
	calls []delivery
}

func (b *inbox) record(consumer string, msgs []*MessageExt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		b.calls = append(b.calls, delivery{consumer: consumer, body: string(m.Body), topic: m.Topic, tags: m.Tags,
			queueID: m.QueueID, reconsumeTimes: m.ReconsumeTimes})
	}
}

// handler returns a handler that records under name and succeeds.
func (b *inbox) handler(name string) MessageHandler {
	return func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		b.record(name, msgs)
		return ConsumeSuccess, nil
	}
}

func (b *inbox) all() []delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivery(nil), b.calls...)
}

// count returns how often each body was delivered, to consumer (or to any
// when consumer is "").
func (b *inbox) count(consumer string) map[string]int {
	out := map[string]int{}
	for _, d := range b.all() {
		if consumer == "" || d.consumer == consumer {
			out[d.body]++
		}
	}
	return out
}

// waitBodies waits until every body in want was delivered.
func (b *inbox) waitBodies(t testing.TB, want []string) {
	t.Helper()
	b.waitTimes(t, want, 1)
}

// waitTimes waits until every body in want was delivered n times or more.
func (b *inbox) waitTimes(t testing.TB, want []string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages consumed %d times", len(want), n), func() bool {
		got := b.count("")
		for _, w := range want {
			if got[w] < n {
				return false
			}
		}
		return true
	})
}

// sendN sends n messages body prefix-0 ... prefix-(n-1) to topic with tags
// and returns the bodies.
func sendN(t testing.TB, p *Producer, topic, prefix, tags string, n int) []string {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	bodies := make([]string, n)
	for i := range n {
		bodies[i] = fmt.Sprintf("%s-%d", prefix, i)
		if _, err := p.Send(ctx, &Message{Topic: topic, Tags: tags, Body: []byte(bodies[i])}); err != nil {
			t.Fatalf("send %s: %v", bodies[i], err)
		}
	}
	return bodies
}

// startConsumer creates, subscribes and starts a consumer (closed when the
// test ends).
func startConsumer(t testing.TB, c *Client, o ConsumerOptions, topic, expr string, h MessageHandler) *PushConsumer {
	t.Helper()
	pc, err := c.NewPushConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, expr, h); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// ownQueues returns the queues of topic pc consumes (started, not dropped).
func ownQueues(pc *PushConsumer, topic string) []MessageQueue {
	var out []MessageQueue
	for _, q := range pc.processQueues() {
		if _, ok := q.ackOffset(); ok && q.mq.Topic == topic {
			out = append(out, q.mq)
		}
	}
	sortQueues(out)
	return out
}

// caughtUp reports whether the consumers together have acknowledged every
// message the store holds for topic. A send is answered before its consume
// queue entry is written: wait for the messages (waitStored, or their
// delivery) first.
func (c *cluster) caughtUp(topic string, pcs ...*PushConsumer) bool {
	acked := map[int32]int64{}
	for _, pc := range pcs {
		for _, q := range pc.processQueues() {
			if off, ok := q.ackOffset(); ok && q.mq.Topic == topic {
				acked[q.mq.QueueID] = off
			}
		}
	}
	for _, q := range c.b.Store().Queues() {
		if q.Topic != topic {
			continue
		}
		if off, ok := acked[q.QueueID]; !ok || off < q.MaxOffset {
			return false
		}
	}
	return true
}

// createTopic makes the broker create topic (4 queues) by sending a
// message to it, and returns that message's body.
func createTopic(t testing.TB, p *Producer, topic string) string {
	t.Helper()
	return sendN(t, p, topic, "create", "", 1)[0]
}

// lockRequestAs sends LOCK_BATCH_MQ or UNLOCK_BATCH_MQ (code) for mq on
// conn as clientID, a member of group, and returns the answer's body,
// failing the test unless it is SUCCESS.
func lockRequestAs(t testing.TB, conn *remoting.Conn, code int16, group, clientID string, mq MessageQueue) []byte {
	t.Helper()
	body, err := json.Marshal(lockBatchBody{ConsumerGroup: group, ClientID: clientID, MQSet: []MessageQueue{mq}})
	if err != nil {
		t.Fatal(err)
	}
	resp := remotetest.Call(t, conn, code, nil, body)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("lock request %d: %d %s", code, resp.Code, resp.Remark)
	}
	return resp.Body
}
