package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Errors returned by this package. They are wrapped with detail; test them
// with errors.Is. [IsRetryable] tells the permanent ones from the rest.
var (
	// ErrInvalidOptions means Options or ProducerOptions failed validation.
	ErrInvalidOptions = errors.New("client: invalid options")
	// ErrClosed means the Client (or the Producer) was closed. A send
	// that was in flight when the Client closed fails with it although
	// its frame may have reached the broker, which may have stored the
	// message, as for any send that fails after its write. Send's own
	// retries keep the message id (UNIQ_KEY); a resend by the caller
	// generates a new one unless Message.ID is set, so set it where
	// consumers must tell a resend from a new message.
	ErrClosed = errors.New("client: closed")
	// ErrInvalidMessage means a message was refused before anything was
	// sent: an empty or illegal topic, an empty body, a key with a space, a
	// reserved or malformed property, a delay on a batch or a half message.
	// Nothing was stored. Permanent.
	ErrInvalidMessage = errors.New("client: invalid message")
	// ErrMessageTooLarge means a body (or a whole batch) is larger than
	// Options.MaxMessageSize. Nothing was sent or stored. Permanent.
	ErrMessageTooLarge = errors.New("client: message too large")
	// ErrTopicNotFound means no name server knows a route for the topic
	// (and, for a send, none knows the auto-create topic TBW102 either).
	ErrTopicNotFound = errors.New("client: no route for topic")
	// ErrBrokerNotFound means no address is known for a broker name: the
	// name servers do not route it and the receipt records none.
	ErrBrokerNotFound = errors.New("client: broker address unknown")
	// ErrNotDurable means the broker stored the message but could not
	// confirm it durable in time (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT,
	// SLAVE_NOT_AVAILABLE). The result returned with it is valid; sending
	// again may store a duplicate with the same MsgID.
	ErrNotDurable = errors.New("client: message stored but not confirmed durable")
	// ErrInvalidReceipt means a HalfReceipt lacks a field END_TRANSACTION
	// needs, or belongs to another producer group. Permanent.
	ErrInvalidReceipt = errors.New("client: invalid half-message receipt")
	// ErrTransactionConflict means the broker already recorded the other
	// outcome for the transaction (a commit after a rollback, or the
	// reverse). Permanent.
	ErrTransactionConflict = errors.New("client: transaction already ended with the other outcome")
	// ErrTransactionRejected means the broker refused END_TRANSACTION: it
	// knows no such half message, the producer group is wrong, or the
	// offsets are forged. The broker's remark is in the error. Permanent.
	ErrTransactionRejected = errors.New("client: transaction end rejected by broker")
	// ErrGroupRegistered means a producer group already has a check
	// listener in this Client, or a consumer group is already registered.
	ErrGroupRegistered = errors.New("client: group already registered")
)

// BrokerError is a response a broker or name server answered with a
// failure code that no sentinel above describes.
type BrokerError struct {
	// Op names the request, as RocketMQ does (SEND_MESSAGE_V2, ...).
	Op string
	// Addr is the server that answered.
	Addr string
	// Code is the response code (remoting.RespSystemBusy, ...).
	Code int16
	// Remark is the server's explanation.
	Remark string
}

func (e *BrokerError) Error() string {
	return fmt.Sprintf("client: %s to %s: code %d: %s", e.Op, e.Addr, e.Code, e.Remark)
}

// Retryable reports whether the code is one a later attempt may not get:
// the broker was busy, failing or not (yet) serving the topic.
func (e *BrokerError) Retryable() bool { return retryableCode(e.Code) }

// retryableCode is the set of send response codes retried on another queue
// or broker: the Go and Java clients' (TOPIC_NOT_EXIST,
// SERVICE_NOT_AVAILABLE, SYSTEM_ERROR, NO_PERMISSION) plus SYSTEM_BUSY,
// which a broker answers while starting or when its executor is full.
func retryableCode(code int16) bool {
	switch code {
	case remoting.RespSystemError, remoting.RespSystemBusy, remoting.RespServiceNotAvailable,
		remoting.RespTopicNotExist, remoting.RespNoPermission, remoting.RespSlaveNotAvailable:
		return true
	}
	return false
}

// transportError is a request that failed without a response: the
// connection could not be made, broke, or the per-request timeout passed.
// The request may or may not have been processed.
type transportError struct {
	op, addr string
	err      error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("client: %s to %s: %v", e.op, e.addr, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// IsRetryable reports whether err may go away if the same call is made
// again later: transport failures, timeouts, a broker that was busy or not
// serving the topic, ErrNotDurable. It reports false for nil and for
// permanent errors (ErrInvalidMessage, ErrMessageTooLarge,
// ErrInvalidOptions, ErrInvalidReceipt, ErrTransactionConflict,
// ErrTransactionRejected, ErrClosed, context.Canceled) — what a Temporal
// activity should return as non-retryable.
func IsRetryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrInvalidMessage), errors.Is(err, ErrMessageTooLarge),
		errors.Is(err, ErrInvalidOptions), errors.Is(err, ErrInvalidReceipt),
		errors.Is(err, ErrTransactionConflict), errors.Is(err, ErrTransactionRejected),
		errors.Is(err, ErrClosed), errors.Is(err, ErrGroupRegistered),
		errors.Is(err, context.Canceled):
		return false
	}
	var be *BrokerError
	if errors.As(err, &be) {
		return be.Retryable()
	}
	return true
}
