package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/workflows"
)

// histories are recorded by TestRecordHistories from real runs: those
// of the current version, and those ("_pre_settles_") recorded before
// workflows.SettlesChange (DefaultVersion), which must replay with the
// behaviour they were recorded with. Of the current ones, only
// order_refused_pay_adopted_history.json was recorded with
// workflows.PaymentIDChange (ActivityOrderState); the others were
// recorded before it (ActivityPaymentState) and kept so. Only
// order_reset_checks_history.json (a run that a reset started, which
// ignores the checks of the run it replaced) was recorded with
// workflows.CheckRunChange; the others predate it. Only
// order_lost_check_history.json (check 1 sent again after a reset that
// excluded signals dropped its signal) was recorded with
// workflows.CheckResendChange; order_lost_check_resend_wait_history.json
// is the same order recorded with workflows.CheckResendWaitChange (the
// workflow waits on while check 1 is sent again), and
// order_lost_check_send_wait_history.json with
// workflows.CheckSendWaitChange too (the timer runs from the resend's
// start; the workflow waits on while checks 1 to 3 are sent).
var histories = []string{
	"order_lost_check_history.json", "order_lost_check_resend_wait_history.json", "order_lost_check_send_wait_history.json",
	"order_paid_history.json", "order_cancelled_history.json", "order_workflow_cancelled_history.json",
	"order_refused_pay_adopted_history.json", "order_reset_checks_history.json",
	"order_paid_pre_settles_history.json", "order_cancelled_pre_settles_history.json", "order_workflow_cancelled_pre_settles_history.json",
}

// TestReplay replays the recorded histories against the current
// OrderPaymentWorkflow: a failure is a non-deterministic change, which
// needs workflow.GetVersion (or a new workflow type) instead.
func TestReplay(t *testing.T) {
	for _, file := range histories {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workflows.Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, filepath.Join("testdata", file)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReplayThroughPlugin replays with the workflow registered by the
// txnbridge plugin, as a replayer given the plugin does (no producer or
// consumer is started for a replay).
func TestReplayThroughPlugin(t *testing.T) {
	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: &client.Client{}, DB: &orders.DB{}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{Plugins: []worker.Plugin{plugin}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, filepath.Join("testdata", histories[0])); err != nil {
		t.Fatal(err)
	}
}
