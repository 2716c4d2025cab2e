package txn

import "errors"

// Errors returned by the service; test them with errors.Is.
var (
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("txn: invalid options")
	// ErrClosed means the service was closed.
	ErrClosed = errors.New("txn: closed")
	// ErrBadHalf means a message cannot be a half message (no producer
	// group, a batch, a system topic, properties too long for its copy
	// when parked).
	ErrBadHalf = errors.New("txn: not a valid half message")
	// ErrUnknownTransaction means no half message is stored at the offset
	// an END_TRANSACTION or an admin request names.
	ErrUnknownTransaction = errors.New("txn: no such transaction")
	// ErrWrongGroup means END_TRANSACTION came from another producer group
	// than the half message's.
	ErrWrongGroup = errors.New("txn: the producer group wrong")
	// ErrWrongOffset means END_TRANSACTION's queue offset (tranStateTableOffset)
	// does not match the half message's.
	ErrWrongOffset = errors.New("txn: the transaction state table offset wrong")
	// ErrConflict means a transaction already has the other outcome: a
	// commit after a rollback, or a rollback after a commit.
	ErrConflict = errors.New("txn: transaction already resolved the other way")
	// ErrAmbiguousID means an operator's id is the transaction id
	// (UNIQ_KEY) of several live transactions; their offset message ids
	// tell them apart.
	ErrAmbiguousID = errors.New("txn: the id names several transactions")
	// ErrNotParked means Resume named a transaction that is not parked.
	ErrNotParked = errors.New("txn: transaction is not parked")
)
