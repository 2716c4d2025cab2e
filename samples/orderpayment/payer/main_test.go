package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// writeConfig writes a config naming temporalHostPort and an order
// database in dir (a fresh one if empty), followed by the YAML extra, and
// returns its path.
func writeConfig(t *testing.T, dir, temporalHostPort, extra string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf("store:\n  dataDir: %s\ntemporal:\n  hostPort: %s\nlog:\n  level: error\n", dir, temporalHostPort) + extra
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startOrder starts a dev server and on it the workflow of order id (no
// worker needed: the payer only signals it), and returns the server's
// address, a client of it and the workflow's run id.
func startOrder(t *testing.T, id string) (hostPort string, tc temporalclient.Client, runID string) {
	t.Helper()
	srv := txnbridgetest.StartDevServer(t)
	tc = txnbridgetest.DialTemporal(t, srv)
	in := workflows.OrderInput{OrderID: id, User: "ann", SKU: "sku-1", Qty: 1, Amount: 1500}
	run, err := tc.ExecuteWorkflow(context.Background(), temporalclient.StartWorkflowOptions{ID: id, TaskQueue: "no-worker"},
		workflows.OrderPaymentWorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return srv.FrontendHostPort(), tc, run.GetRunID()
}

// paySignals returns the pay signals in the history of order id's run.
func paySignals(t *testing.T, tc temporalclient.Client, id, runID string) []*historypb.WorkflowExecutionSignaledEventAttributes {
	t.Helper()
	var out []*historypb.WorkflowExecutionSignaledEventAttributes
	it := tc.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalPay {
			out = append(out, a)
		}
	}
	return out
}

// TestRunSignalsPay runs the payer against a Temporal dev server: the
// order's workflow (started, no worker needed) receives the pay signal
// with the payment id and amount the flags give, or the default id.
func TestRunSignalsPay(t *testing.T) {
	const id = "order-9"
	hostPort, tc, runID := startOrder(t, id)
	ctx := context.Background()
	cfg := writeConfig(t, "", hostPort, "")
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"--config", cfg, "--order", id, "--amount", "1500"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if code := run(ctx, []string{"--config", cfg, "--order", id, "--amount", "7", "--payment-id", "p-2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "signalled pay pay-order-9 to order order-9") {
		t.Errorf("stdout %q", stdout.String())
	}

	var got []workflows.PayInput
	for _, a := range paySignals(t, tc, id, runID) {
		var p workflows.PayInput
		if err := temporalclient.NewValue(a.GetInput()).Get(&p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	want := []workflows.PayInput{{PaymentID: "pay-order-9", Amount: 1500}, {PaymentID: "p-2", Amount: 7}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("pay signals %+v, want %+v", got, want)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	cfg := writeConfig(t, "", "127.0.0.1:1", "") // never dialled: each case fails first
	noDB := writeConfig(t, "", "127.0.0.1:1", "")
	txnbridgetest.CreateOrdersDB(t, cfg)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--order", "o", "prod.yaml"}, 2, `unexpected argument "prod.yaml"`},
		{[]string{"--config", cfg}, 2, "--order is required"},
		{[]string{"--config", cfg, "--order", "o", "--amount", "-1999"}, 2, "--amount must not be negative"},
		{[]string{"--config", "/nonexistent.yaml", "--order", "o"}, 1, "no such file"},
		// No --amount, and no order database (no worker made one there): not
		// created here, empty.
		{[]string{"--config", noDB, "--order", "o"}, 1, "no order database at " + filepath.Join(filepath.Dir(noDB), config.OrdersFile)},
		// No --amount: read from the order database, where there is no such order.
		{[]string{"--config", cfg, "--order", "nope"}, 1, "amount of order nope (or give --amount)"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(noDB), config.OrdersFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the payer made an order database where there was none: %v", err)
	}
}

// --help prints the flags to stdout and exits 0, as the starter's and the
// worker's help does: asking for help is not a refused command line.
func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "-payment-id") || stderr.Len() != 0 {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q; want 0 and the flags on stdout", code, stdout.String(), stderr.String())
	}
}
