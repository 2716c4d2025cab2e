package broker

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func invokeWithin(c *remoting.Conn, code int16, ext map[string]string, body []byte, wait time.Duration) (*remoting.Command, error) {
	req := remoting.NewRequest(code, ext)
	req.Body = body
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.Invoke(ctx, req)
}

// groupTableSizes returns the sizes of the group table's maps.
func groupTableSizes(b *Broker) (consumers, producers, hooked int) {
	g := b.groupTable()
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.consumers), len(g.producers), len(g.hooked)
}

func pullHolderSizes(b *Broker) (byQueue, byConn, bytes, n int) {
	h := b.pulls
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byQueue), len(h.byConn), len(h.bytes), h.n
}

// 2,000 connections heartbeat as producers and consumers, hold a pull,
// lock a queue, then close: the broker's per-connection state, goroutines
// and file descriptors return to their baseline.
func TestConnectionChurnReturnsToBaseline(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c0 := dial(t, b)
	mustSend(t, c0, "churn", 0, "", "x")
	waitQueue(t, b, "churn", 0, 1)
	hbOK(t, c0, consumerHeartbeat("warm", "churn", "cg-warm")) // retry topic creation etc. happen once
	c0.Close()
	<-c0.Done()
	waitFor(t, "warm-up connection gone", func() bool { return len(b.srv.Conns()) == 0 })
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	const conns, workers = 2000, 40
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < conns; i += workers {
				c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{})
				if err != nil {
					errs <- err
					return
				}
				id := "client-" + strconv.Itoa(i)
				body := fmt.Sprintf(`{"clientID":%q,"producerDataSet":[{"groupName":"pg-%d"}],"consumerDataSet":[]}`, id, i%7)
				if r, err := invokeWithin(c, remoting.ReqHeartBeat, nil, []byte(body), 10*time.Second); err != nil || r.Code != remoting.RespSuccess {
					errs <- fmt.Errorf("producer heartbeat: %v %v", r, err)
				}
				if r, err := invokeWithin(c, remoting.ReqHeartBeat, nil, consumerHeartbeat(id, "churn", "cg-"+strconv.Itoa(i%13)), 10*time.Second); err != nil || r.Code != remoting.RespSuccess {
					errs <- fmt.Errorf("consumer heartbeat: %v %v", r, err)
				}
				// A held pull (the client stops waiting for it first).
				ext := pullExt("churn", 0, 1, pullFlagSuspend, "*", 60000)
				ext["consumerGroup"] = "cg-" + strconv.Itoa(i%13)
				_, _ = invokeWithin(c, remoting.ReqPullMessage, ext, nil, 20*time.Millisecond)
				c.Close()
				<-c.Done()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := 20 * time.Second
	testutil.WaitFor(t, deadline, "server connections gone", func() bool { return len(b.srv.Conns()) == 0 })
	testutil.WaitFor(t, deadline, "group table empty", func() bool {
		c, p, h := groupTableSizes(b)
		return c == 0 && p == 0 && h == 0
	})
	testutil.WaitFor(t, deadline, "pull holder empty", func() bool {
		q, c, by, n := pullHolderSizes(b)
		return q == 0 && c == 0 && by == 0 && n == 0
	})
	testutil.WaitFor(t, deadline, fmt.Sprintf("goroutines back to %d", baseG), func() bool {
		return runtime.NumGoroutine() <= baseG+2
	})
	testutil.WaitFor(t, deadline, fmt.Sprintf("fds back to %d", baseFD), func() bool { return openFDs(t) <= baseFD+2 })
}

// 300 topics are created, sent to, pulled by a group, committed and
// deleted: their queues, offsets, file descriptors and metric series
// (messages.in / messages.out, which were reported forever) go.
func TestTopicChurnForgetsMetricSeries(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	o := testOptions(t)
	o.MeterProvider = mp
	b := startBroker(t, o)
	c := dial(t, b)
	baseFD := openFDs(t)
	const topics = 300
	for i := range topics {
		topic := "tmp-" + strconv.Itoa(i)
		if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": topic, "readQueueNums": "2", "writeQueueNums": "2"}, nil); r.Code != remoting.RespSuccess {
			t.Fatalf("create: %d %s", r.Code, r.Remark)
		}
		mustSend(t, c, topic, 0, "", "x")
		waitQueue(t, b, topic, 0, 1)
		if r := pull(t, c, topic, 0, 0, 0, "*", 0); r.Code != remoting.RespSuccess {
			t.Fatalf("pull: %d %s", r.Code, r.Remark)
		}
		if r := updateOffset(t, c, "cg", topic, 0, 1); r.Code != remoting.RespSuccess {
			t.Fatalf("commit: %d %s", r.Code, r.Remark)
		}
		if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil); r.Code != remoting.RespSuccess {
			t.Fatalf("delete: %d %s", r.Code, r.Remark)
		}
	}
	// Store-side state does go: queues, offsets, file descriptors.
	for _, q := range b.Store().Queues() {
		if len(q.Topic) > 4 && q.Topic[:4] == "tmp-" {
			t.Fatalf("queue %s/%d survived its topic", q.Topic, q.QueueID)
		}
	}
	if n := len(b.offsetTable().topic("tmp-0")); n != 0 {
		t.Fatalf("offsets of a deleted topic kept: %d", n)
	}
	if fd := openFDs(t); fd > baseFD+4 {
		t.Errorf("open fds %d after deleting every topic, baseline %d", fd, baseFD)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					if v, ok := p.Attributes.Value("messaging.destination.name"); ok && len(v.AsString()) > 4 && v.AsString()[:4] == "tmp-" {
						series[m.Name]++
					}
				}
			}
		}
	}
	if len(series) != 0 {
		t.Fatalf("after deleting all %d topics, series of deleted topics still reported: %v", topics, series)
	}
}

// holdingNamesrv is a name server that answers REGISTER_BROKER (and
// UNREGISTER_BROKER) SUCCESS, but while hold is set holds each
// registration until released.
type holdingNamesrv struct {
	srv      *remoting.Server
	hold     atomic.Bool
	release  chan struct{}
	held     atomic.Int64 // registrations being held
	answered atomic.Int64 // registrations answered
}

func startHoldingNamesrv(t *testing.T) *holdingNamesrv {
	t.Helper()
	ns := &holdingNamesrv{release: make(chan struct{})}
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqRegisterBroker, func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if ns.hold.Load() {
			ns.held.Add(1)
			select {
			case <-ns.release:
			case <-ctx.Done():
			}
			ns.held.Add(-1)
		}
		ns.answered.Add(1)
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	mux.HandleFunc(remoting.ReqUnregisterBroker, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: mux})
	if err != nil {
		t.Fatal(err)
	}
	ns.srv = srv
	t.Cleanup(func() { srv.Close() })
	return ns
}

func seenTopics(b *Broker) int {
	r := b.reg.Load()
	r.seenMu.RLock()
	defer r.seenMu.RUnlock()
	return len(r.seen)
}

// 200 topics are created by a send and deleted while a registration with
// the name server is under way (a slow name server, or simply before the
// registrar's next round): the registrar's set of announced topics, which
// kept the name of every topic that no registration ever carried, goes
// back to its size before them.
func TestTopicChurnBetweenRegistrationsForgetsAnnouncedTopics(t *testing.T) {
	ns := startHoldingNamesrv(t)
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.srv.Addr().String()}
	b := startBroker(t, o)
	c := dial(t, b)
	base := seenTopics(b)

	ns.hold.Store(true)
	b.topicsChanged()
	testutil.WaitFor(t, 5*time.Second, "a registration held", func() bool { return ns.held.Load() > 0 })
	const topics = 200
	for i := range topics {
		topic := "tmp-" + strconv.Itoa(i)
		mustSend(t, c, topic, 0, "", "x") // created by the send
		waitQueue(t, b, topic, 0, 1)      // dispatched: announced
		if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil); r.Code != remoting.RespSuccess {
			t.Fatalf("delete: %d %s", r.Code, r.Remark)
		}
	}
	ns.hold.Store(false)
	after := ns.answered.Load()
	close(ns.release)
	b.topicsChanged()
	// The held round, then one that began after every deletion.
	testutil.WaitFor(t, 10*time.Second, "two registrations answered", func() bool { return ns.answered.Load() >= after+2 })
	if n := seenTopics(b); n > base {
		t.Fatalf("the registrar remembers %d topics after %d were created and deleted, %d before", n, topics, base)
	}
}
