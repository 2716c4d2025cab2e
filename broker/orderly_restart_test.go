package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/namesrv"
)

// A broker restart does not hand a locked orderly queue over: member A is
// in a handler call on a queue it lost in a rebalance (it renews every
// 20 s), member B waits for the queue's lock. Right after a restart B's
// next try must not get it (the lock owners are restored), or B would run
// the queue's message beside A's call. Production lock lifetime and
// renewal interval.
func TestOrderlyQueueNotHandedOverByABrokerRestart(t *testing.T) {
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	o.BrokerName = "handover-b"
	b := startBroker(t, o)

	newClient := func() *client.Client {
		c, err := client.New(client.Options{NamesrvAddrs: []string{ns.Addr()}, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, group := fmt.Sprintf("ord-%d", time.Now().UnixNano()), fmt.Sprintf("og-%d", time.Now().UnixNano())
	prod, err := newClient().NewProducer(client.ProducerOptions{Group: "ord-pg"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := prod.Send(ctx, &client.Message{Topic: topic, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every queue holding a message", func() bool {
		n := 0
		for _, q := range b.Store().Queues() {
			if q.Topic == topic && q.MaxOffset > 0 {
				n++
			}
		}
		return n == 4
	})

	var mu sync.Mutex
	running := map[int32]string{} // queue -> member whose call runs
	overlap := ""
	aBlocked := map[int32]bool{}
	done := map[string]bool{}
	release := make(chan struct{})
	handler := func(name string) client.MessageHandler {
		return func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
			q := msgs[0].QueueID
			mu.Lock()
			if other, ok := running[q]; ok {
				overlap = fmt.Sprintf("queue %d: %s's call started while %s's still runs", q, name, other)
			}
			running[q] = name
			first := name == "A" && !aBlocked[q]
			if first {
				aBlocked[q] = true
			}
			mu.Unlock()
			if first {
				<-release // a slow downstream system that ignores ctx
			}
			mu.Lock()
			delete(running, q)
			done[string(msgs[0].Body)] = true
			mu.Unlock()
			return client.ConsumeSuccess, nil
		}
	}
	opts := client.ConsumerOptions{Group: group, Orderly: true, FromWhere: client.ConsumeFromFirst,
		RebalanceInterval: 300 * time.Millisecond}
	start := func(name string) *client.PushConsumer {
		pc, err := newClient().NewPushConsumer(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Subscribe(topic, "*", handler(name)); err != nil {
			t.Fatal(err)
		}
		if err := pc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	start("A")
	waitFor(t, "A running a call on each of the 4 queues", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(aBlocked) == 4
	})
	start("B")
	// B waits for A's two queues (A still runs calls on them). Restart
	// the broker.
	waitFor(t, "B a member of the group", func() bool { v, _ := b.groupTable().info(group); return len(v.ClientIDs) == 2 })
	b.Close()
	o.ListenAddr = b.Addr()
	b = startBroker(t, o)

	// B must not get A's queues while A's calls on them run. Watch for
	// 6 s (the handover, when it happened, came within a second).
	deadline := time.Now().Add(6 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		mu.Lock()
		o := overlap
		mu.Unlock()
		if o != "" {
			t.Fatalf("two handler calls on one orderly queue: %s", o)
		}
		<-tick.C
	}
	close(release)
	waitFor(t, "every message consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 8
	})
}
