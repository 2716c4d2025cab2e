package broker

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// testLogger is silent unless BROKER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testOptions are small, fast options on port 0 in a fresh directory.
func testOptions(t testing.TB) Options {
	dir := t.TempDir()
	levels, _ := delay.ParseLevels("100ms 200ms 300ms 400ms 500ms")
	return Options{
		Store: store.Options{Dir: dir, FlushType: store.SyncFlush, SegmentSize: 16 << 20,
			CheckpointInterval: 100 * time.Millisecond},
		Delay:           delay.Options{Levels: levels, CheckpointInterval: 100 * time.Millisecond},
		ListenAddr:      "127.0.0.1:0",
		LongPollTimeout: 2 * time.Second,
		Logger:          testLogger(),
	}
}

// startBroker opens a broker and closes it when the test ends.
func startBroker(t testing.TB, o Options) *Broker {
	t.Helper()
	b, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// dial connects a raw remoting client, closed when the test ends.
func dial(t testing.TB, b *Broker) *remoting.Conn {
	t.Helper()
	return remotetest.Dial(t, b.Addr())
}

// call invokes a request and fails the test on a transport error.
func call(t testing.TB, c *remoting.Conn, code int16, ext map[string]string, body []byte) *remoting.Command {
	t.Helper()
	return remotetest.Call(t, c, code, ext, body)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, what, cond)
}
