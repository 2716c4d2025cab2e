package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
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
	mux.HandleFunc(remoting.ReqInvokeBrokerToGetConsumerStatus, b.handleGetConsumerStatus)
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

// consumerStatusTimeout bounds each consumer's answer to
// GET_CONSUMER_STATUS_FROM_CLIENT. RocketMQ's Broker2Client waits 5 s for
// each, one after another, but mqadmin gives up on the broker's answer
// after 5 s (DefaultMQAdminExt's timeoutMillis): one hung consumer would
// turn the others' offsets into a timeout. The consumers are asked at
// once here, so the bound leaves the tool time to get the answer without
// the hung ones. A variable for tests.
var consumerStatusTimeout = 3 * time.Second

// handleGetConsumerStatus answers INVOKE_BROKER_TO_GET_CONSUMER_STATUS
// (mqadmin getConsumerStatus) as RocketMQ's Broker2Client.getConsumeStatus:
// it asks each online consumer of group (only the one whose client id the
// header's clientAddr names, when it names one) for its offsets of topic
// (GET_CONSUMER_STATUS_FROM_CLIENT), all at once, and answers RocketMQ's
// GetConsumerStatusBody: consumerTable holds, by client id, the offset
// each queue of topic is consumed up to in that client's memory. A
// consumer that does not answer, or not in time, is left out; with no
// consumer online the answer is SYSTEM_ERROR, and a clientAddr that names
// none of them gets an empty table, as RocketMQ's.
func (b *Broker) handleGetConsumerStatus(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic, group, only := r.str("topic", true), r.str("group", true), r.str("clientAddr", false)
	if r.err != nil {
		return headerError(req, r.err)
	}
	online := b.groupTable().consumerMembers(group)
	if len(online) == 0 {
		return remoting.NewResponse(req, remoting.RespSystemError, "No Any Consumer online in the consumer group: ["+group+"]")
	}
	var members []memberKey // none, when clientAddr names no member: an empty table, as RocketMQ's
	for _, m := range online {
		if only == "" || m.id == only {
			members = append(members, m)
		}
	}
	release, busy := b.takeConsumerCall(req)
	if busy != nil {
		return busy
	}
	defer release()
	tables := make([][]mqEntry, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { tables[i] = b.askConsumerStatus(ctx, m, topic, group) })
	}
	wg.Wait()
	byClient := map[string][]mqEntry{}
	for i, m := range members {
		// One table per client id, as RocketMQ's: of two consumers sharing
		// an id (see consumerMembers), either one's.
		if _, seen := byClient[m.id]; !seen && tables[i] != nil {
			byClient[m.id] = tables[i]
		}
	}
	body, err := encodeConsumerStatus(byClient)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// askConsumerStatus asks one consumer for its offsets of topic, and
// returns them, or nil if it did not answer with them.
func (b *Broker) askConsumerStatus(ctx context.Context, m memberKey, topic, group string) []mqEntry {
	cctx, cancel := context.WithTimeout(ctx, consumerStatusTimeout)
	defer cancel()
	answer, err := m.conn.Invoke(cctx, remoting.NewRequest(remoting.ReqGetConsumerStatusFromClient,
		map[string]string{"topic": topic, "group": group, "clientAddr": m.id}))
	if err == nil && answer.Code != remoting.RespSuccess {
		err = fmt.Errorf("code %d: %s", answer.Code, answer.Remark)
	}
	var table []mqEntry
	if err == nil {
		err = fastjson.EachQueueEntry(answer.Body, "messageQueueTable", func(q fastjson.Queue, value func(any) error) error {
			var off int64
			if err := value(&off); err != nil {
				return err
			}
			table = append(table, mqEntry{key: mqKey(q), value: off})
			return nil
		})
	}
	if err != nil {
		b.opts.Logger.Warn("consumer did not give its status", "group", group, "client", m.id, "remote", m.conn.RemoteAddr(), "err", err)
		return nil
	}
	if table == nil {
		table = []mqEntry{}
	}
	return table
}

// encodeConsumerStatus writes RocketMQ's GetConsumerStatusBody as fastjson
// does: consumerTable maps client ids to maps keyed by MessageQueue
// objects; messageQueueTable, which RocketMQ's broker leaves empty, is
// empty.
func encodeConsumerStatus(byClient map[string][]mqEntry) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"consumerTable":{`)
	for i, id := range slices.Sorted(maps.Keys(byClient)) {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(id)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		table, err := encodeQueueMap(byClient[id])
		if err != nil {
			return nil, err
		}
		buf.Write(table)
	}
	buf.WriteString(`},"messageQueueTable":{}}`)
	return buf.Bytes(), nil
}

// takeConsumerCall takes one of the maxConsumerCalls slots for req, or
// returns SYSTEM_BUSY for it when none is free.
func (b *Broker) takeConsumerCall(req *remoting.Command) (release func(), busy *remoting.Command) {
	select {
	case b.consumerCalls <- struct{}{}:
		return func() { <-b.consumerCalls }, nil
	default:
		return nil, remoting.NewResponse(req, remoting.RespSystemBusy, "too many calls to consumers in flight, try again later")
	}
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
	release, busy := b.takeConsumerCall(req)
	if busy != nil {
		return busy
	}
	defer release()
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
