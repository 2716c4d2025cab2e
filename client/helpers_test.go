package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/namesrv"
)

// testLogger is silent unless CLIENT_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CLIENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testLevels are the brokers' delay levels in tests: short, and long enough
// that "not delivered yet" right after a send is not a race.
const testLevels = "300ms 600ms 900ms"

// cluster is an in-process name server and broker on loopback ports.
type cluster struct {
	ns   *namesrv.Server
	b    *broker.Broker
	name string // the broker's name
}

// startCluster starts a name server and a broker registered with it, both
// closed when the test ends. mods adjust the options.
func startCluster(t testing.TB, nsMod func(*namesrv.Options), bMod func(*broker.Options)) *cluster {
	t.Helper()
	nsOpts := namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: testLogger()}
	if nsMod != nil {
		nsMod(&nsOpts)
	}
	ns, err := namesrv.Open(nsOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	o := brokerOptions(t.TempDir(), ns.Addr(), uniq("broker"))
	if bMod != nil {
		bMod(&o)
	}
	b := openBroker(t, o)
	return &cluster{ns: ns, b: b, name: o.BrokerName}
}

// brokerOptions are the options of a test broker named name, storing in
// dir, registering with the name server at nsAddr, on a free port.
func brokerOptions(dir, nsAddr, name string) broker.Options {
	levels, _ := delay.ParseLevels(testLevels)
	return broker.Options{
		Store: store.Options{Dir: dir, FlushType: store.SyncFlush, SegmentSize: 16 << 20,
			CheckpointInterval: 100 * time.Millisecond},
		Delay:        delay.Options{Levels: levels, CheckpointInterval: 100 * time.Millisecond},
		ListenAddr:   "127.0.0.1:0",
		NamesrvAddrs: []string{nsAddr},
		BrokerName:   name,
		Logger:       testLogger(),
	}
}

// openBroker opens a broker, closed when the test ends (a second Close
// is harmless).
func openBroker(t testing.TB, o broker.Options) *broker.Broker {
	t.Helper()
	b, err := broker.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// startNamesrv starts a name server on addr ("127.0.0.1:0" for a free
// port), closed when the test ends.
func startNamesrv(t testing.TB, addr string) *namesrv.Server {
	t.Helper()
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: addr, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// newClient starts a Client of the cluster's name server, closed when the
// test ends.
func newClient(t testing.TB, nsAddr string, mod func(*Options)) *Client {
	t.Helper()
	o := Options{NamesrvAddrs: []string{nsAddr}, Logger: testLogger()}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newProducer creates a producer, failing the test on error.
func newProducer(t testing.TB, c *Client, o ProducerOptions) *Producer {
	t.Helper()
	if o.Group == "" {
		o.Group = uniq("pg")
	}
	p, err := c.NewProducer(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stored returns every message the broker's store holds for topic, by
// queue then offset.
func (c *cluster) stored(t testing.TB, topic string) []*MessageExt {
	t.Helper()
	var out []*MessageExt
	st := c.b.Store()
	for _, q := range st.Queues() {
		if q.Topic != topic {
			continue
		}
		res, err := st.GetMessages(topic, q.QueueID, q.MinOffset, store.GetOptions{MaxMessages: 10000, MaxBytes: 64 << 20})
		if err != nil {
			t.Fatalf("GetMessages %s/%d: %v", topic, q.QueueID, err)
		}
		exts, err := message.DecodeAll(res.Records)
		if err != nil {
			t.Fatalf("decode %s/%d: %v", topic, q.QueueID, err)
		}
		for i := range exts {
			out = append(out, newMessageExt(&exts[i], slog.Default()))
		}
	}
	return out
}

// waitStored waits until the store holds n messages for topic (a send is
// answered once stored; its consume queue entry follows) and returns them.
func (c *cluster) waitStored(t testing.TB, topic string, n int) []*MessageExt {
	t.Helper()
	var got []*MessageExt
	waitFor(t, fmt.Sprintf("%d messages in %s", n, topic), func() bool { got = c.stored(t, topic); return len(got) >= n })
	if len(got) != n {
		t.Fatalf("%d messages in %s, want %d", len(got), topic, n)
	}
	return got
}

// waitFor polls cond until it holds or 15 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, what, cond)
}

// waitRouted waits until the name server at nsAddr routes topic with n
// queues: a consumer started before would take the queues of the route
// it read, and one that rebalances seldom would keep them.
func waitRouted(t testing.TB, nsAddr, topic string, n int) {
	t.Helper()
	probe := newClient(t, nsAddr, nil)
	waitFor(t, fmt.Sprintf("%s routed with %d queues", topic, n), func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == n
	})
}

// ctxT returns a context that ends after d or with the test.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var (
	seq atomic.Int64
	run = fmt.Sprintf("%x", time.Now().UnixNano()%(1<<24))
)

// uniq returns a name unique to this test process.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, run, seq.Add(1))
}

// clientGoroutines returns the stacks of goroutines, other than the
// caller's and the fake broker's, that run this package's code or a
// connection it dialled.
// noGoroutines fails the test if list still finds goroutines after what,
// polling for up to 2 s: Close waits for its goroutines, but one that has
// just signalled Done may still be on its way out.
func noGoroutines(t testing.TB, what string, list func() []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	left := list()
	for ; len(left) > 0 && time.Now().Before(deadline); left = list() {
		runtime.Gosched()
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines outlived %s:\n%s", len(left), what, strings.Join(left, "\n\n"))
	}
}

func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	var out []string
	for _, s := range stacks[1:] { // the first is the caller's
		if strings.Contains(s, "(*fakeBroker)") { // the server side of the test
			continue
		}
		if strings.Contains(s, "halfback/client.") || strings.Contains(s, "remoting.Dial") {
			out = append(out, s)
		}
	}
	return out
}
