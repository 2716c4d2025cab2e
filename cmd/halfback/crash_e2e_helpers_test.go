package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/telemetry"
)

// The end-to-end crash tests run `halfback broker` in a child process
// (this test binary again, with crashE2EEnv set, running the root command
// as main does) with the repository's config.yaml (SYNC_FLUSH, the
// embedded name server) and HALFBACK_* overrides for the data directory,
// the addresses and short delays, and SIGKILL it.
const (
	crashE2EEnv = "HALFBACK_TEST_CMD_CRASH_CHILD"
	// crashE2ELevels are the child's delay levels; the retry level of a
	// message consumed n times before, 3 + n, is 1 s or more here.
	crashE2ELevels = "300ms 600ms 1s 1200ms 1500ms"
)

func init() {
	if os.Getenv(crashE2EEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	root := newRootCmd()
	root.SetArgs([]string{"broker", "--" + configFlag, "../../config.yaml"})
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "halfback:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// crashBroker is a `halfback broker` child process and what it restarts
// with.
type crashBroker struct {
	t      *testing.T
	dir    string
	env    []string
	nsAddr string // the embedded name server's
	addr   string // the broker's
	cmd    *exec.Cmd
	out    *testutil.Buffer
	done   chan struct{}
	// clientLog holds the log of every client() of the test, at debug
	// level, shown with the child's output when the test fails.
	clientLog testutil.Buffer
	clients   atomic.Int32
}

// startCrashBroker starts a broker child on a data directory of its own,
// on addresses it keeps across restarts. extra are more HALFBACK_*
// settings.
func startCrashBroker(t *testing.T, extra ...string) *crashBroker {
	t.Helper()
	clearEnv(t)
	dir := t.TempDir()
	cb := &crashBroker{t: t, dir: dir, nsAddr: testutil.FreeAddr(t), addr: testutil.FreeAddr(t)}
	cb.env = append([]string{
		crashE2EEnv + "=1",
		"HALFBACK_STORE_DATADIR=" + dir,
		"HALFBACK_STORE_SEGMENTSIZE=" + strconv.Itoa(16<<20),
		"HALFBACK_BROKER_LISTENADDR=" + cb.addr,
		"HALFBACK_NAMESRV_LISTENADDR=" + cb.nsAddr,
		"HALFBACK_BROKER_BROKERNAME=" + uniqName("crash"),
		"HALFBACK_BROKER_DELAYLEVELS=" + crashE2ELevels,
		"HALFBACK_BROKER_TRANSACTIONTIMEOUT=500ms",
		"HALFBACK_BROKER_TRANSACTIONCHECKINTERVAL=500ms",
		"HALFBACK_LOG_LEVEL=info", // the ready line is at info
	}, extra...)
	t.Cleanup(cb.stop)
	cb.start()
	return cb
}

// start runs the child and waits for its ready line.
func (cb *crashBroker) start() {
	t := cb.t
	t.Helper()
	cb.out, cb.done = &testutil.Buffer{}, make(chan struct{})
	cb.cmd = exec.Command(os.Args[0], "-test.run=^$")
	cb.cmd.Env = append(os.Environ(), cb.env...)
	cb.cmd.Stdout = cb.out
	stderr, err := cb.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done, out, cmd := cb.done, cb.out, cb.cmd
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "halfback broker ready") {
				seen = true
				close(ready)
			}
			fmt.Fprintln(out, sc.Text())
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("broker child ended before it was ready (%v):\n%s", cmd.ProcessState, out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("broker child not ready in 60 s:\n%s", out.String())
	}
}

// kill SIGKILLs the child and waits for it to die of it.
func (cb *crashBroker) kill() {
	t := cb.t
	t.Helper()
	if err := cb.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-cb.done
	if ws, ok := cb.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("broker child ended with %v, want SIGKILL:\n%s", cb.cmd.ProcessState, cb.out.String())
	}
}

// restart kills the child with SIGKILL and starts it again on the same
// data directory and addresses.
func (cb *crashBroker) restart() {
	cb.t.Helper()
	cb.kill()
	cb.start()
}

// stop ends a running child with SIGTERM (a clean shutdown), SIGKILL if
// it takes too long, and shows its output if the test failed.
func (cb *crashBroker) stop() {
	select {
	case <-cb.done:
	default:
		_ = cb.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-cb.done:
		case <-time.After(20 * time.Second):
			_ = cb.cmd.Process.Kill()
			<-cb.done
		}
	}
	if cb.t.Failed() {
		cb.t.Logf("broker child output:\n%s", cb.out.String())
		cb.t.Logf("clients' log (last %d KiB):\n%s", maxClientLog>>10, lastBytes(cb.clientLog.String(), maxClientLog))
	}
}

// client returns a client of the child's name server that finds a
// restarted broker quickly; it is closed when the test ends. Its log goes
// to cb.clientLog, and to stderr too with TEST_CLIENT_LOG set (not a
// HALFBACK_ variable: startCrashBroker clears those).
func (cb *crashBroker) client() *client.Client {
	cb.t.Helper()
	var w io.Writer = &cb.clientLog
	if os.Getenv("TEST_CLIENT_LOG") != "" {
		w = io.MultiWriter(w, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("testClient", cb.clients.Add(1))
	c, err := client.New(client.Options{NamesrvAddrs: []string{cb.nsAddr}, Logger: log,
		RouteRefreshInterval: 200 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		cb.t.Fatal(err)
	}
	cb.t.Cleanup(func() { c.Close() })
	return c
}

// logGroupOffsets logs, if the test has failed by the time it ends,
// group's committed offsets and the queues' max offsets as the broker
// sees them then.
func (cb *crashBroker) logGroupOffsets(group string) {
	t := cb.t
	t.Cleanup(func() { // before cb.stop: the broker still runs
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ac, err := admin.Dial(ctx, cb.addr)
		if err != nil {
			t.Logf("group %s: offsets unknown: %v", group, err)
			return
		}
		defer ac.Close()
		qs, err := ac.GroupOffsets(ctx, group)
		if err != nil {
			t.Logf("group %s: offsets unknown: %v", group, err)
			return
		}
		for _, q := range qs {
			t.Logf("group %s: %s queue %d: committed %d, max %d", group, q.Topic, q.QueueID, q.ConsumerOffset, q.BrokerOffset)
		}
	})
}

// maxClientLog is how much of the clients' log a failed test shows.
const maxClientLog = 256 << 10

// lastBytes returns the last n bytes of s, from a line's start.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

var (
	crashSeq atomic.Int64
	crashRun = strconv.FormatInt(time.Now().UnixNano()%(1<<24), 36)
)

// uniqName returns a name unique to this test process.
func uniqName(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, crashRun, crashSeq.Add(1))
}

// crashBody is the body of the message with id: the id, then a
// deterministic filler of 1 to 6000 bytes, so that a consumer can tell a
// corrupted body from the one sent.
func crashBody(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	n := 1 + (int(sum[0])<<8|int(sum[1]))%6000
	fill := strings.Repeat(hex.EncodeToString(sum[:]), n/64+1)[:n]
	return []byte(id + "|" + fill)
}

// crashBodyID returns the id in a body crashBody made, and whether the
// body is intact.
func crashBodyID(body []byte) (string, bool) {
	id, _, ok := strings.Cut(string(body), "|")
	return id, ok && string(crashBody(id)) == string(body)
}

// metric sums the samples of the Prometheus metric name the child serves
// (HALFBACK_TELEMETRY_METRICSADDR among its settings), -1 if it has none.
func (cb *crashBroker) metric(name string) float64 {
	cb.t.Helper()
	var addr string
	for _, kv := range cb.env {
		if v, ok := strings.CutPrefix(kv, "HALFBACK_TELEMETRY_METRICSADDR="); ok {
			addr = v
		}
	}
	if addr == "" {
		cb.t.Fatal("the broker child serves no metrics")
	}
	resp, err := http.Get("http://" + addr + telemetry.MetricsPath)
	if err != nil {
		cb.t.Fatal(err)
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || (rest[0] != '{' && rest[0] != ' ')) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			cb.t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}
