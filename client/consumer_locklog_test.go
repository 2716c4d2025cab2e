package client

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// countLog is a slog.Handler that counts records by level and message.
type countLog struct {
	mu sync.Mutex
	n  map[string]int // by level + " " + message
}

func (c *countLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *countLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *countLog) WithGroup(string) slog.Handler            { return c }
func (c *countLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[r.Level.String()+" "+r.Message]++
	return nil
}

// count returns how many records at level (all levels if "") have msg.
func (c *countLog) count(level, msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.n {
		lv, m, _ := strings.Cut(k, " ")
		if m == msg && (level == "" || lv == level) {
			n += v
		}
	}
	return n
}

// An orderly queue with a batch waiting for its lock asks for it again
// every second at most while its broker refuses connections; each failed
// request used to log a warning, a line a second per such queue for as
// long as the broker is down. The warning is now logged once when locking
// at the broker starts to fail, and a line once it works again; the
// failures between are debug records.
func TestLockFailuresLoggedOncePerOutage(t *testing.T) {
	const failed, still, again = "client: locking queues failed", "client: locking queues still failing",
		"client: locking queues works again"
	ns := startNamesrv(t, "127.0.0.1:0")
	o := brokerOptions(t.TempDir(), ns.Addr(), uniq("broker"))
	o.ListenAddr = testutil.FreeAddr(t) // back on the same address
	b := openBroker(t, o)
	topic, group := uniq("ledger"), uniq("og")
	createTopicOn(t, o.ListenAddr, topic, 1)
	logs := &countLog{n: map[string]int{}}
	c := newClient(t, ns.Addr(), func(o *Options) { o.Logger = slog.New(logs) })
	waitFor(t, "the topic routed", func() bool {
		qs, err := c.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 1
	})
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var got []string
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if string(msgs[0].Body) == "m0" {
			close(started)
			<-release
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(msgs[0].Body))
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		ConsumeBatchSize: 1}, topic, "*", h)
	p := newProducer(t, newClient(t, ns.Addr(), nil), ProducerOptions{})
	for _, body := range []string{"m0", "m1"} {
		if _, err := p.Send(ctxT(t, 5*time.Second), &Message{Topic: topic, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	var q *processQueue
	waitFor(t, "m1 buffered behind m0", func() bool {
		for _, pq := range pc.processQueues() {
			if pq.mq.Topic == topic {
				pq.mu.Lock()
				n := len(pq.buffer)
				pq.mu.Unlock()
				q = pq
				return n == 1
			}
		}
		return false
	})
	// m1's batch has to take the lock again (it expired, say), while the
	// broker is down.
	q.setLocked(false, time.Time{})
	b.Close()
	close(release)
	waitFor(t, "m1's lock asked for 8 times while the broker is down", func() bool {
		return logs.count("", failed)+logs.count("", still) >= 8
	})
	if n := logs.count("WARN", failed); n != 1 {
		t.Fatalf("%d %q warnings in %d failed lock requests, want 1", n, failed, logs.count("", failed)+logs.count("", still))
	}
	openBroker(t, o)
	waitFor(t, "m1 consumed once the broker is back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2 && got[1] == "m1"
	})
	if n, m := logs.count("WARN", failed), logs.count("INFO", again); n != 1 || m != 1 {
		t.Fatalf("%d %q warnings and %d %q lines, want 1 each", n, failed, m, again)
	}
}

// A queue's pulls fail once a second while its broker is down; each
// failure used to log a warning. The warning is now logged once per
// queue when its pulls start to fail, and a line once they work again.
func TestPullFailuresLoggedOncePerOutage(t *testing.T) {
	const failed, still, again = "client: pull failed", "client: pull still failing", "client: pull works again"
	ns := startNamesrv(t, "127.0.0.1:0")
	o := brokerOptions(t.TempDir(), ns.Addr(), uniq("broker"))
	o.ListenAddr = testutil.FreeAddr(t) // back on the same address
	b := openBroker(t, o)
	topic, group := uniq("pay"), uniq("cg")
	createTopicOn(t, o.ListenAddr, topic, 1)
	logs := &countLog{n: map[string]int{}}
	c := newClient(t, ns.Addr(), func(o *Options) { o.Logger = slog.New(logs) })
	got := make(chan string, 16)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		for _, m := range msgs {
			got <- string(m.Body)
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", h)
	p := newProducer(t, newClient(t, ns.Addr(), nil), ProducerOptions{})
	consumed := func(want string) {
		t.Helper()
		if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte(want)}); err != nil {
			t.Fatal(err)
		}
		select {
		case body := <-got:
			if body != want {
				t.Fatalf("consumed %q, want %q", body, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%q not consumed within 30 s", want)
		}
	}
	consumed("before") // the queue is pulled
	b.Close()
	failures := func() int { return logs.count("", failed) + logs.count("", still) }
	waitFor(t, "pulls failing while the broker is down", func() bool { return logs.count("WARN", failed) > 0 })
	warned, n := logs.count("WARN", failed), failures()
	queues := len(pc.processQueues()) // the topic's and the group's retry topic's
	if warned > queues {
		t.Fatalf("%d %q warnings for %d queues", warned, failed, queues)
	}
	waitFor(t, "more failed pulls", func() bool { return failures() >= n+2*queues })
	if w := logs.count("WARN", failed); w != warned {
		t.Fatalf("%d %q warnings after %d failed pulls, want still %d (one per queue)", w, failed, failures(), warned)
	}
	openBroker(t, o)
	consumed("after")
	if m := logs.count("INFO", again); m < 1 {
		t.Fatalf("%d %q lines after the pulls worked again, want at least 1", m, again)
	}
}
