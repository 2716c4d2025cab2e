package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/workflows"
)

// An order recorded before 1c473d0 (a payment the database refused,
// signalled twice, then a fresh one that paid) must replay on the
// current workflow: it may still be running when the worker is upgraded.
func TestReplayRepeatedRefusedPayRecordedBeforeDedup(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, filepath.Join("testdata", "order_repeated_refused_pay_pre_dedup_history.json")); err != nil {
		t.Fatal(err)
	}
}
