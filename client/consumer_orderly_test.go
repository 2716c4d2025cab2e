package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/message"
)

// orderlyLog records an orderly handler's calls per sharding key and
// catches two calls overlapping on one queue.
type orderlyLog struct {
	mu      sync.Mutex
	calls   map[string][]string // key -> bodies handed over, in call order
	done    map[string][]int    // key -> sequence numbers acknowledged, in order
	times   map[string][]int32  // body -> reconsumeTimes of each call
	running map[string]bool     // queue -> a call is running
	overlap string
}

func newOrderlyLog() *orderlyLog {
	return &orderlyLog{calls: map[string][]string{}, done: map[string][]int{}, times: map[string][]int32{}, running: map[string]bool{}}
}

// handler returns a handler that fails while fail(body, reconsumeTimes)
// says so.
func (l *orderlyLog) handler(fail func(body string, times int32) bool) MessageHandler {
	return func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		queue := strconv.Itoa(int(m.QueueID))
		l.mu.Lock()
		if l.running[queue] {
			l.overlap = fmt.Sprintf("two calls at once on queue %s", queue)
		}
		l.running[queue] = true
		body := string(m.Body)
		l.calls[m.ShardingKey] = append(l.calls[m.ShardingKey], body)
		l.times[body] = append(l.times[body], m.ReconsumeTimes)
		l.mu.Unlock()

		failed := fail(body, m.ReconsumeTimes)

		l.mu.Lock()
		defer l.mu.Unlock()
		l.running[queue] = false
		if failed {
			return ConsumeRetryLater, errors.New("not now")
		}
		seq, _ := strconv.Atoi(body[strings.LastIndexByte(body, '-')+1:])
		l.done[m.ShardingKey] = append(l.done[m.ShardingKey], seq)
		return ConsumeSuccess, nil
	}
}

func (l *orderlyLog) snapshot() (map[string][]int, map[string][]int32, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	done := map[string][]int{}
	for k, v := range l.done {
		done[k] = slices.Clone(v)
	}
	times := map[string][]int32{}
	for k, v := range l.times {
		times[k] = slices.Clone(v)
	}
	return done, times, l.overlap
}

// sendKeyed sends n messages per key, key-0 ... key-(n-1), each key to one
// queue (by its sharding key), waiting for each send.
func sendKeyed(t testing.TB, p *Producer, topic string, keys []string, from, n int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for i := from; i < from+n; i++ {
		for _, k := range keys {
			m := &Message{Topic: topic, ShardingKey: k, Body: []byte(fmt.Sprintf("%s-%d", k, i))}
			if _, err := p.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Two orderly members hand queues over (by lock) without breaking any
// key's order, and a failing message holds its queue until it succeeds.
func TestOrderlyKeepsQueueOrderAcrossFailureAndHandover(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	const perKey = 20
	sendKeyed(t, p, topic, keys, 0, perKey/2)
	log := newOrderlyLog()
	h := log.handler(func(body string, times int32) bool { return body == "k1-3" && times < 2 })
	o := ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst, SuspendInterval: 50 * time.Millisecond,
		LockRenewInterval: time.Second}
	c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", h)
	waitFor(t, "the first member consuming", func() bool {
		done, _, _ := log.snapshot()
		return len(done["k1"]) > 4
	})
	c2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", h)
	waitFor(t, "the queues split 2/2", func() bool {
		return len(ownQueues(c1, topic)) == 2 && len(ownQueues(c2, topic)) == 2
	})
	sendKeyed(t, p, topic, keys, perKey/2, perKey/2)
	cl.waitStored(t, topic, len(keys)*perKey)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, c1, c2) })

	done, times, overlap := log.snapshot()
	if overlap != "" {
		t.Fatal(overlap)
	}
	for _, k := range keys {
		want := make([]int, perKey)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(done[k], want) {
			t.Errorf("key %s acknowledged in order %v, want %v", k, done[k], want)
		}
	}
	if got := times["k1-3"]; !slices.Equal(got, []int32{0, 1, 2}) {
		t.Fatalf("failing message consumed with reconsumeTimes %v, want [0 1 2] (retried on the spot)", got)
	}
	if got := cl.stored(t, retryTopic(group)); len(got) != 0 {
		t.Fatalf("orderly failure went through the retry topic: %d messages", len(got))
	}
}

// A message that keeps failing is retried MaxReconsumeTimes times in
// place, then moved to the dead-letter queue, and its queue goes on.
func TestOrderlyPoisonMessageGoesToDLQ(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	keys := []string{"k0", "k1"}
	sendKeyed(t, p, topic, keys, 0, 5)
	log := newOrderlyLog()
	h := log.handler(func(body string, _ int32) bool { return body == "k0-2" })
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true,
		FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 2, SuspendInterval: 20 * time.Millisecond}, topic, "*", h)
	cl.waitStored(t, topic, 10)
	dlq := cl.waitStored(t, DLQTopic(group), 1)
	if string(dlq[0].Body) != "k0-2" {
		t.Fatalf("dead letter %q", dlq[0].Body)
	}
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })
	done, times, overlap := log.snapshot()
	if overlap != "" {
		t.Fatal(overlap)
	}
	if !slices.Equal(done["k0"], []int{0, 1, 3, 4}) || !slices.Equal(done["k1"], []int{0, 1, 2, 3, 4}) {
		t.Fatalf("acknowledged %v", done)
	}
	if got := times["k0-2"]; !slices.Equal(got, []int32{0, 1, 2}) {
		t.Fatalf("poison message consumed with reconsumeTimes %v, want [0 1 2]", got)
	}
}

// TestOrderlyStopsWhenLockRenewalRefused gives one of an orderly member's
// queue locks to another client behind its back (as after a broker
// restart): at its next renewal the member stops consuming that queue at
// once instead of when its last grant expires.
func TestOrderlyStopsWhenLockRenewalRefused(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic, group := uniq("ordered"), uniq("cg")
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	sendKeyed(t, p, topic, []string{"a"}, 0, 1)
	log := newOrderlyLog()
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		Orderly: true, LockRenewInterval: 100 * time.Millisecond}, topic, "*", log.handler(func(string, int32) bool { return false }))
	var mq MessageQueue
	waitFor(t, "the member to hold a queue's lock", func() bool {
		for _, q := range pc.processQueues() {
			if q.mq.Topic == topic && q.lockValid() {
				mq = q.mq
				return true
			}
		}
		return false
	})

	conn := remotetest.Dial(t, cl.b.Addr())
	lock := func(code int16, clientID string) []byte {
		return (lockRequestAs(t, conn, code, group, clientID, mq))
	}
	lock(remoting.ReqUnlockBatchMQ, pc.c.id)
	if got := lock(remoting.ReqLockBatchMQ, "intruder"); !strings.Contains(string(got), fmt.Sprintf(`"queueId":%d`, mq.QueueID)) {
		t.Fatalf("the intruder was not granted %v: %s", mq, got)
	}
	waitFor(t, "the member to stop consuming the queue it lost", func() bool {
		for _, q := range pc.processQueues() {
			if q.mq == mq && q.lockValid() {
				return false
			}
		}
		return true
	})
}

// As RocketMQ's orderly consumers (maxReconsumeTimes -1 means no limit
// when orderly), an orderly consumer left at the default MaxReconsumeTimes
// retries a failing message in place until it succeeds: giving it up to
// the dead-letter queue after 16 tries would let the messages behind it
// overtake it, breaking its key's order, after a short outage.
func TestOrderlyDefaultRetriesWithoutLimit(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	sendKeyed(t, p, topic, []string{"k0"}, 0, 3)
	log := newOrderlyLog()
	h := log.handler(func(body string, times int32) bool { return body == "k0-1" && times < 20 })
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true,
		FromWhere: ConsumeFromFirst, SuspendInterval: 5 * time.Millisecond}, topic, "*", h)
	waitFor(t, "every message consumed", func() bool {
		done, _, _ := log.snapshot()
		return len(done["k0"]) == 3 || len(cl.stored(t, DLQTopic(group))) > 0
	})
	done, times, _ := log.snapshot()
	if dlq := cl.stored(t, DLQTopic(group)); len(dlq) > 0 {
		t.Fatalf("%q went to the dead-letter queue after %d tries; acknowledged %v", dlq[0].Body, len(times["k0-1"]), done["k0"])
	}
	if !slices.Equal(done["k0"], []int{0, 1, 2}) || len(times["k0-1"]) != 21 {
		t.Fatalf("acknowledged %v, k0-1 tried %d times", done["k0"], len(times["k0-1"]))
	}
}

// As RocketMQ's orderly consumers (checkReconsumeTimes), the dead-letter
// decision counts the reconsumes a message already carries, not only the
// local retries: a %RETRY% message of a group that used to consume
// concurrently, stored with reconsumeTimes 2, fails once more here and
// goes to the DLQ at reconsumeTimes 3 = MaxReconsumeTimes.
func TestOrderlyDeadLetterCountsStoredReconsumeTimes(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	createTopic(t, p, topic)
	props := message.Properties{message.PropertyRetryTopic: topic, message.PropertyUniqKey: uniq("U")}.Encode()
	if _, err := cl.b.Store().Append(ctxT(t, 10*time.Second), &message.Message{Topic: retryTopic(group),
		ReconsumeTimes: 2, Body: []byte("poison"), Properties: props}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []int32
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) != "poison" {
			return ConsumeSuccess, nil
		}
		mu.Lock()
		defer mu.Unlock()
		times = append(times, msgs[0].ReconsumeTimes)
		return ConsumeRetryLater, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true,
		FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 3, SuspendInterval: 20 * time.Millisecond}, topic, "*", h)
	dlq := cl.waitStored(t, DLQTopic(group), 1)
	if string(dlq[0].Body) != "poison" {
		t.Fatalf("dead letter %q", dlq[0].Body)
	}
	waitFor(t, "the retry queue acknowledged", func() bool { return cl.caughtUp(retryTopic(group), pc) })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(times, []int32{2, 3}) {
		t.Fatalf("consumed with reconsumeTimes %v before the dead-letter queue, want [2 3]", times)
	}
}
