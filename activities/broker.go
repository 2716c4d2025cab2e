package activities

import (
	"context"
	"fmt"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

// SendHalf is the step's first activity (workflows.ActivitySendHalf): it
// stores a half message whose id is in.TxnID and returns its receipt. A
// retry after a lost answer gets the same live half message back.
func (a *Activities) SendHalf(ctx context.Context, in workflows.SendHalfInput) (client.HalfReceipt, error) {
	if err := a.needProducer(); err != nil {
		return client.HalfReceipt{}, err
	}
	if in.TxnID == "" {
		return client.HalfReceipt{}, classify(fmt.Errorf("%w: half message without a transaction id", ErrInvalidInput))
	}
	r, err := a.Producer.SendHalf(ctx, &client.Message{Topic: in.Topic, Tags: in.Tags, Keys: in.Keys, Body: in.Body, ID: in.TxnID})
	if err != nil {
		return client.HalfReceipt{}, classify(err)
	}
	return r, nil
}

// EndTransaction is the step's last activity
// (workflows.ActivityEndTransaction): it commits or rolls back the half
// message of in.Receipt and waits until the broker recorded it. Ending it
// again the same way succeeds; the other way is
// workflows.ErrTypeTransactionConflict, permanent.
func (a *Activities) EndTransaction(ctx context.Context, in workflows.EndInput) error {
	if err := a.needProducer(); err != nil {
		return err
	}
	state := client.Rollback
	if in.Commit {
		state = client.Commit
	}
	return classify(a.Producer.EndTransaction(ctx, in.Receipt, state))
}
