package txnbridge

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// NewResolver returns the check listener of the order producer group: it
// answers the broker's check-back about a half message nobody ended from
// the local order database. The local transaction's id is the checked
// message's UNIQ_KEY (req.Receipt.TransactionID, else req.Message.MsgID);
// [orders.DB.Fence] decides it:
//
//   - the local transaction committed: [client.Commit], except for an
//     OrderPaid event of a payment the order did not record, or an
//     OrderCancelled event of a reason it did not record (a workflow reset
//     to before its pay or cancel step and run again under the step's id
//     with other data: one of the two runs' local transactions committed,
//     and only its event may): [client.Rollback];
//   - it did not: Fence records it as fenced, so it can never commit, and
//     the answer is [client.Rollback];
//   - the database failed (logged to slog.Default()), or the request names
//     no id: [client.Unknown], and the broker asks again later.
//
// The listener is safe for concurrent use, as [client.CheckListener]
// requires.
func NewResolver(db *orders.DB) client.CheckListener {
	return client.CheckListenerFunc(func(ctx context.Context, req *client.CheckRequest) client.TransactionState {
		return resolveCheck(ctx, db, req)
	})
}

// resolveCheck answers one check-back.
func resolveCheck(ctx context.Context, db *orders.DB, req *client.CheckRequest) client.TransactionState {
	id := checkedTxnID(req)
	if id == "" || db == nil {
		return client.Unknown
	}
	state, err := db.Fence(ctx, id)
	if err != nil {
		slog.Default().Warn("txnbridge: check-back left unknown: fencing the local transaction failed",
			"transactionId", id, "err", err)
		return client.Unknown
	}
	switch state {
	case orders.TxnCommitted:
		return recordedEvent(ctx, db, req.Message)
	case orders.TxnFenced:
		return client.Rollback
	}
	return client.Unknown
}

// checkedTxnID returns the local transaction id a check-back is about.
func checkedTxnID(req *client.CheckRequest) string {
	if req == nil {
		return ""
	}
	if req.Receipt.TransactionID != "" {
		return req.Receipt.TransactionID
	}
	if req.Message != nil {
		return req.Message.MsgID
	}
	return ""
}

// recordedEvent answers the check-back of a half message whose
// transaction id committed: Commit, but Rollback for an event the order
// did not record. A workflow reset to before its pay or cancel step runs
// the step again under the step's id with another payment or reason; the
// broker keeps both runs' half messages (they are different messages),
// and the database took only one run's local transaction (the other's is
// refused, ErrBadState). The check-back of the other must not commit it
// because the id committed.
func recordedEvent(ctx context.Context, db *orders.DB, m *client.MessageExt) client.TransactionState {
	if m == nil || (m.Tags != workflows.TagOrderPaid && m.Tags != workflows.TagOrderCancelled) {
		return client.Commit
	}
	var ev workflows.OrderEvent
	if json.Unmarshal(m.Body, &ev) != nil || ev.OrderID == "" {
		return client.Commit
	}
	if m.Tags == workflows.TagOrderPaid && ev.PaymentID == "" {
		return client.Commit
	}
	o, err := db.Order(ctx, ev.OrderID)
	if err != nil {
		slog.Default().Warn("txnbridge: check-back left unknown: reading the order failed",
			"orderId", ev.OrderID, "err", err)
		return client.Unknown
	}
	if m.Tags == workflows.TagOrderPaid && o.PaymentID != ev.PaymentID {
		return client.Rollback
	}
	if m.Tags == workflows.TagOrderCancelled && o.Reason != ev.Reason {
		return client.Rollback
	}
	return client.Commit
}
