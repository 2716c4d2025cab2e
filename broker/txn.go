package broker

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/message"
)

// Transactions: half messages arrive through send (sendHalf),
// END_TRANSACTION records outcomes, the service's check loop asks
// producers through checkTransaction, and halfback's own admin requests
// list, resume and resolve. RocketMQ's EndTransactionProcessor and
// TransactionalMessageCheckService; the state is kept by broker/txn.

// registerTxn handles END_TRANSACTION and the transaction admin requests.
func (b *Broker) registerTxn(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqEndTransaction, b.handleEndTransaction)
	mux.HandleFunc(remoting.ReqHalfbackListTransactions, b.handleListTransactions)
	mux.HandleFunc(remoting.ReqHalfbackResumeTransaction, b.handleResumeTransaction)
	mux.HandleFunc(remoting.ReqHalfbackResolveTransaction, b.handleResolveTransaction)
}

// sendHalf stores a transactional send as a half message.
func (b *Broker) sendHalf(ctx context.Context, req *remoting.Command, h sendHeader, qid int32, bornHost netip.AddrPort) *remoting.Command {
	if h.batch {
		return remoting.NewResponse(req, remoting.RespMessageIllegal, "batch messages cannot be transactional")
	}
	if t := message.TransactionType(h.sysFlag); t != message.TransactionNotType && t != message.TransactionPreparedType {
		return remoting.NewResponse(req, remoting.RespMessageIllegal,
			"a send cannot carry a commit or rollback transaction type; use END_TRANSACTION")
	}
	m := message.Message{Topic: h.topic, QueueID: qid, Flag: h.flag, SysFlag: h.sysFlag, BornTimestamp: h.bornTimestamp,
		BornHost: bornHost, ReconsumeTimes: h.reconsumeTimes, Body: req.Body, Properties: h.properties}
	start := time.Now()
	res, repeat, err := b.txn.SendHalfRepeat(ctx, &m, h.producerGroup)
	if !repeat {
		b.counts.stored(1, err)
	}
	b.traceHalf(&m, h.producerGroup, res, repeat, start, err)
	if errors.Is(err, txn.ErrBadHalf) {
		return remoting.NewResponse(req, remoting.RespMessageIllegal, err.Error())
	}
	var results []store.AppendResult
	if res.MsgID != "" {
		results = []store.AppendResult{res}
	}
	resp := sendResponse(req, qid, results, err)
	if id, ok := message.Property(h.properties, message.PropertyUniqKey); ok && res.MsgID != "" {
		resp.ExtFields["transactionId"] = id
	}
	return resp
}

// handleEndTransaction records a producer's commit, rollback or unknown.
// The official clients send it oneway; halfback's client waits for the
// answer: SUCCESS (also for a repeated outcome), TRANSACTION_FAILED for
// the opposite of a recorded outcome, SYSTEM_ERROR for an unknown
// transaction, a wrong group or a forged offset (see endErrorCode).
func (b *Broker) handleEndTransaction(ctx context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	er := txn.EndRequest{
		Group:       r.str("producerGroup", true),
		QueueOffset: r.i64("tranStateTableOffset", true),
		HalfOffset:  r.i64("commitLogOffset", true),
		FromCheck:   r.boolean("fromTransactionCheck"),
	}
	t := r.i32("commitOrRollback", true)
	if r.err != nil {
		return b.endFailed(conn, req, remoting.RespSystemError, r.err)
	}
	o, err := txn.OutcomeFromSysFlag(t)
	if err != nil {
		return b.endFailed(conn, req, remoting.RespSystemError, err)
	}
	er.Outcome = o
	if o == txn.Unknown && req.Remark != "" {
		b.opts.Logger.Info("broker: producer left a transaction unknown", "group", er.Group,
			"commitLogOffset", er.HalfOffset, "remark", req.Remark)
	}
	start := time.Now()
	out, err := b.txn.End(ctx, er)
	from := lifecycle.FromClient
	if er.FromCheck {
		from = lifecycle.FromCheck
	}
	b.traceEnd(o, out, from, start, err)
	if err != nil {
		return b.endFailed(conn, req, endErrorCode(err), err)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	if out.Duplicate {
		resp.Remark = "already " + out.Txn.StatusName
	}
	return resp
}

// endErrorCode maps txn.End's error to END_TRANSACTION's answer.
// SYSTEM_ERROR is kept for what ending again cannot change (no such half
// message for the group; halfback's client reports it as permanent): any
// other failure (the service closing, a state read or write failing) is
// SERVICE_NOT_AVAILABLE, which the producer retries.
func endErrorCode(err error) int16 {
	switch {
	case errors.Is(err, txn.ErrConflict):
		return remoting.RespTransactionFailed
	case errors.Is(err, txn.ErrUnknownTransaction), errors.Is(err, txn.ErrWrongGroup), errors.Is(err, txn.ErrWrongOffset):
		return remoting.RespSystemError
	}
	if code := sendErrorCode(err); code != remoting.RespSystemError {
		return code
	}
	return remoting.RespServiceNotAvailable
}

// endFailed answers a failed END_TRANSACTION, and logs it when the
// request was oneway (nobody else would hear of it).
func (b *Broker) endFailed(conn *remoting.Conn, req *remoting.Command, code int16, err error) *remoting.Command {
	if req.IsOneway() {
		b.opts.Logger.Warn("broker: END_TRANSACTION refused", "from", conn.RemoteAddr().String(), "err", err)
	}
	return remoting.NewResponse(req, code, err.Error())
}

// checkWriteWait bounds how long the check loop waits to write one
// check-back to one connection (a write it cuts short finishes in the
// background, or closes the connection after WriteTimeout).
const checkWriteWait = 3 * time.Second

// checkTransaction sends CHECK_TRANSACTION_STATE, oneway, to a live
// connection of the producer group, with the half message (its real topic
// and queue restored) as the body, as RocketMQ's check listener does.
func (b *Broker) checkTransaction(req txn.CheckRequest) bool {
	conns := b.groupTable().producerConns(req.Group)
	if len(conns) == 0 {
		return false
	}
	rec, err := message.AppendRecord(nil, &req.Message.Message)
	if err != nil {
		b.opts.Logger.Error("broker: encode check-back", "group", req.Group, "err", err)
		return false
	}
	message.SetOffsets(rec, req.QueueOffset, req.HalfOffset, req.Message.StoreTimestamp)
	cmd := remoting.NewRequest(remoting.ReqCheckTransactionState, map[string]string{
		"tranStateTableOffset": strconv.FormatInt(req.QueueOffset, 10),
		"commitLogOffset":      strconv.FormatInt(req.HalfOffset, 10),
		"msgId":                req.TransactionID,
		"transactionId":        req.TransactionID,
		"offsetMsgId":          req.MsgID,
	})
	cmd.Body = rec
	// Try the group's connections from a random one until a write succeeds.
	began := time.Now()
	start := rand.IntN(len(conns))
	// Each write is bounded by checkWriteWait: a producer connection that
	// stops reading must not hold up the check loop, and with it every other
	// group's check-backs, for the connection's WriteTimeout. A connection
	// whose write did not finish in time is skipped until that write must
	// have ended (written, or failed and the connection closed).
	now := time.Now()
	b.checkStalled.Range(func(k, v any) bool {
		if now.After(v.(time.Time)) {
			b.checkStalled.Delete(k)
		}
		return true
	})
	for i := range conns {
		conn := conns[(start+i)%len(conns)]
		if _, stalled := b.checkStalled.Load(conn); stalled {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkWriteWait)
		err := conn.InvokeOnewayContext(ctx, cmd)
		cancel()
		if err == nil {
			b.traceCheck(req, began)
			return true
		}
		if errors.Is(err, context.DeadlineExceeded) {
			b.checkStalled.Store(conn, time.Now().Add(remoting.DefaultWriteTimeout))
		}
	}
	return false
}

// handleListTransactions answers the live transactions as a JSON array
// of txn.Txn. Ext fields: status (pending, parked or empty for both),
// limit (default 1000).
func (b *Broker) handleListTransactions(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	var status txn.Status
	switch s := req.Ext("status"); s {
	case "":
	case "pending":
		status = txn.Pending
	case "parked":
		status = txn.Parked
	default:
		return remoting.NewResponse(req, remoting.RespInvalidParameter, "status "+strconv.Quote(s)+" is not pending or parked")
	}
	limit := 1000
	if v := req.Ext("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return remoting.NewResponse(req, remoting.RespInvalidParameter, "limit "+strconv.Quote(v)+" is not a positive number")
		}
		limit = n
	}
	return jsonResponse(req, b.txn.List(status, limit))
}

// handleResumeTransaction resumes the checks of a parked transaction
// named by ext field id (offset message id, transaction id or offset).
func (b *Broker) handleResumeTransaction(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	t, err := b.txn.Resume(ctx, req.Ext("id"))
	if err != nil {
		return remoting.NewResponse(req, txnAdminCode(err), err.Error())
	}
	return jsonResponse(req, t)
}

// handleResolveTransaction lets an operator commit or roll back a live
// transaction (ext fields id and outcome = commit | rollback).
func (b *Broker) handleResolveTransaction(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	var o txn.Outcome
	switch req.Ext("outcome") {
	case "commit":
		o = txn.Commit
	case "rollback":
		o = txn.Rollback
	default:
		return remoting.NewResponse(req, remoting.RespInvalidParameter, "outcome must be commit or rollback")
	}
	// A live one by any of its ids (refused when a transaction id names
	// several), else a resolved one by its offset: ending it again is then
	// answered from its recorded outcome.
	t, err := b.txn.Find(req.Ext("id"))
	if errors.Is(err, txn.ErrUnknownTransaction) {
		r, ok := b.txn.Get(req.Ext("id"), -1)
		if !ok {
			return remoting.NewResponse(req, remoting.RespQueryNotFound, "no transaction "+strconv.Quote(req.Ext("id")))
		}
		t, err = r, nil
	}
	if err != nil {
		return remoting.NewResponse(req, txnAdminCode(err), err.Error())
	}
	start := time.Now()
	out, err := b.txn.End(ctx, txn.EndRequest{HalfOffset: t.HalfOffset, Outcome: o, Admin: true})
	b.traceEnd(o, out, lifecycle.FromAdmin, start, err)
	if err != nil {
		return remoting.NewResponse(req, txnAdminCode(err), err.Error())
	}
	return jsonResponse(req, out.Txn)
}

func txnAdminCode(err error) int16 {
	switch {
	case errors.Is(err, txn.ErrUnknownTransaction):
		return remoting.RespQueryNotFound
	case errors.Is(err, txn.ErrAmbiguousID):
		return remoting.RespInvalidParameter
	case errors.Is(err, txn.ErrNotParked), errors.Is(err, txn.ErrConflict):
		return remoting.RespIllegalOperation
	}
	return endErrorCode(err)
}

func jsonResponse(req *remoting.Command, v any) *remoting.Command {
	body, err := json.Marshal(v)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}
