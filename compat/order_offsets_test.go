package compat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// TestOrderlyKeepsOrderAcrossRestart sends numbered messages per sharding
// key through the hash queue selector and checks that an orderly consumer
// sees each key's messages in order, also when it is restarted midway.
func TestOrderlyKeepsOrderAcrossRestart(t *testing.T) {
	c := startCluster(t)
	p, err := rocketmq.NewProducer(producer.WithNsResolver(c.resolver()), producer.WithGroupName(uniq("opg")),
		producer.WithInstanceName(uniq("opi")), producer.WithQueueSelector(producer.NewHashQueueSelector()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	topic, group := uniq("ord"), uniq("og")
	keys := []string{"order-1", "order-2", "order-3"}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			for _, k := range keys {
				m := primitive.NewMessage(topic, []byte(fmt.Sprintf("%s:%d", k, i)))
				m.WithShardingKey(k)
				if _, err := p.SendSync(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var mu sync.Mutex
	seen := map[string][]int{}
	handler := func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			k, n, _ := strings.Cut(string(m.Body), ":")
			i, _ := strconv.Atoi(n)
			seen[k] = append(seen[k], i)
		}
		return consumer.ConsumeSuccess, nil
	}
	done := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range keys {
				if s := seen[k]; len(s) == 0 || s[len(s)-1] != n-1 {
					return false
				}
			}
			return true
		}
	}
	send(0, 20)
	c1 := newPushConsumer(t, c, group, topic, consumer.Clustering, true, handler)
	waitFor(t, 60*time.Second, "the first 20 per key", done(20))
	c1.Shutdown()
	send(20, 40)
	c2 := newPushConsumer(t, c, group, topic, consumer.Clustering, true, handler)
	defer c2.Shutdown()
	waitFor(t, 60*time.Second, "all 40 per key after the restart", done(40))
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		// A restart may redeliver from the last committed offset, so a run
		// can start again lower; but nothing ever arrives ahead of the next
		// message in its key's order.
		s, next := seen[k], 0
		for _, v := range s {
			if v > next {
				t.Fatalf("%s: %d arrived before %d: %v", k, v, next, s)
			}
			next = max(next, v+1)
		}
	}
}

// TestOffsetsSurviveBrokerRestart: a group that consumed a topic and
// committed its offsets resumes after a broker restart where it stopped.
func TestOffsetsSurviveBrokerRestart(t *testing.T) {
	c := startCluster(t)
	p := newProducer(t, c)
	topic, group := uniq("off"), uniq("offg")
	sendBodies(t, p, topic, "old", 10)
	pc, first := startCollector(t, c, group, topic)
	waitFor(t, 30*time.Second, "the first 10", func() bool { return first.distinct() == 10 })
	// The client commits offsets every 5 s (and once more, oneway, as it
	// shuts down; a close with unread data resets the connection and can
	// drop that last one, on any broker). Restart once the broker holds them.
	waitFor(t, 30*time.Second, "the committed offsets", func() bool { return committed(t, c.b.Addr(), group, topic) == 10 })
	pc.Shutdown()
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	c.startBroker()
	if n := committed(t, c.b.Addr(), group, topic); n != 10 {
		t.Fatalf("after the restart the broker holds offsets summing to %d, want 10", n)
	}
	for i := 0; i < 10; i++ {
		m := primitive.NewMessage(topic, []byte("new"+strconv.Itoa(i)))
		err := fmt.Errorf("not sent")
		for try := 0; try < 50 && err != nil; try++ { // the client reconnects to the restarted broker
			_, err = p.SendSync(context.Background(), m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	pc2, second := startCollector(t, c, group, topic)
	defer pc2.Shutdown()
	waitFor(t, 60*time.Second, "the 10 new messages", func() bool {
		for i := 0; i < 10; i++ {
			if !second.has("new" + strconv.Itoa(i)) {
				return false
			}
		}
		return true
	})
	for i := 0; i < 10; i++ {
		if second.has("old" + strconv.Itoa(i)) {
			t.Fatalf("old%d consumed again after the broker restart: offsets were lost", i)
		}
	}
}

// committed sums a group's committed offsets over the topic's 4 queues.
func committed(t *testing.T, addr, group, topic string) int64 {
	t.Helper()
	conn, err := remoting.Dial(context.Background(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sum int64
	for q := 0; q < 4; q++ {
		r, err := conn.Invoke(context.Background(), remoting.NewRequest(remoting.ReqQueryConsumerOffset,
			map[string]string{"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(q)}))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(r.Ext("offset"), 10, 64)
		sum += n
	}
	return sum
}
