package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/samples/orderpayment"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

func TestPrintSummary(t *testing.T) {
	s := orderpayment.Summary{Started: 2, PaySent: 1, Paid: 1, Failed: 1, Orders: []orderpayment.Outcome{
		{OrderID: "o-1", PaySent: true, Status: "PAID", Checks: 1},
		{OrderID: "o-2", Status: "FAILED", Checks: 0, Error: "ended FAILED, want CANCELLED"},
		{OrderID: "o-3", Checks: 2}, // given up waiting for
	}}
	var out bytes.Buffer
	printSummary(&out, s, true)
	want := `o-1                          paid   -> PAID      (1 payment checks)
o-2                          unpaid -> FAILED    (0 payment checks)  FAILED: ended FAILED, want CANCELLED
o-3                          unpaid -> RUNNING   (2 payment checks)
started 2, pay sent 1; paid 1, cancelled 0, failed 1
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// A refused command line or config gets exit 2 (the command line) or 1
// (the config) and one line on stderr that names what was refused, and
// no summary on stdout: no usage text burying the line, no "started 0".
func TestExitStatus(t *testing.T) {
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("temporal: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A data directory without the worker's order database.
	noDB := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(noDB, fmt.Appendf(nil, "store:\n  dataDir: %s\ntemporal:\n  hostPort: 127.0.0.1:1\n", filepath.Dir(noDB)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--orders", "x"}, 2, `invalid value "x" for flag -orders`},
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"prod.yaml"}, 2, `unexpected argument "prod.yaml"`},
		{[]string{"--config", "", "--orders", "0"}, 2, "--orders 0: want at least 1"},
		{[]string{"--config", "", "--pay-ratio", "2"}, 2, "--pay-ratio 2: want 0 to 1"},
		{[]string{"--config", "", "--amount", "-5"}, 2, "--amount -5: must be a positive number of cents"},
		{[]string{"--config", "", "--amount", "0"}, 2, "--amount 0: must be a positive number of cents"},
		{[]string{"--config", "", "--prefix", "my run"}, 2, `--prefix "my run": order ids such as "my run-5"`},
		{[]string{"--config", "", "--prefix", strings.Repeat("p", 98), "--orders", "10"}, 2, "longer than 100 characters"},
		{[]string{"--config", "", "--wait-timeout", "-1s"}, 2, "--wait-timeout -1s"},
		{[]string{"--config", "", "--wait-timeout", "2s"}, 2, "--wait-timeout 2s: bounds --wait, which is not given"},
		{[]string{"--config", "/nonexistent.yaml"}, 1, "no such file"},
		{[]string{"--config", badYAML}, 1, "bad.yaml"},
		{[]string{"--config", noDB}, 1, "no order database at " + filepath.Join(filepath.Dir(noDB), config.OrdersFile)},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if code != tt.code || len(lines) != 1 || !strings.HasPrefix(lines[0], "starter: ") || !strings.Contains(lines[0], tt.msg) ||
			stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d, one line \"starter: ...%s...\" and no stdout",
				tt.args, code, stderr.String(), stdout.String(), tt.code, tt.msg)
		}
	}
}

// --help prints the flags to stdout and exits 0, as the other commands'
// help does.
func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "-wait-timeout") || stderr.Len() != 0 {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q; want 0 and the flags on stdout", code, stdout.String(), stderr.String())
	}
}

// --wait with no worker on the task queue says what it waits for, and
// that no worker polls the queue, and --wait-timeout ends it.
func TestWaitWithoutWorkerSaysSoAndGivesUp(t *testing.T) {
	srv := txnbridgetest.StartDevServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf("store:\n  dataDir: %s\ntemporal:\n  hostPort: %s\n  taskQueue: no-worker-test\nlog:\n  level: error\n",
		dir, srv.FrontendHostPort())
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	txnbridgetest.CreateOrdersDB(t, cfg)
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 100 * time.Millisecond
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", cfg, "--orders", "2", "--pay-ratio", "0", "--prefix", "nw",
		"--wait", "--wait-timeout", "3s"}, &stdout, &stderr)
	for _, want := range []string{
		"starter: waiting for order nw-1 (2 of 2 orders left to wait for) (no worker has polled task queue no-worker-test lately",
		"starter: gave up waiting after --wait-timeout 3s, with 2 of 2 orders left to wait for",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
		}
	}
	if code != 1 || !strings.Contains(stdout.String(), "started 2, pay sent 0") {
		t.Errorf("exit %d, stdout %q; want 1 and the summary of the 2 started orders", code, stdout.String())
	}
}
