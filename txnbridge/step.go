package txnbridge

import (
	"go.temporal.io/sdk/workflow"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

// The reusable transactional-message step lives in package workflows (the
// plugin registers that package's workflows, so the workflows cannot
// import this package); these names make it reachable from here too.
type (
	// Step is workflows.Step: a half message, a local-transaction
	// activity, then commit or rollback. Its send retries until the broker
	// stores the half message unless SendTimeout says when to give up.
	Step = workflows.Step
	// SendHalfInput is the argument of the "txnbridge.SendHalf" activity.
	SendHalfInput = workflows.SendHalfInput
	// EndInput is the argument of the "txnbridge.EndTransaction" activity.
	EndInput = workflows.EndInput
)

// SendTransactional runs s in the workflow ctx runs; see
// [workflows.SendTransactional].
func SendTransactional(ctx workflow.Context, s Step) (client.HalfReceipt, error) {
	return workflows.SendTransactional(ctx, s)
}
