package compat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/namesrv"
)

func TestMain(m *testing.M) {
	if lvl := os.Getenv("COMPAT_CLIENT_LOG"); lvl != "" {
		rlog.SetLogLevel(lvl)
	} else {
		rlog.SetLogLevel("error")
	}
	if os.Getenv(childDirEnv) != "" {
		runChildBroker()
		return
	}
	os.Exit(m.Run())
}

func quiet() *slog.Logger {
	if os.Getenv("COMPAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// cluster is an in-process name server and broker on loopback ports.
type cluster struct {
	t      *testing.T
	ns     *namesrv.Server
	b      *broker.Broker
	opts   broker.Options
	nsAddr string
}

func startCluster(t *testing.T) *cluster { return startClusterWith(t, nil) }

// startClusterWith is startCluster with mod changing the broker's options.
func startClusterWith(t *testing.T, mod func(*broker.Options)) *cluster {
	t.Helper()
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	levels, _ := delay.ParseLevels("200ms 400ms 600ms 800ms 1s")
	c := &cluster{t: t, ns: ns, nsAddr: ns.Addr()}
	c.opts = broker.Options{
		Store: store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 64 << 20},
		Delay: delay.Options{Levels: levels},
		// Not an ephemeral port: a restart comes back on it, and another
		// connection could take one of those while the broker is down.
		ListenAddr:   testutil.FreeAddr(t),
		NamesrvAddrs: []string{ns.Addr()},
		// The client keeps process-wide state by broker name: each test's
		// cluster needs its own.
		BrokerName:        uniq("broker"),
		RegisterInterval:  time.Second,
		MaxReconsumeTimes: 16,
		Logger:            quiet(),
	}
	if mod != nil {
		mod(&c.opts)
	}
	c.startBroker()
	return c
}

func (c *cluster) startBroker() {
	c.t.Helper()
	b, err := broker.Open(c.opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.b = b
	c.t.Cleanup(func() { b.Close() })
}

func (c *cluster) resolver() primitive.NsResolver {
	return primitive.NewPassthroughResolver([]string{c.nsAddr})
}

var (
	seq atomic.Int64
	// run tells this test process's names from an earlier run's: a
	// broadcasting consumer keeps offsets in files named by group and
	// instance under ~/.rocketmq_offsets, which outlive the process.
	run = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
)

// uniq returns a name unique to this test process and run (the client keeps
// process-wide state per group and instance name, and files per group).
func uniq(prefix string) string { return fmt.Sprintf("%s-%s-%d", prefix, run, seq.Add(1)) }

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// received collects message bodies from consumer callbacks.
type received struct {
	mu   sync.Mutex
	msgs map[string]int
	exts []*primitive.MessageExt
}

func newReceived() *received { return &received{msgs: map[string]int{}} }

func (r *received) add(ms ...*primitive.MessageExt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		r.msgs[string(m.Body)]++
		r.exts = append(r.exts, m)
	}
}

// atLeast reports whether every body of bodies was received n times or more.
func (r *received) atLeast(n int, bodies ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range bodies {
		if r.msgs[b] < n {
			return false
		}
	}
	return true
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *received) has(body string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[body] > 0
}

// startCollector starts a clustering consumer of group on topic that
// collects every message and succeeds.
func startCollector(t *testing.T, c *cluster, group, topic string) (rocketmq.PushConsumer, *received) {
	t.Helper()
	r := newReceived()
	pc := newPushConsumer(t, c, group, topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			r.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	return pc, r
}

// sendBodies sends prefix0 .. prefix(n-1) to topic.
func sendBodies(t *testing.T, p rocketmq.Producer, topic, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(prefix+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
}
