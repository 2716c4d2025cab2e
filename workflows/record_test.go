package workflows_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// recordEnv is the variable that turns TestRecordHistories on.
const recordEnv = "HALFBACK_RECORD_HISTORY"

// TestRecordHistories is a recording helper, not a test: with
// HALFBACK_RECORD_HISTORY set it runs orders through the txnbridge plugin
// against a Temporal dev server (the pinned CLI) and an in-process broker
// and order database, and writes their histories to testdata/ for
// TestReplay:
//
//	HALFBACK_RECORD_HISTORY=1 go test -run TestRecordHistories ./workflows
//
// Record again after a change to OrderPaymentWorkflow that is meant to
// change its commands (and keep the old files if running workflows must
// still replay: a failing TestReplay is a non-determinism to version).
func TestRecordHistories(t *testing.T) {
	if os.Getenv(recordEnv) == "" {
		t.Skip("recording helper; set " + recordEnv + "=1 to write testdata/*_history.json")
	}
	srv := txnbridgetest.StartDevServer(t)
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{TxnTimeout: time.Minute}) // no check-back fences a slow step into the history
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	db := txnbridgetest.OpenDB(t)
	tc := txnbridgetest.DialTemporal(t, srv)
	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: c, DB: db, Temporal: tc, PaymentCheckLevel: 1,
		MaxPaymentChecks: 3, Logger: txnbridgetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{Plugins: []worker.Plugin{plugin}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ctx := context.Background()
	if err := db.SetStock(ctx, input.SKU, 100); err != nil {
		t.Fatal(err)
	}

	// Paid after one check found the order unpaid.
	paid := input
	paid.OrderID = "order-paid"
	run := start(t, tc, paid)
	testutil.WaitFor(t, time.Minute, "the second check", func() bool { return status(tc, paid.OrderID).Checks >= 2 })
	if err := tc.SignalWorkflow(ctx, paid.OrderID, "", workflows.SignalPay, workflows.PayInput{PaymentID: "pay-1", Amount: paid.Amount}); err != nil {
		t.Fatal(err)
	}
	record(t, tc, run, workflows.StatusPaid, "order_paid_"+historyTag+"history.json")

	// Cancelled after three checks.
	late := input
	late.OrderID = "order-late"
	record(t, tc, start(t, tc, late), workflows.StatusCancelled, "order_cancelled_"+historyTag+"history.json")

	// The workflow cancelled while it waits for the payment.
	dropped := input
	dropped.OrderID = "order-dropped"
	run = start(t, tc, dropped)
	testutil.WaitFor(t, time.Minute, "the first check", func() bool { return status(tc, dropped.OrderID).Checks >= 1 })
	if err := tc.CancelWorkflow(ctx, dropped.OrderID, ""); err != nil {
		t.Fatal(err)
	}
	record(t, tc, run, "", "order_workflow_cancelled_"+historyTag+"history.json")

	// A payment refused after a reset: the run before a reset to before
	// the pay step took pay-r1 under the chain's ids (written before the
	// workflow's first task); pay-r3 is refused and the order's PAID
	// adopted with the payment recorded (workflows.PaymentIDChange).
	reset := input
	reset.OrderID = "order-reset"
	run, err = tc.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{ID: reset.OrderID, TaskQueue: workflows.TaskQueue,
		StartDelay: 2 * time.Second}, workflows.OrderPaymentWorkflowName, reset)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrder(ctx, workflows.StepTxnID(reset.OrderID, run.GetRunID(), "create"), orders.Order{ID: reset.OrderID,
		User: reset.User, SKU: reset.SKU, Qty: reset.Qty, Amount: reset.Amount}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkPaid(ctx, workflows.StepTxnID(reset.OrderID, run.GetRunID(), "pay"), reset.OrderID, "pay-r1", reset.Amount); err != nil {
		t.Fatal(err)
	}
	if err := tc.SignalWorkflow(ctx, reset.OrderID, "", workflows.SignalPay, workflows.PayInput{PaymentID: "pay-r3", Amount: reset.Amount}); err != nil {
		t.Fatal(err)
	}
	record(t, tc, run, workflows.StatusPaid, "order_refused_pay_adopted_"+historyTag+"history.json")
}

// historyTag names the workflow version the recorded histories are of:
// "pre_settles_" before workflows.SettlesChange (recorded on a checkout
// of an earlier commit), "" with it.
const historyTag = ""

func start(t *testing.T, tc temporalclient.Client, in workflows.OrderInput) temporalclient.WorkflowRun {
	t.Helper()
	run, err := tc.ExecuteWorkflow(context.Background(), temporalclient.StartWorkflowOptions{ID: in.OrderID,
		TaskQueue: workflows.TaskQueue}, workflows.OrderPaymentWorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func status(tc temporalclient.Client, id string) workflows.OrderResult {
	var res workflows.OrderResult
	if v, err := tc.QueryWorkflow(context.Background(), id, "", workflows.QueryStatus); err == nil {
		_ = v.Get(&res)
	}
	return res
}

// record waits for run's result, checks its status (want "": the
// workflow ended cancelled) and writes its history to testdata/file.
func record(t *testing.T, tc temporalclient.Client, run temporalclient.WorkflowRun, want, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.OrderResult
	err := run.Get(ctx, &res)
	var canceled *temporal.CanceledError
	switch {
	case want == "" && !errors.As(err, &canceled):
		t.Fatalf("workflow ended with %v, want cancelled", err)
	case want != "" && err != nil:
		t.Fatal(err)
	case want != "" && res.Status != want:
		t.Fatalf("result %+v, want %s", res, want)
	}
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", file)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d events, result %+v", path, len(hist.Events), res)
}
