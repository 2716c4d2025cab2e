package txnbridgetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/orders"
)

// Defaults of BrokerOptions: short enough for tests, long enough that
// "not delivered yet" right after a send is not a race.
const (
	DefaultLevels        = "300ms 600ms 900ms"
	DefaultTxnTimeout    = 500 * time.Millisecond
	DefaultCheckInterval = 500 * time.Millisecond
)

// BrokerOptions adjust StartBroker; the zero value means the defaults.
type BrokerOptions struct {
	// Levels are the delay levels. Default DefaultLevels.
	Levels string
	// TxnTimeout is the age of a half message at its first check-back,
	// CheckInterval the time between checks. Defaults DefaultTxnTimeout
	// and DefaultCheckInterval.
	TxnTimeout, CheckInterval time.Duration
	// Logger receives the servers' logs. Default: Logger(t).
	Logger *slog.Logger
}

// Stack is a started name server and broker.
type Stack struct {
	Namesrv     *namesrv.Server
	Broker      *broker.Broker
	NamesrvAddr string
	BrokerName  string
}

var seq atomic.Int64

// Logger returns a logger for one of t's servers, clients or workers.
// With HALFBACK_TEST_LOG set it writes everything to stderr as it
// happens; otherwise every logger of t writes, in time order, into one
// buffer of t's that keeps the last logTail bytes and is printed if t
// fails, so that a failure in CI says what the broker, the client and
// Temporal's worker were doing.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("HALFBACK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(testLog(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testLogs holds each running test's log tail (testing.TB → *tailBuffer).
var testLogs sync.Map

// testLog returns t's log tail, making it (and the cleanup that prints
// it if t failed) on the first call.
func testLog(t testing.TB) *tailBuffer {
	v, loaded := testLogs.LoadOrStore(t, new(tailBuffer))
	b := v.(*tailBuffer)
	if loaded {
		return b
	}
	t.Cleanup(func() {
		testLogs.Delete(t)
		if t.Failed() {
			t.Logf("log of the test's servers, clients and workers (at most its last %d KiB):\n%s", logTail>>10, b.String())
		}
	})
	return b
}

// logTail is how much of a test's log Logger keeps.
const logTail = 256 << 10

// tailBuffer keeps the last logTail bytes written to it (whole records,
// give or take the first).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > 2*logTail {
		b.b = append(b.b[:0], b.b[len(b.b)-logTail:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.b) > logTail {
		return string(b.b[len(b.b)-logTail:])
	}
	return string(b.b)
}

// StartBroker starts a name server and a broker registered with it.
func StartBroker(t testing.TB, o BrokerOptions) *Stack {
	t.Helper()
	if o.Levels == "" {
		o.Levels = DefaultLevels
	}
	if o.TxnTimeout == 0 {
		o.TxnTimeout = DefaultTxnTimeout
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Logger == nil {
		o.Logger = Logger(t)
	}
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: o.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	levels, err := delay.ParseLevels(o.Levels)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("broker-%d-%d", os.Getpid(), seq.Add(1))
	b, err := broker.Open(broker.Options{
		Store: store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 16 << 20,
			CheckpointInterval: 100 * time.Millisecond},
		Delay:        delay.Options{Levels: levels, CheckpointInterval: 100 * time.Millisecond},
		Txn:          txn.Options{Timeout: o.TxnTimeout, CheckInterval: o.CheckInterval},
		ListenAddr:   "127.0.0.1:0",
		NamesrvAddrs: []string{ns.Addr()},
		BrokerName:   name,
		Logger:       o.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &Stack{Namesrv: ns, Broker: b, NamesrvAddr: ns.Addr(), BrokerName: name}
}

// NewClient returns a client of the name server nsAddr with short route
// refresh and heartbeat intervals, closed when the test ends.
func NewClient(t testing.TB, nsAddr string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{NamesrvAddrs: []string{nsAddr}, Logger: Logger(t),
		RouteRefreshInterval: time.Second, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// OpenDB opens an order database in a temporary directory, closed when
// the test ends.
func OpenDB(t testing.TB) *orders.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "orders.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := orders.Open(context.Background(), orders.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// CreateOrdersDB creates the order database of the config file at
// configPath, as a running worker has (the starter and payer open only an
// existing one).
func CreateOrdersDB(t testing.TB, configPath string) {
	t.Helper()
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := app.OpenOrders(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TemporalCLIEnv names the variable `make test` sets to the pinned
// Temporal CLI.
const TemporalCLIEnv = "TEMPORAL_CLI_PATH"

// TemporalCLI returns the path of the Temporal CLI: $TEMPORAL_CLI_PATH,
// else temporal in $GOBIN or $GOPATH/bin (where `go install` puts the
// pinned one), else on $PATH; "" if there is none.
func TemporalCLI() string {
	if p := os.Getenv(TemporalCLIEnv); p != "" {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(string(trimNewline(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "temporal"); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	return ""
}

// StartDevServer starts a Temporal dev server (in-memory, on a free
// port) from TemporalCLI, stopped when the test ends. It fails the test
// when there is no CLI (`make test` builds the pinned one).
func StartDevServer(t testing.TB) *testsuite.DevServer {
	t.Helper()
	cli := TemporalCLI()
	if cli == "" {
		t.Fatal("no Temporal CLI: run `make test`, go install the pinned temporal, or set " + TemporalCLIEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{ExistingPath: cli, LogLevel: "error",
		Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatalf("start the Temporal dev server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
