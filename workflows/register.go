package workflows

import "go.temporal.io/sdk/workflow"

// Registry is what Register needs of a worker, a replayer or a test
// environment.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers OrderPaymentWorkflow as OrderPaymentWorkflowName. A
// second registration replaces the first instead of panicking, so that a
// worker may register it and use the txnbridge plugin as well.
func Register(r Registry) {
	r.RegisterWorkflowWithOptions(OrderPaymentWorkflow, workflow.RegisterOptions{
		Name: OrderPaymentWorkflowName, DisableAlreadyRegisteredCheck: true})
}
