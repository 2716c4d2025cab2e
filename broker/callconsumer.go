package broker

import (
	"context"
	"errors"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// callConsumerTimeout bounds a forwarded call's wait for the consumer's
// answer (RocketMQ's Broker2Client.callClient waits 10 s).
const callConsumerTimeout = 10 * time.Second

// registerCallConsumer handles GET_CONSUMER_RUNNING_INFO and
// CONSUME_MESSAGE_DIRECTLY from an administration tool (mqadmin
// consumerRunningInfo / consumerStatus, consumeMessage), as RocketMQ's
// AdminBrokerProcessor.callConsumer: the broker forwards the request to
// the online consumer the header names (consumerGroup, clientId) and
// answers with the consumer's answer. CONSUME_MESSAGE_DIRECTLY carries the
// message (its offset message id, msgId) in the forwarded body, as stored.
func (b *Broker) registerCallConsumer(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqGetConsumerRunningInfo, func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		return b.callConsumer(ctx, req, nil)
	})
	mux.HandleFunc(remoting.ReqConsumeMessageDirectly, func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		r := reqHeader{req: req}
		id := r.str("msgId", true)
		if r.err != nil {
			return headerError(req, r.err)
		}
		_, phys, err := message.ParseOffsetMsgID(id)
		if err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, "msgId "+id+" is not an offset message id: "+err.Error())
		}
		rec, err := b.store.ReadRecord(phys)
		if err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, "no message found by msgId "+id)
		}
		return b.callConsumer(ctx, req, rec)
	})
}

// callConsumer forwards req (with body, if not nil) to the consumer it
// names and returns its answer under req's opaque.
func (b *Broker) callConsumer(ctx context.Context, req *remoting.Command, body []byte) *remoting.Command {
	r := reqHeader{req: req}
	group, clientID := r.str("consumerGroup", true), r.str("clientId", true)
	if r.err != nil {
		return headerError(req, r.err)
	}
	conn := b.groupTable().consumerConn(group, clientID)
	if conn == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "The Consumer <"+group+"> <"+clientID+"> not online")
	}
	fwd := remoting.NewRequest(req.Code, req.ExtFields)
	fwd.SerializeType = req.SerializeType
	fwd.Body = req.Body
	if body != nil {
		fwd.Body = body
	}
	cctx, cancel := context.WithTimeout(ctx, callConsumerTimeout)
	defer cancel()
	answer, err := conn.Invoke(cctx, fwd)
	if err != nil {
		remark := "invoke consumer <" + group + "> <" + clientID + "> failed: " + err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			remark = "consumer <" + group + "> <" + clientID + "> Timeout: " + err.Error()
		}
		return remoting.NewResponse(req, remoting.RespSystemError, remark)
	}
	resp := remoting.NewResponse(req, answer.Code, answer.Remark)
	for k, v := range answer.ExtFields {
		resp.ExtFields[k] = v
	}
	resp.Body = answer.Body
	return resp
}
