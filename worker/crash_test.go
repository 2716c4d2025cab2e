package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// TestWorkerKilledBetweenHalfAndEnd SIGKILLs a worker process after the
// half message of an order's "create" step was stored and before the
// step ended it, once before and once after the local transaction. The
// broker (in the test process) checks the half message back with the
// next worker's resolver, which fences the transaction id: a local
// transaction that never ran is fenced and its message rolled back (the
// workflow runs the step again as "create-2"); one that committed wins
// and its message is committed. Either way the workflow resumes on the
// new worker and ends CANCELLED (unpaid), and order-events carries
// exactly one OrderCreated, the committed one, and one OrderCancelled.
//
// Each case waits for Temporal to time out the killed worker's activity
// attempt (the step's 30 s start-to-close timeout).
func TestWorkerKilledBetweenHalfAndEnd(t *testing.T) {
	hostPort := devServer(t)
	for _, tc := range []struct {
		name, killAt string
		fenced       bool // the check-back fences the first transaction id
	}{
		{"before the local transaction", "before:" + workflows.ActivityCreateOrderLocal, true},
		{"after the local transaction", "after:" + workflows.ActivityCreateOrderLocal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testKilledWorker(t, hostPort, tc.killAt, tc.fenced)
		})
	}
}

// crashEnv is what a crash case runs against: a broker in the test
// process, an observer of order-events, the order database and a Temporal
// client. cfg points workers at that broker (worker.embeddedBroker false).
type crashEnv struct {
	cfg    *config.Config
	broker *embedded
	obs    *observer
	db     *orders.DB
	tc     temporalclient.Client
}

func newCrashEnv(t *testing.T, ctx context.Context, hostPort string) *crashEnv {
	t.Helper()
	// testConfig's check-backs start 5 s after the half message: after the
	// kill even on a slow machine, so that only the second worker answers.
	e := &crashEnv{cfg: testConfig(t, hostPort)}
	var err error
	if e.broker, err = startBroker(ctx, e.cfg, testLogger(t, "broker")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.broker.Close() })
	e.cfg.Worker.EmbeddedBroker, e.cfg.Broker.NamesrvAddr = false, e.broker.nsAddrs[0]
	e.obs = observe(t, ctx, e.broker.nsAddrs, testLogger(t, "observer"))
	if e.db, err = app.OpenOrders(ctx, e.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	if e.tc, err = app.DialTemporal(ctx, e.cfg, testLogger(t, "temporal client")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.tc.Close)
	return e
}

const crashSKU = "sku-crash"

func testKilledWorker(t *testing.T, hostPort, killAt string, fenced bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newCrashEnv(t, ctx, hostPort)
	orderID := fmt.Sprintf("crash-%d", time.Now().UnixNano()) // unique on the shared dev server
	if err := e.db.SetStock(ctx, crashSKU, 1); err != nil {
		t.Fatal(err)
	}
	killWorkerAt(t, e.cfg, killAt, func() {
		_, err := e.tc.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{ID: orderID, TaskQueue: e.cfg.Temporal.TaskQueue},
			workflows.OrderPaymentWorkflowName, workflows.OrderInput{OrderID: orderID, User: "ann", SKU: crashSKU, Qty: 1, Amount: 500})
		if err != nil {
			t.Fatal(err)
		}
	})
	if live := e.broker.broker.Transactions().List(0, 0); len(live) != 1 {
		t.Fatalf("after the kill: %d open transactions, want the create step's: %+v", len(live), live)
	}
	if ev := e.obs.byTag(); len(ev) != 0 {
		t.Fatalf("after the kill, before any commit, consumers got %v", ev)
	}

	s, err := start(ctx, e.cfg, testLogger(t, "second worker"), options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var res workflows.OrderResult
	if err := e.tc.GetWorkflow(ctx, orderID, "").Get(ctx, &res); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if res.Status != workflows.StatusCancelled {
		t.Fatalf("workflow result %+v, want CANCELLED", res)
	}
	e.checkSettled(t, ctx, orderID, fenced)
}

// checkSettled checks that the check-back settled the first "create"
// half message as the database said (fenced: rolled back, and the order
// created by "create-2"; else committed), and that the database, the
// messages consumers got and the broker's transactions agree.
func (e *crashEnv) checkSettled(t *testing.T, ctx context.Context, orderID string, fenced bool) {
	t.Helper()
	txnID := func(step string) string { return stepTxnID(t, ctx, e.tc, orderID, step) }
	first, created, wantFirst := txnID("create"), txnID("create"), orders.TxnCommitted
	if fenced {
		created, wantFirst = txnID("create-2"), orders.TxnFenced
	}
	checkTxn(t, ctx, e.db, first, wantFirst)
	checkTxn(t, ctx, e.db, created, orders.TxnCommitted)
	if row, err := e.db.Order(ctx, orderID); err != nil || row.Status != orders.StatusCancelled {
		t.Errorf("order row %+v (%v), want CANCELLED", row, err)
	}
	if stock, err := e.db.Stock(ctx, crashSKU); err != nil || stock != 1 {
		t.Errorf("stock %d (%v), want the unit back", stock, err)
	}
	testutil.WaitFor(t, 30*time.Second, "OrderCreated and OrderCancelled", func() bool {
		return len(e.obs.byTag()) == 2
	})
	want := map[string]map[string][]string{
		workflows.TagOrderCreated:   {orderID: {created}},
		workflows.TagOrderCancelled: {orderID: {txnID("cancel")}},
	}
	if got := e.obs.byTag(); !reflect.DeepEqual(got, want) {
		t.Errorf("order-events: %v, want exactly %v", got, want)
	}
	txns := e.broker.broker.Transactions()
	if st := txns.Stats(); fenced && st.CheckRollbacks < 1 || !fenced && st.CheckCommits < 1 {
		t.Errorf("transaction stats %+v: want the check-back to have settled the first half message", st)
	}
	if live := txns.List(0, 0); len(live) != 0 {
		t.Errorf("%d transactions still open: %+v", len(live), live)
	}
}

// killWorkerAt runs a worker process of cfg with HALFBACK_KILL_AT=killAt,
// calls begin, and waits for the process to die of SIGKILL.
func killWorkerAt(t *testing.T, cfg *config.Config, killAt string, begin func()) {
	t.Helper()
	cmd, _, done := startWorkerProcess(t, cfg, killAtEnv+"="+killAt)
	begin()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the worker process did not kill itself at %s", killAt)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("worker process ended with %v, want SIGKILL from its fault hook", cmd.ProcessState)
	}
}

// startWorkerProcess runs the worker's main in a process of its own, with
// cfg's keys that tests change and env in its environment. done receives
// the process's end; out collects its output, printed if the test fails.
func startWorkerProcess(t *testing.T, cfg *config.Config, env ...string) (cmd *exec.Cmd, out *testutil.Buffer, done chan error) {
	t.Helper()
	out = &testutil.Buffer{}
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), subprocessEnv+"=1",
		"HALFBACK_STORE_DATADIR="+cfg.Store.DataDir,
		"HALFBACK_STORE_SEGMENTSIZE="+strconv.FormatInt(cfg.Store.SegmentSize, 10),
		"HALFBACK_BROKER_LISTENADDR="+cfg.Broker.ListenAddr,
		"HALFBACK_NAMESRV_LISTENADDR="+cfg.Namesrv.ListenAddr,
		"HALFBACK_WORKER_EMBEDDEDBROKER="+strconv.FormatBool(cfg.Worker.EmbeddedBroker),
		"HALFBACK_BROKER_NAMESRVADDR="+cfg.Broker.NamesrvAddr,
		"HALFBACK_TEMPORAL_HOSTPORT="+cfg.Temporal.HostPort,
		"HALFBACK_TEMPORAL_TASKQUEUE="+cfg.Temporal.TaskQueue,
		"HALFBACK_BROKER_DELAYLEVELS="+cfg.Broker.DelayLevels,
		"HALFBACK_PAYMENT_CHECKLEVEL="+strconv.Itoa(cfg.Payment.CheckLevel),
		"HALFBACK_PAYMENT_MAXCHECKS="+strconv.Itoa(cfg.Payment.MaxChecks))
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker process output:\n%s", out.String())
		}
	})
	return cmd, out, done
}

// checkTxn checks the local transaction log's state of txnID.
func checkTxn(t *testing.T, ctx context.Context, db *orders.DB, txnID string, want orders.TxnState) {
	t.Helper()
	if got, err := db.TxnState(ctx, txnID); err != nil || got != want {
		t.Errorf("transaction %s: %q (%v), want %q", txnID, got, err, want)
	}
}
