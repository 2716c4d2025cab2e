package activities

import (
	"context"
	"fmt"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// SendHalf is the step's first activity (workflows.ActivitySendHalf): it
// stores a half message whose id is in.TxnID and returns its receipt. A
// retry after a lost answer gets the same live half message back.
//
// If the order database's transaction log has in.TxnID committed, it
// stores nothing and returns a receipt without a broker (see
// [Activities.EndTransaction]): the step runs again in a workflow reset to
// before it, and the earlier run's half message was committed, or is
// still live and the check-back commits it. Another half message of the
// id would be stored (the broker finds live ones alone) and committed, a
// second message for the one change.
func (a *Activities) SendHalf(ctx context.Context, in workflows.SendHalfInput) (client.HalfReceipt, error) {
	if err := a.needProducer(); err != nil {
		return client.HalfReceipt{}, err
	}
	if in.TxnID == "" {
		return client.HalfReceipt{}, classify(fmt.Errorf("%w: half message without a transaction id", ErrInvalidInput))
	}
	if committed, err := a.committed(ctx, in.TxnID); err != nil {
		return client.HalfReceipt{}, err
	} else if committed {
		return client.HalfReceipt{Topic: in.Topic, MsgID: in.TxnID, TransactionID: in.TxnID}, nil
	}
	r, err := a.Producer.SendHalf(ctx, &client.Message{Topic: in.Topic, Tags: in.Tags, Keys: in.Keys, ShardingKey: in.ShardingKey,
		Body: in.Body, ID: in.TxnID})
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
//
// A receipt without a broker whose id the transaction log has committed
// is SendHalf's for a step that ran before: nothing was stored, and
// ending it either way succeeds (a rollback: the local transaction
// refused what the step ran with this time, the earlier one stands).
func (a *Activities) EndTransaction(ctx context.Context, in workflows.EndInput) error {
	if err := a.needProducer(); err != nil {
		return err
	}
	if r := in.Receipt; r.BrokerName == "" && r.BrokerAddr == "" && r.MsgID != "" {
		if committed, err := a.committed(ctx, r.MsgID); err != nil || committed {
			return err
		}
	}
	state := client.Rollback
	if in.Commit {
		state = client.Commit
	}
	return classify(a.Producer.EndTransaction(ctx, in.Receipt, state))
}

// committed reports whether the order database's transaction log has
// txnID committed (false without a DB).
func (a *Activities) committed(ctx context.Context, txnID string) (bool, error) {
	if a.DB == nil {
		return false, nil
	}
	st, err := a.DB.TxnState(ctx, txnID)
	if err != nil {
		return false, classify(err)
	}
	return st == orders.TxnCommitted, nil
}
