// Package activities implements the order/payment activities: the local
// transactions on the order database (orders), the payment checks and the
// half-message send and end of the transactional step (client). They are
// methods of [Activities], which holds the dependencies.
//
// Every activity is idempotent. A local transaction writes its
// transaction id with its effect, so a second run finds it committed and
// succeeds (orders.ErrAlreadyCommitted); a half message carries the
// transaction id, so a second send returns the live one; ending a
// transaction twice the same way is a no-op. Permanent failures (out of
// stock, a wrong state or amount, a fenced transaction id, an invalid
// message, a transaction ended the other way) are non-retryable
// temporal.ApplicationErrors whose Type is one of the workflows.ErrType*
// names; transport failures, a busy broker or database, and a closing
// worker are returned as they are, for Temporal to retry.
//
// # Usage
//
//	acts := &activities.Activities{DB: db, Producer: producer, CheckLevel: 5, MaxChecks: 10}
//	acts.Register(w) // under the workflows.Activity* names
package activities
