package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	temporalclient "go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/workflows"
)

// cliEnv names the Temporal CLI the end-to-end tests start a dev server
// with; `make test` builds the pinned one and sets it. Without it the
// tests fail: they never download a server.
const cliEnv = "TEMPORAL_CLI_PATH"

// subprocessEnv makes the test binary run the worker's main instead of
// the tests (the crash test's worker process).
const subprocessEnv = "HALFBACK_E2E_WORKER_PROCESS"

// dev is the package's one Temporal dev server, started by the first test
// that needs it and stopped by TestMain.
var dev struct {
	once sync.Once
	srv  *testsuite.DevServer
	log  *os.File
	err  error
}

func TestMain(m *testing.M) {
	if os.Getenv(subprocessEnv) == "1" {
		// The worker's own main, signal handling included; the config
		// comes from the HALFBACK_* environment only.
		os.Args = []string{os.Args[0], "--config", ""}
		main()
		os.Exit(0)
	}
	code := m.Run()
	if dev.srv != nil {
		if err := dev.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the Temporal dev server:", err)
		}
	}
	if dev.log != nil {
		dev.log.Close()
		os.Remove(dev.log.Name())
	}
	os.Exit(code)
}

// devServer returns the host:port of the dev server, starting it on
// first use from the CLI named by TEMPORAL_CLI_PATH.
func devServer(t *testing.T) string {
	t.Helper()
	path := os.Getenv(cliEnv)
	if path == "" {
		t.Fatalf("%s is not set: run `make test`, which builds the pinned Temporal CLI and sets it, "+
			"or point it at a temporal binary", cliEnv)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v (run `make temporal-cli`)", cliEnv, path, err)
	}
	dev.once.Do(func() { dev.srv, dev.err = startDevServer(path) })
	if dev.err != nil {
		t.Fatalf("start the Temporal dev server %s: %v", path, dev.err)
	}
	return dev.srv.FrontendHostPort()
}

func startDevServer(path string) (*testsuite.DevServer, error) {
	f, err := os.CreateTemp("", "halfback-e2e-temporal-*.log")
	if err != nil {
		return nil, err
	}
	dev.log = f
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  path,
		ClientOptions: &temporalclient.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(f, nil)))},
		LogLevel:      "warn",
		Stdout:        f,
		Stderr:        f,
	})
	if err != nil {
		out, _ := os.ReadFile(f.Name())
		return nil, fmt.Errorf("%w; its output:\n%s", err, out)
	}
	return srv, nil
}

// testConfig is a config for one test: a fresh data directory, the
// broker and name server on free ports, delay levels of a second or two
// (an unpaid order is cancelled after about three seconds), check-backs
// within seconds, and a task queue of the test's own on the dev server.
func testConfig(t *testing.T, temporalHostPort string) *config.Config {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.DataDir = t.TempDir()
	cfg.Store.SegmentSize = 16 << 20
	cfg.Broker.ListenAddr = "127.0.0.1:0"
	cfg.Namesrv.ListenAddr = "127.0.0.1:0"
	cfg.Broker.DelayLevels = "1s 1s 1s 1s 1s 1s 1s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s"
	// Check back a transaction nobody ended after 5 s (a step that is
	// merely slow on a loaded machine is left alone), then every second.
	cfg.Broker.TransactionTimeout = 5 * time.Second
	cfg.Broker.TransactionCheckInterval = time.Second
	cfg.Temporal.HostPort = temporalHostPort
	cfg.Temporal.TaskQueue = "e2e-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	cfg.Payment.CheckLevel = 1
	cfg.Payment.MaxChecks = 3
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testLogger returns a logger whose output the test prints if it fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	var buf testutil.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// event is one message the observer received.
type event struct {
	msgID, tag, orderID string
}

// observer consumes every message of order-events with a group of its
// own, from the first offset, and records them.
type observer struct {
	mu     sync.Mutex
	events []event
}

func observe(t *testing.T, ctx context.Context, nsAddrs []string, log *slog.Logger) *observer {
	t.Helper()
	c, err := app.NewClient(nsAddrs, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: "e2e-observer", FromWhere: client.ConsumeFromFirst})
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{}
	err = pc.Subscribe(workflows.TopicOrderEvents, "*", func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, m := range msgs {
			var key string
			if len(m.Keys) > 0 {
				key = m.Keys[0]
			}
			o.events = append(o.events, event{msgID: m.MsgID, tag: m.Tags, orderID: key})
		}
		return client.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return o
}

// byTag returns, per tag, the orders with a message of that tag and the
// distinct message ids of each (a redelivery repeats an id).
func (o *observer) byTag() map[string]map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]map[string][]string{}
	seen := map[event]bool{}
	for _, e := range o.events {
		if seen[e] {
			continue
		}
		seen[e] = true
		if out[e.tag] == nil {
			out[e.tag] = map[string][]string{}
		}
		out[e.tag][e.orderID] = append(out[e.tag][e.orderID], e.msgID)
	}
	return out
}

// keysOf returns the sorted keys of m.
func keysOf[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// stepTxnID returns the transaction id of step in the workflow id's run
// chain (workflows.StepTxnID of its first run).
func stepTxnID(t *testing.T, ctx context.Context, tc temporalclient.Client, id, step string) string {
	t.Helper()
	d, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe workflow %s: %v", id, err)
	}
	return workflows.StepTxnID(id, d.GetWorkflowExecutionInfo().GetFirstRunId(), step)
}
