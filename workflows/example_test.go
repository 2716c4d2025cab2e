package workflows_test

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

// A workflow of its own reuses the transactional step: here a refund,
// whose local transaction is the "RefundLocal" activity. The example runs
// it in the test environment with stand-in activities.
func ExampleSendTransactional() {
	refund := func(ctx workflow.Context, orderID string) (string, error) {
		r, err := workflows.SendTransactional(ctx, workflows.Step{Name: "refund", Topic: "refunds",
			Keys: []string{orderID}, Body: []byte(`{"orderId":"` + orderID + `"}`),
			Local: "RefundLocal", LocalArgs: []any{orderID}})
		switch {
		case errors.Is(err, workflows.ErrRolledBack):
			return "refund refused, message rolled back", nil
		case err != nil:
			return "", err
		}
		return "refund committed as " + r.MsgID, nil
	}

	var s testsuite.WorkflowTestSuite
	s.SetLogger(nopLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(temporalclient.StartWorkflowOptions{ID: "order-7"})
	env.RegisterWorkflowWithOptions(refund, workflow.RegisterOptions{Name: "Refund"})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.SendHalfInput) (client.HalfReceipt, error) {
		fmt.Println("half message", in.TxnID)
		return client.HalfReceipt{MsgID: in.TxnID, TransactionID: in.TxnID}, nil
	}, activity.RegisterOptions{Name: workflows.ActivitySendHalf})
	env.RegisterActivityWithOptions(func(_ context.Context, txnID, orderID string) error {
		fmt.Println("local transaction", txnID, "refunds", orderID)
		return nil
	}, activity.RegisterOptions{Name: "RefundLocal"})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.EndInput) error {
		fmt.Println("end transaction, commit:", in.Commit)
		return nil
	}, activity.RegisterOptions{Name: workflows.ActivityEndTransaction})

	env.ExecuteWorkflow("Refund", "order-7")
	var out string
	if err := env.GetWorkflowResult(&out); err != nil {
		fmt.Println(err)
	}
	fmt.Println(out)
	// Output:
	// half message order-7/refund
	// local transaction order-7/refund refunds order-7
	// end transaction, commit: true
	// refund committed as order-7/refund
}
