package workflows_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
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
// A value other than 1 is a comma-separated list of the files to write
// (HALFBACK_RECORD_HISTORY=order_lost_check_history.json): every order
// still runs, and the other files are kept as recorded, by the workflow
// versions they are of.
// (order_lost_check_resend_wait_history.json is
// order_lost_check_history.json recorded with
// workflows.CheckResendWaitChange, and
// order_lost_check_send_wait_history.json with
// workflows.CheckSendWaitChange, each under its own name.)
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

	// A run that Temporal's reset started at the first workflow task,
	// the earlier run's signals reapplied: its checks of that run are
	// ignored (workflows.CheckRunChange), and it counts its own.
	again := input
	again.OrderID = "order-reset-checks"
	run = start(t, tc, again)
	testutil.WaitFor(t, time.Minute, "the second check", func() bool { return status(tc, again.OrderID).Checks >= 2 })
	var first int64
	it := tc.GetWorkflowHistory(ctx, again.OrderID, run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for first == 0 && it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			first = ev.GetEventId()
		}
	}
	resp, err := tc.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{Namespace: "default",
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: again.OrderID, RunId: run.GetRunID()},
		Reason:            "recording", WorkflowTaskFinishEventId: first, RequestId: "recording-" + run.GetRunID()})
	if err != nil {
		t.Fatal(err)
	}
	record(t, tc, tc.GetWorkflow(ctx, again.OrderID, resp.GetRunId()), workflows.StatusCancelled,
		"order_reset_checks_"+historyTag+"history.json")

	// A lost check (workflows.CheckResendChange): a reset that excludes
	// signals, to the workflow task after check 1 was sent, once check 1
	// was signalled. The run it starts never gets check 1's signal; it
	// sends check 1 again, counts it, and is cancelled after its checks.
	lost := input
	lost.OrderID = "order-lost-check"
	run = start(t, tc, lost)
	testutil.WaitFor(t, time.Minute, "the second check", func() bool { return status(tc, lost.OrderID).Checks >= 2 })
	resp, err = tc.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{Namespace: "default",
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: lost.OrderID, RunId: run.GetRunID()},
		Reason:            "recording", WorkflowTaskFinishEventId: afterFirstCheck(t, tc, lost.OrderID, run.GetRunID()),
		RequestId:                "recording-" + run.GetRunID(),
		ResetReapplyExcludeTypes: []enumspb.ResetReapplyExcludeType{enumspb.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL}})
	if err != nil {
		t.Fatal(err)
	}
	record(t, tc, tc.GetWorkflow(ctx, lost.OrderID, resp.GetRunId()), workflows.StatusCancelled,
		"order_lost_check_"+historyTag+"history.json")
}

// afterFirstCheck returns the id of the WORKFLOW_TASK_COMPLETED event of
// the workflow task that followed the first ActivitySendPaymentCheck's
// completion in the run's history.
func afterFirstCheck(t *testing.T, tc temporalclient.Client, id, runID string) int64 {
	t.Helper()
	checks := map[int64]bool{} // scheduled event ids of the check activities
	sent := false
	it := tc.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == workflows.ActivitySendPaymentCheck {
				checks[ev.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			sent = sent || checks[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			if sent {
				return ev.GetEventId()
			}
		}
	}
	t.Fatal("no workflow task after the first check")
	return 0
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
	if !recording(file) {
		t.Logf("%s not written: %s names other files", file, recordEnv)
		return
	}
	path := filepath.Join("testdata", file)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d events, result %+v", path, len(hist.Events), res)
}

// recording reports whether HALFBACK_RECORD_HISTORY asks for file.
func recording(file string) bool {
	v := os.Getenv(recordEnv)
	return v == "1" || slices.Contains(strings.Split(v, ","), file)
}
