package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Phase-separated transactions: SendHalf stores a half message (invisible
// to consumers) and returns a HalfReceipt; later, in this process or any
// other of the producer group, EndTransaction commits (the message becomes
// visible) or rolls back (it never does). A half message nobody ends is
// checked back: the broker asks a client heartbeating the group, whose
// CheckListener answers.

// TransactionState is the outcome of a transaction.
type TransactionState int

const (
	// Unknown means the outcome is not decided yet; the broker checks
	// again later. It is the zero value.
	Unknown TransactionState = iota
	// Commit makes the half message visible to consumers.
	Commit
	// Rollback discards the half message.
	Rollback
)

// String returns COMMIT, ROLLBACK or UNKNOWN.
func (s TransactionState) String() string {
	switch s {
	case Commit:
		return "COMMIT"
	case Rollback:
		return "ROLLBACK"
	case Unknown:
		return "UNKNOWN"
	}
	return "TransactionState(" + strconv.Itoa(int(s)) + ")"
}

// wire returns the END_TRANSACTION commitOrRollback value: the sysFlag
// transaction type (8 commit, 12 rollback, 0 unknown).
func (s TransactionState) wire() int32 {
	switch s {
	case Commit:
		return message.TransactionCommitType
	case Rollback:
		return message.TransactionRollbackType
	}
	return message.TransactionNotType
}

// HalfReceipt identifies a stored half message: everything END_TRANSACTION
// needs. It round-trips through encoding/json (a Temporal payload); the
// field names are part of the format and never change.
type HalfReceipt struct {
	// ProducerGroup is the group that sent the half message; only it may
	// end the transaction.
	ProducerGroup string `json:"producerGroup"`
	// Topic is the message's real topic (its route finds the broker).
	Topic string `json:"topic"`
	// BrokerName is the broker group holding the half message.
	BrokerName string `json:"brokerName"`
	// BrokerAddr is the broker's address when the receipt was made, used
	// if the name servers no longer route BrokerName.
	BrokerAddr string `json:"brokerAddr"`
	// CommitLogOffset is the half record's commit-log offset.
	CommitLogOffset int64 `json:"commitLogOffset"`
	// QueueOffset is the half record's offset in the half queue
	// (END_TRANSACTION's tranStateTableOffset).
	QueueOffset int64 `json:"queueOffset"`
	// MsgID is the message id (UNIQ_KEY) the committed message keeps.
	MsgID string `json:"msgId"`
	// OffsetMsgID is the half record's offset message id.
	OffsetMsgID string `json:"offsetMsgId"`
	// TransactionID is the broker's transaction id (the UNIQ_KEY).
	TransactionID string `json:"transactionId"`
}

// Validate reports a receipt END_TRANSACTION cannot use, wrapping
// ErrInvalidReceipt.
func (r HalfReceipt) Validate() error {
	switch {
	case validateGroup(r.ProducerGroup) != nil:
		return fmt.Errorf("%w: producer group %q", ErrInvalidReceipt, r.ProducerGroup)
	case r.BrokerName == "" && r.BrokerAddr == "":
		return fmt.Errorf("%w: no broker name or address", ErrInvalidReceipt)
	case r.MsgID == "":
		return fmt.Errorf("%w: no msgId", ErrInvalidReceipt)
	case r.CommitLogOffset < 0 || r.QueueOffset < 0:
		return fmt.Errorf("%w: negative offset (commit log %d, queue %d)", ErrInvalidReceipt, r.CommitLogOffset, r.QueueOffset)
	}
	return nil
}

// CheckRequest is a broker's question about an unresolved half message.
type CheckRequest struct {
	// Receipt identifies the half message as SendHalf's receipt did
	// (BrokerName is empty if the broker is not in the client's routes).
	Receipt HalfReceipt
	// Message is the half message: its real topic and queue, body, tags,
	// keys and user properties.
	Message *MessageExt
}

// CheckListener decides unresolved transactions of a producer group.
//
// CheckTransaction is called on its own goroutine for each check-back,
// concurrently with other calls, so it must be safe for concurrent use. It
// returns Commit or Rollback once the local transaction's outcome is
// known, Unknown to be asked again later. ctx ends after
// ProducerOptions.CheckTimeout or when the broker's connection closes;
// what the listener returns is sent even then, if the connection allows.
type CheckListener interface {
	CheckTransaction(ctx context.Context, req *CheckRequest) TransactionState
}

// CheckListenerFunc adapts a function to [CheckListener].
type CheckListenerFunc func(ctx context.Context, req *CheckRequest) TransactionState

// CheckTransaction calls f.
func (f CheckListenerFunc) CheckTransaction(ctx context.Context, req *CheckRequest) TransactionState {
	return f(ctx, req)
}

// checkEntry is a registered producer group's listener.
type checkEntry struct {
	listener CheckListener
	timeout  time.Duration
}

// SendHalf stores m as a half message of the producer's group (TRAN_MSG,
// PGROUP, the prepared sysFlag bit), retrying as Send does, and returns its
// receipt. m may not be delayed: delayed transactional messages are
// refused with ErrInvalidMessage rather than silently sent undelayed. A
// retry after a lost response may store a second half message with the
// same MsgID; nobody ends it, so the check listener decides it.
func (p *Producer) SendHalf(ctx context.Context, m *Message) (HalfReceipt, error) {
	if err := p.usable(); err != nil {
		return HalfReceipt{}, err
	}
	if err := m.check(p.c.opts.MaxMessageSize); err != nil {
		return HalfReceipt{}, err
	}
	if m.delayed() {
		return HalfReceipt{}, invalid("transactional messages cannot be delayed")
	}
	id := m.id(p.c.uniq)
	props, err := m.properties(id)
	if err != nil {
		return HalfReceipt{}, err
	}
	props = message.SetProperty(props, message.PropertyTransactionPrepared, "true")
	props = message.SetProperty(props, message.PropertyProducerGroup, p.opts.Group)
	ctx, span := startSend(ctx, p.opts.Group, telemetry.TypeTransaction, []*Message{m}, id)
	o := &outgoing{op: "SEND_MESSAGE_V2", code: remoting.ReqSendMessageV2, topic: m.Topic, first: m,
		sysFlag: message.TransactionPreparedType, flag: m.Flag, props: injectTrace(ctx, props), body: m.Body}
	resp, mq, err := p.deliver(ctx, o)
	if resp == nil {
		endSpan(span, err)
		return HalfReceipt{}, err
	}
	r, rerr := p.receipt(ctx, resp, mq, id)
	err = errors.Join(err, rerr)
	endSpan(span, err)
	return r, err
}

// receipt builds a HalfReceipt from the answer to a half message.
func (p *Producer) receipt(ctx context.Context, resp *remoting.Command, mq MessageQueue, id string) (HalfReceipt, error) {
	r := HalfReceipt{ProducerGroup: p.opts.Group, Topic: mq.Topic, BrokerName: mq.BrokerName,
		MsgID: id, OffsetMsgID: resp.Ext("msgId"), TransactionID: resp.Ext("transactionId")}
	r.BrokerAddr, _ = p.c.brokerAddr(ctx, mq.BrokerName, "")
	if r.TransactionID == "" {
		r.TransactionID = id
	}
	r.QueueOffset, _ = strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
	_, off, err := message.ParseOffsetMsgID(r.OffsetMsgID)
	if err != nil {
		return r, fmt.Errorf("client: half message %s stored, but the broker's msgId does not give its offset: %w", id, err)
	}
	r.CommitLogOffset = off
	return r, nil
}

// EndTransaction commits or rolls back the half message r describes, and
// returns once the broker has recorded the outcome. Any Producer of
// r.ProducerGroup may call it, in any process: the broker is found by
// r.BrokerName through the name servers, else at r.BrokerAddr. Ending a
// transaction again with the same outcome returns nil (the broker stores
// the message once); with the other outcome it fails with
// ErrTransactionConflict. ErrTransactionRejected means the broker knows no
// such half message for the group. Transport failures and timeouts are
// retryable errors: call again. So is ErrNotDurable, a FLUSH_DISK_TIMEOUT-
// like answer: the outcome is recorded, not yet on disk, and ending again
// returns nil once it is. (Idempotence is halfback's broker's
// promise: an Apache RocketMQ broker answers a repeated end with
// SYSTEM_ERROR, which surfaces as ErrTransactionRejected.)
func (p *Producer) EndTransaction(ctx context.Context, r HalfReceipt, s TransactionState) error {
	if err := p.usable(); err != nil {
		return err
	}
	if s != Commit && s != Rollback {
		return fmt.Errorf("%w: transaction state %v (want COMMIT or ROLLBACK)", ErrInvalidReceipt, s)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if r.ProducerGroup != p.opts.Group {
		return fmt.Errorf("%w: receipt of producer group %q given to a producer of %q", ErrInvalidReceipt, r.ProducerGroup, p.opts.Group)
	}
	ctx, span := startSettle(ctx, r, s)
	err := p.endTransaction(ctx, r, s)
	endSpan(span, err)
	return err
}

// endTransaction sends END_TRANSACTION for a validated receipt.
func (p *Producer) endTransaction(ctx context.Context, r HalfReceipt, s TransactionState) error {
	addr, err := p.c.brokerAddr(ctx, r.BrokerName, r.Topic)
	if err != nil {
		if r.BrokerAddr == "" {
			return err
		}
		addr = r.BrokerAddr
	}
	const op = "END_TRANSACTION"
	resp, err := p.c.invoke(ctx, addr, op, endTransactionRequest(r, s, false))
	if err != nil {
		return err
	}
	switch resp.Code {
	case remoting.RespSuccess:
		return nil
	case remoting.RespTransactionFailed:
		return fmt.Errorf("%w: %s %s at %s: %s", ErrTransactionConflict, s, r.MsgID, addr, resp.Remark)
	case remoting.RespSystemError:
		return fmt.Errorf("%w: %s %s at %s: %s", ErrTransactionRejected, s, r.MsgID, addr, resp.Remark)
	case remoting.RespFlushDiskTimeout, remoting.RespFlushSlaveTimeout:
		// The outcome is recorded but not yet durable; ending again
		// returns SUCCESS once it is. (SLAVE_NOT_AVAILABLE is not one of
		// these: an Apache RocketMQ slave answers it having recorded
		// nothing; it is a retryable BrokerError.)
		return fmt.Errorf("%w: %s %s at %s: code %d: %s", ErrNotDurable, s, r.MsgID, addr, resp.Code, resp.Remark)
	}
	return &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
}

// endTransactionRequest builds END_TRANSACTION (EndTransactionRequestHeader).
func endTransactionRequest(r HalfReceipt, s TransactionState, fromCheck bool) *remoting.Command {
	return newRequest(remoting.ReqEndTransaction, map[string]string{
		"producerGroup":        r.ProducerGroup,
		"tranStateTableOffset": strconv.FormatInt(r.QueueOffset, 10),
		"commitLogOffset":      strconv.FormatInt(r.CommitLogOffset, 10),
		"commitOrRollback":     strconv.Itoa(int(s.wire())),
		"fromTransactionCheck": strconv.FormatBool(fromCheck),
		"msgId":                r.MsgID,
		"transactionId":        r.TransactionID,
	})
}
