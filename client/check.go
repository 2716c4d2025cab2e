package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Check-backs: a broker sends CHECK_TRANSACTION_STATE (oneway) about a
// half message nobody ended, on a connection that heartbeated the message's
// producer group. Ext fields: tranStateTableOffset, commitLogOffset, msgId,
// transactionId, offsetMsgId; the body is the half message as one stored
// record, with its real topic and queue and PGROUP among its properties.
// The client asks the group's CheckListener and answers with
// END_TRANSACTION (fromTransactionCheck=true) on the same connection: a
// two-way request for a commit or rollback, so a refusal is logged, and
// oneway for Unknown.

// checkEntryFor returns the listener registered for group.
func (c *Client) checkEntryFor(group string) (checkEntry, bool) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	e, ok := c.producers[group]
	return e, ok
}

// handleCheckTransaction serves CHECK_TRANSACTION_STATE.
func (c *Client) handleCheckTransaction(ctx context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	cr, err := c.checkRequest(conn, req)
	if err != nil {
		c.log.Warn("client: bad transaction check", "broker", conn.RemoteAddr(), "err", err)
		return nil
	}
	group := cr.Receipt.ProducerGroup
	entry, ok := c.checkEntryFor(group)
	if !ok {
		c.log.Debug("client: transaction check for a group without listener", "group", group, "msgId", cr.Receipt.MsgID)
		return nil
	}
	// The listener is asked off the connection's handler slot: a slow
	// listener must not fill the connection's MaxInFlight, past which the
	// broker's further check-backs (which it counts as checks) would be
	// dropped. ctx still ends when the connection closes; Close waits.
	c.checks.Add(1)
	go func() {
		defer c.checks.Done()
		ctx, span := startCheck(ctx, cr)
		state, lerr := c.askListener(ctx, entry, cr)
		if span.IsRecording() {
			span.SetAttributes(keyTxnState.String(state.String()))
		}
		endSpan(span, errors.Join(lerr, c.answerCheck(ctx, conn, cr, state)))
	}()
	return nil
}

// answerCheck sends the listener's state for cr to the broker; the error
// is logged and returned for the check's span.
func (c *Client) answerCheck(ctx context.Context, conn *remoting.Conn, cr *CheckRequest, state TransactionState) error {
	group := cr.Receipt.ProducerGroup
	answer := endTransactionRequest(cr.Receipt, state, true)
	if state == Unknown {
		// Nothing to learn from the answer, and Apache RocketMQ's broker
		// sends none for an unknown outcome.
		err := conn.InvokeOneway(answer)
		if err != nil {
			c.log.Warn("client: answering transaction check failed", "group", group, "msgId", cr.Receipt.MsgID, "state", state, "err", err)
		}
		return err
	}
	resp, err := c.invokeCheckAnswer(ctx, conn, answer)
	switch {
	case err != nil:
		c.log.Warn("client: answering transaction check failed", "group", group, "msgId", cr.Receipt.MsgID, "state", state, "err", err)
		return err
	case resp.Code != remoting.RespSuccess:
		c.log.Warn("client: broker refused transaction check answer", "group", group, "msgId", cr.Receipt.MsgID,
			"state", state, "code", resp.Code, "remark", resp.Remark)
		return &BrokerError{Op: "END_TRANSACTION", Addr: conn.RemoteAddr().String(), Code: resp.Code, Remark: resp.Remark}
	}
	c.log.Debug("client: transaction check answered", "group", group, "msgId", cr.Receipt.MsgID, "state", state)
	return nil
}

// Retries of a check's answer the broker refused as busy (SYSTEM_BUSY:
// its connection had MaxInFlight requests running, as when a burst of
// check-backs is answered at once): the first after checkBusyRetryMin,
// each later one after twice the wait, up to checkBusyRetryMax, for at
// most twice RequestTimeout from the first (the last attempt may take one
// RequestTimeout more). Without them the answer is lost and
// the broker counts the check against the half message's CheckMax.
const (
	checkBusyRetryMin = 20 * time.Millisecond
	checkBusyRetryMax = 400 * time.Millisecond
)

// invokeCheckAnswer sends a check's END_TRANSACTION, again while the
// broker answers SYSTEM_BUSY (see checkBusyRetryMin).
func (c *Client) invokeCheckAnswer(ctx context.Context, conn *remoting.Conn, answer *remoting.Command) (*remoting.Command, error) {
	deadline := time.Now().Add(2 * c.opts.RequestTimeout)
	for wait := checkBusyRetryMin; ; wait = min(2*wait, checkBusyRetryMax) {
		rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
		resp, err := conn.Invoke(rctx, answer)
		cancel()
		if err != nil || resp.Code != remoting.RespSystemBusy || time.Now().Add(wait).After(deadline) || !sleepCtx(ctx, wait) {
			return resp, err
		}
	}
}

// askListener calls the listener within its timeout; a panic, or a state
// that is none of the three, is Unknown (an END_TRANSACTION of type 0 sent
// two-way gets no answer from Apache RocketMQ's broker), with an error
// saying which for the check's span.
func (c *Client) askListener(ctx context.Context, e checkEntry, cr *CheckRequest) (state TransactionState, err error) {
	lctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("client: check listener panicked", "group", cr.Receipt.ProducerGroup, "msgId", cr.Receipt.MsgID, "panic", p)
			state, err = Unknown, fmt.Errorf("client: check listener panicked: %v", p)
		}
	}()
	state = e.listener.CheckTransaction(lctx, cr)
	if state != Commit && state != Rollback && state != Unknown {
		c.log.Error("client: check listener returned an invalid state; answering unknown",
			"group", cr.Receipt.ProducerGroup, "msgId", cr.Receipt.MsgID, "state", int(state))
		return Unknown, fmt.Errorf("client: check listener returned invalid state %d", int(state))
	}
	return state, nil
}

// checkRequest decodes a CHECK_TRANSACTION_STATE request.
func (c *Client) checkRequest(conn *remoting.Conn, req *remoting.Command) (*CheckRequest, error) {
	ext, _, err := message.Decode(req.Body)
	if err != nil {
		return nil, fmt.Errorf("half message: %w", err)
	}
	m := newMessageExt(&ext, c.log)
	r := HalfReceipt{
		ProducerGroup: m.SystemProperties[message.PropertyProducerGroup],
		Topic:         m.Topic,
		MsgID:         req.Ext("msgId"),
		OffsetMsgID:   req.Ext("offsetMsgId"),
		TransactionID: req.Ext("transactionId"),
	}
	if r.ProducerGroup == "" {
		return nil, fmt.Errorf("half message %s has no %s property", m.MsgID, message.PropertyProducerGroup)
	}
	if uniq := m.SystemProperties[message.PropertyUniqKey]; uniq != "" {
		r.MsgID = uniq
	}
	if r.TransactionID == "" {
		r.TransactionID = r.MsgID
	}
	if r.CommitLogOffset, err = strconv.ParseInt(req.Ext("commitLogOffset"), 10, 64); err != nil {
		return nil, fmt.Errorf("commitLogOffset %q: %w", req.Ext("commitLogOffset"), err)
	}
	if r.QueueOffset, err = strconv.ParseInt(req.Ext("tranStateTableOffset"), 10, 64); err != nil {
		return nil, fmt.Errorf("tranStateTableOffset %q: %w", req.Ext("tranStateTableOffset"), err)
	}
	r.BrokerAddr = c.pool.addrOf(conn)
	if r.BrokerAddr == "" {
		r.BrokerAddr = conn.RemoteAddr().String()
	}
	r.BrokerName = c.routes.brokerName(r.BrokerAddr)
	return &CheckRequest{Receipt: r, Message: m}, nil
}
