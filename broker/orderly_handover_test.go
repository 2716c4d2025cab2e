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

// An orderly member of halfback's client that loses a queue in a
// rebalance keeps running the handler call it is in; until that call
// returns it keeps renewing the queue's lock, so the new owner does not
// start consuming the queue while the old call still runs (it stopped
// renewing at once, and the lock expired under the running call). The
// broker's lock lifetime is cut to 2 s here (60 s in production) so that
// the test need not wait a minute.
func TestOrderlyDrainingQueueKeepsItsLock(t *testing.T) { orderlyHandover(t, false) }

// An orderly member that is closing keeps renewing its queues' locks until
// its running handler calls return, so that a member that joins meanwhile
// does not take a queue (once its lock expired) under a running call
// (Close stopped renewing at once).
func TestOrderlyClosingMemberKeepsItsLocks(t *testing.T) { orderlyHandover(t, true) }

// orderlyHandover runs member A of an orderly group into a handler call on
// each of its 4 queues, then (closing A first with closeA) starts member B,
// and fails if B's and A's calls on one queue ever overlap.
func orderlyHandover(t *testing.T, closeA bool) {
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	o.BrokerName = "handover-b"
	b := startBroker(t, o)
	const maxLive = 2 * time.Second
	b.lockTable().setClock(time.Now, maxLive)

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
		LockRenewInterval: 200 * time.Millisecond, RebalanceInterval: 300 * time.Millisecond}
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
	a := start("A")
	waitFor(t, "A running a call on each of the 4 queues", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(aBlocked) == 4
	})
	if closeA {
		// A is shutting down: Close waits for its running calls.
		go a.Close()
	}
	start("B")

	// B gets two of the queues; A gives them up but its calls on them
	// still run. Watch for three broker lock lifetimes.
	deadline := time.Now().Add(3 * maxLive)
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
