package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Producer sends messages for one producer group over its Client's
// connections. It holds no goroutines of its own; create one per group and
// share it. Its methods are safe for concurrent use.
type Producer struct {
	c      *Client
	opts   ProducerOptions
	closed atomic.Bool
}

// SendResult is the broker's answer to a stored message. It has JSON
// tags, so it can be a Temporal activity result.
type SendResult struct {
	// MsgID is the message id this client assigned (UNIQ_KEY); consumers
	// see it as MessageExt.MsgID.
	MsgID string `json:"msgId"`
	// OffsetMsgID is the broker's id: its address and the commit-log offset.
	OffsetMsgID string `json:"offsetMsgId"`
	// Topic, BrokerName and QueueID name the queue the message went to,
	// QueueOffset its position there.
	Topic       string `json:"topic"`
	BrokerName  string `json:"brokerName"`
	QueueID     int32  `json:"queueId"`
	QueueOffset int64  `json:"queueOffset"`
}

// NewProducer returns a producer for opts.Group. With a CheckListener it
// registers the group for check-backs (ErrGroupRegistered if the group
// already has a listener in this Client).
func (c *Client) NewProducer(opts ProducerOptions) (*Producer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	opts = opts.withDefaults()
	if opts.CheckListener != nil {
		if err := c.registerProducerGroup(opts.Group, opts.CheckListener, opts.CheckTimeout); err != nil {
			return nil, err
		}
	}
	return &Producer{c: c, opts: opts}, nil
}

// Group returns the producer group.
func (p *Producer) Group() string { return p.opts.Group }

// Close unregisters the producer's check listener; later calls fail with
// ErrClosed. The Client stays open. A second Close returns ErrClosed.
func (p *Producer) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if p.opts.CheckListener != nil {
		p.c.unregisterProducerGroup(p.opts.Group)
		p.c.leaveProducerGroup(p.opts.Group)
	}
	return nil
}

func (p *Producer) usable() error {
	if p.closed.Load() || p.c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Send stores m and waits for the broker's answer, retrying on another
// queue after a transport failure or a retryable response code (at most
// RetryTimes times, each attempt bounded by RequestTimeout, all of them by
// ctx). Every attempt carries the same MsgID, so a consumer can drop the
// duplicate a retry after a lost response may store. An invalid message
// fails with ErrInvalidMessage or ErrMessageTooLarge before anything is
// sent; a topic the name servers have no route for, or none with a
// writable queue, with ErrTopicNotFound at once (not retried); a FLUSH_DISK_TIMEOUT-like answer returns the result with
// ErrNotDurable; other refusals are *BrokerError.
func (p *Producer) Send(ctx context.Context, m *Message) (SendResult, error) {
	if err := p.usable(); err != nil {
		return SendResult{}, err
	}
	if err := m.check(p.c.opts.MaxMessageSize); err != nil {
		return SendResult{}, err
	}
	id := m.id(p.c.uniq)
	props, err := m.properties(id)
	if err != nil {
		return SendResult{}, err
	}
	ctx, span := startSend(ctx, p.opts.Group, messageType(m), []*Message{m}, id)
	o := &outgoing{op: "SEND_MESSAGE_V2", code: remoting.ReqSendMessageV2, topic: m.Topic, first: m,
		flag: m.Flag, props: injectTrace(ctx, props), body: m.Body}
	resp, mq, err := p.deliver(ctx, o)
	endSpan(span, err)
	if resp == nil {
		return SendResult{}, err
	}
	return singleResult(resp, mq, id), err
}

// SendBatch stores msgs, all of one topic and none delayed, in one request
// to one queue, where they get consecutive offsets; it retries as Send
// does. The results are in msgs' order. The whole batch's encoded size is
// bounded by Options.MaxMessageSize.
func (p *Producer) SendBatch(ctx context.Context, msgs []*Message) ([]SendResult, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 || msgs[0] == nil { // no topic to name a span after
		_, _, err := p.encodeBatch(ctx, msgs, false)
		return nil, err
	}
	keepOwn := !trace.SpanContextFromContext(ctx).IsValid()
	ctx, span := startSend(ctx, p.opts.Group, telemetry.TypeNormal, msgs, "")
	body, ids, err := p.encodeBatch(ctx, msgs, keepOwn)
	if err != nil {
		endSpan(span, err)
		return nil, err
	}
	o := &outgoing{op: "SEND_BATCH_MESSAGE", code: remoting.ReqSendBatchMessage, topic: msgs[0].Topic,
		first: msgs[0], body: body, batch: true}
	resp, mq, err := p.deliver(ctx, o)
	endSpan(span, err)
	if resp == nil {
		return nil, err
	}
	offsetIDs := strings.Split(resp.Ext("msgId"), ",")
	first := singleResult(resp, mq, "")
	out := make([]SendResult, len(ids))
	for i, id := range ids {
		out[i] = first
		out[i].MsgID = id
		out[i].QueueOffset = first.QueueOffset + int64(i)
		out[i].OffsetMsgID = ""
		if len(offsetIDs) == len(ids) {
			out[i].OffsetMsgID = offsetIDs[i]
		}
	}
	return out, err
}

// Batch element layout, as the broker's batch decoder and RocketMQ's
// MessageDecoder.encodeMessage have it: totalSize int32 | magic int32 (0)
// | bodyCRC int32 | flag int32 | bodyLen int32 | body | propsLen int16 |
// properties.
const batchElemFixed = 4 + 4 + 4 + 4 + 4 + 2

// encodeBatch validates msgs and returns the batch body and message ids;
// every message carries the trace context of ctx.
func (p *Producer) encodeBatch(ctx context.Context, msgs []*Message, keepOwn bool) ([]byte, []string, error) {
	if len(msgs) == 0 {
		return nil, nil, invalid("empty batch")
	}
	limit := p.c.opts.MaxMessageSize
	var body []byte
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		if err := m.check(limit); err != nil {
			return nil, nil, fmt.Errorf("batch message %d: %w", i, err)
		}
		switch {
		case m.Topic != msgs[0].Topic:
			return nil, nil, invalid("batch message %d is for topic %s, the batch for %s", i, m.Topic, msgs[0].Topic)
		case m.delayed():
			return nil, nil, invalid("batch message %d is delayed; batches cannot be", i)
		}
		ids[i] = m.id(p.c.uniq)
		props, err := m.properties(ids[i])
		if err != nil {
			return nil, nil, fmt.Errorf("batch message %d: %w", i, err)
		}
		if own := trace.SpanContextFromContext(telemetry.Extract(context.Background(), m.Properties)); !keepOwn || !own.IsValid() ||
			own.TraceID() == trace.SpanContextFromContext(ctx).TraceID() {
			// With no span in the caller's ctx, a message whose caller put
			// another trace in its properties keeps it (as Send would): the
			// batch's span is in the first message's trace.
			props = injectTrace(ctx, props)
		}
		size := batchElemFixed + len(m.Body) + len(props)
		if len(body)+size > limit {
			return nil, nil, fmt.Errorf("%w: batch of %d bytes or more, limit %d", ErrMessageTooLarge, len(body)+size, limit)
		}
		be := binary.BigEndian
		body = be.AppendUint32(body, uint32(size))
		body = be.AppendUint32(body, 0)
		body = be.AppendUint32(body, uint32(message.BodyCRC(m.Body)))
		body = be.AppendUint32(body, uint32(m.Flag))
		body = be.AppendUint32(body, uint32(len(m.Body)))
		body = append(body, m.Body...)
		body = be.AppendUint16(body, uint16(len(props)))
		body = append(body, props...)
	}
	return body, ids, nil
}

// outgoing is one send, retried by deliver on the queues it selects.
type outgoing struct {
	op      string
	code    int16
	topic   string
	first   *Message // what the selector sees
	sysFlag int32
	flag    int32
	props   string
	body    []byte
	batch   bool
}

// request builds the SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE request for mq
// (SendMessageRequestHeaderV2: a producerGroup, b topic, c defaultTopic,
// d defaultTopicQueueNums, e queueId, f sysFlag, g bornTimestamp, h flag,
// i properties, j reconsumeTimes, k unitMode, m batch).
func (o *outgoing) request(group string, mq MessageQueue) *remoting.Command {
	req := newRequest(o.code, map[string]string{
		"a": group, "b": o.topic, "c": autoCreateTopicKey, "d": strconv.Itoa(defaultTopicQueueNums),
		"e": strconv.Itoa(int(mq.QueueID)), "f": strconv.Itoa(int(o.sysFlag)),
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": strconv.Itoa(int(o.flag)),
		"i": o.props, "j": "0", "k": "false", "m": strconv.FormatBool(o.batch),
	})
	req.Body = o.body
	return req
}

// deliver sends o, retrying as Send documents. It returns the stored
// answer (SUCCESS, or a flush timeout with an ErrNotDurable error) and its
// queue, or a nil response and the last error.
func (p *Producer) deliver(ctx context.Context, o *outgoing) (*remoting.Command, MessageQueue, error) {
	var last error
	lastBroker := ""
	for attempt := 0; attempt <= p.opts.RetryTimes; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, MessageQueue{}, errors.Join(err, last)
		}
		queues, err := p.c.publishQueues(ctx, o.topic)
		if err != nil {
			// No route, or none to write to: the name servers asked a
			// moment ago would answer the same now. RocketMQ's producers
			// fail at once too ("No route info of this topic").
			if last = err; !IsRetryable(err) || errors.Is(err, ErrTopicNotFound) {
				break
			}
			continue
		}
		mq := p.opts.Selector.Select(o.first, queues, lastBroker)
		resp, addr, err := p.attempt(ctx, o, mq)
		if err != nil {
			if last, lastBroker = err, mq.BrokerName; !IsRetryable(err) {
				break
			}
			continue
		}
		switch resp.Code {
		case remoting.RespSuccess:
			return resp, mq, nil
		case remoting.RespFlushDiskTimeout, remoting.RespFlushSlaveTimeout, remoting.RespSlaveNotAvailable:
			return resp, mq, fmt.Errorf("%w: %s to %s: code %d: %s", ErrNotDurable, o.op, addr, resp.Code, resp.Remark)
		}
		be := &BrokerError{Op: o.op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
		if last, lastBroker = be, mq.BrokerName; !be.Retryable() {
			break
		}
		p.c.log.Debug("client: send refused, retrying", "topic", o.topic, "queue", mq, "code", resp.Code, "remark", resp.Remark)
	}
	return nil, MessageQueue{}, last
}

// attempt sends o to mq's broker once.
func (p *Producer) attempt(ctx context.Context, o *outgoing, mq MessageQueue) (*remoting.Command, string, error) {
	addr, err := p.c.brokerAddr(ctx, mq.BrokerName, o.topic)
	if err != nil {
		return nil, "", err
	}
	resp, err := p.c.invoke(ctx, addr, o.op, o.request(p.opts.Group, mq))
	return resp, addr, err
}

// singleResult reads a send response.
func singleResult(resp *remoting.Command, mq MessageQueue, id string) SendResult {
	r := SendResult{MsgID: id, OffsetMsgID: resp.Ext("msgId"), Topic: mq.Topic, BrokerName: mq.BrokerName, QueueID: mq.QueueID}
	if q, err := strconv.ParseInt(resp.Ext("queueId"), 10, 32); err == nil {
		r.QueueID = int32(q)
	}
	r.QueueOffset, _ = strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
	return r
}
