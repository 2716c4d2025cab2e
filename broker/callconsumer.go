package broker

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// callConsumerTimeout bounds a forwarded call's wait for the consumer's
// answer (RocketMQ's Broker2Client.callClient waits 10 s). A variable for
// tests.
var callConsumerTimeout = 10 * time.Second

// maxConsumerCalls bounds the forwarded calls in flight, broker-wide (as
// RocketMQ's admin thread pool, 16 threads, bounds them): each holds a
// handler for up to callConsumerTimeout, and CONSUME_MESSAGE_DIRECTLY a
// whole message read from the log, which the request's few bytes do not
// count in MaxInFlightBytes. A call past the bound is SYSTEM_BUSY.
const maxConsumerCalls = 16

// registerCallConsumer handles GET_CONSUMER_RUNNING_INFO and
// CONSUME_MESSAGE_DIRECTLY from an administration tool (mqadmin
// consumerRunningInfo / consumerStatus, consumeMessage), as RocketMQ's
// AdminBrokerProcessor.callConsumer: the broker forwards the request to
// the online consumer the header names (consumerGroup, clientId) and
// answers with the consumer's answer. CONSUME_MESSAGE_DIRECTLY carries the
// message (its offset message id, msgId) in the forwarded body, as stored,
// and the broker's name (brokerName), which the clients give the message's
// queue.
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
		return b.callConsumer(ctx, req, func() ([]byte, *remoting.Command) {
			rec, err := b.store.ReadRecord(phys)
			if err != nil {
				return nil, remoting.NewResponse(req, remoting.RespSystemError, "no message found by msgId "+id)
			}
			return rec, nil
		})
	})
}

// callConsumer forwards req to the consumer it names and returns its
// answer under req's opaque. body, if not nil, gives the forwarded body
// (or the answer to send instead); it is called only once the call has a
// slot among maxConsumerCalls.
func (b *Broker) callConsumer(ctx context.Context, req *remoting.Command, body func() ([]byte, *remoting.Command)) *remoting.Command {
	r := reqHeader{req: req}
	group, clientID := r.str("consumerGroup", true), r.str("clientId", true)
	if r.err != nil {
		return headerError(req, r.err)
	}
	conn := b.groupTable().consumerConn(group, clientID)
	if conn == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "The Consumer <"+group+"> <"+clientID+"> not online")
	}
	select {
	case b.consumerCalls <- struct{}{}:
		defer func() { <-b.consumerCalls }()
	default:
		return remoting.NewResponse(req, remoting.RespSystemBusy, "too many calls to consumers in flight, try again later")
	}
	fwd := remoting.NewRequest(req.Code, maps.Clone(req.ExtFields))
	fwd.SerializeType = req.SerializeType
	fwd.Body = req.Body
	if body != nil {
		rec, refused := body()
		if refused != nil {
			return refused
		}
		fwd.Body = rec
		fwd.ExtFields["brokerName"] = b.opts.BrokerName
	}
	cctx, cancel := context.WithTimeout(ctx, callConsumerTimeout)
	defer cancel()
	answer, err := conn.Invoke(cctx, fwd)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return remoting.NewResponse(req, remoting.RespConsumeMsgTimeout, "consumer <"+group+"> <"+clientID+"> Timeout: "+err.Error())
		}
		return remoting.NewResponse(req, remoting.RespSystemError, "invoke consumer <"+group+"> <"+clientID+"> failed: "+err.Error())
	}
	resp := remoting.NewResponse(req, answer.Code, answer.Remark)
	maps.Copy(resp.ExtFields, answer.ExtFields)
	resp.Body = answer.Body
	return resp
}
