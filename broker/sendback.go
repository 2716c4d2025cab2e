package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
)

// Retry and dead-letter queues. A consumer that fails a message sends it
// back (CONSUMER_SEND_MSG_BACK) by its commit-log offset; the broker stores
// a copy in the group's retry topic %RETRY%<group> with one more reconsume
// and a delay level, or, once the group's retries are used up, in its
// dead-letter topic %DLQ%<group>. RocketMQ's
// SendMessageProcessor.consumerSendMsgBack.

// sendBackHeader is ConsumerSendMsgBackRequestHeader.
type sendBackHeader struct {
	offset      int64 // commit-log offset of the failed message
	group       string
	delayLevel  int // 0: the broker picks 3 + reconsumeTimes; < 0: straight to the DLQ
	originTopic string
	maxTimes    int // maxReconsumeTimes, or -1 when absent
}

// topicsNotSentBack hold records no consumer was given: a send-back naming
// one of them is forged.
var topicsNotSentBack = map[string]bool{
	delay.ScheduleTopic: true,
	delay.TimerTopic:    true,
	txn.HalfTopic:       true,
	txn.OpTopic:         true,
	txn.CheckMaxTopic:   true, // parked and moved copies of half messages
}

// storeSentBack stores a send-back copy of group's: into its retry topic
// (a queue picked at random, as consumerSendMsgBack does) through the delay
// scheduler, or straight into the dead-letter queue (one queue).
func (b *Broker) storeSentBack(ctx context.Context, group string, m *message.Message, dlq bool) (store.AppendResult, error) {
	queues := 1
	if !dlq {
		queues = b.retryQueueNums(group)
	}
	if err := b.ensureGroupTopic(m.Topic, queues); err != nil {
		return store.AppendResult{}, err
	}
	m.QueueID = 0
	if tc, ok := b.topics.get(m.Topic); ok && !dlq && tc.WriteQueueNums > 1 {
		m.QueueID = rand.Int32N(int32(tc.WriteQueueNums))
	}
	if !dlq {
		if _, err := b.delay.Prepare(m); err != nil {
			return store.AppendResult{}, err
		}
	}
	res, err := b.store.Append(ctx, m)
	b.counts.stored(1, err)
	if written(err) {
		b.delay.Scheduled(m)
	}
	return res, err
}

// errNoRetryTopic marks a send-back for a legal group whose name is too
// long for %RETRY%<group> (the clients allow 255 characters, a topic 127),
// when the copy is not for %DLQ%<group> (two characters shorter), or too
// long for that too: there is nowhere to store the copy.
var errNoRetryTopic = errors.New("the group's name is too long for a retry topic")

// registerSendBack handles CONSUMER_SEND_MSG_BACK.
func (b *Broker) registerSendBack(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqConsumerSendMsgBack, b.handleSendBack)
}

func parseSendBackHeader(req *remoting.Command) (sendBackHeader, error) {
	h := sendBackHeader{group: req.Ext("group"), originTopic: req.Ext("originTopic"), maxTimes: -1}
	var err error
	if h.offset, err = strconv.ParseInt(req.Ext("offset"), 10, 64); err != nil || h.offset < 0 {
		return h, fmt.Errorf("offset %q is not a commit-log offset", req.Ext("offset"))
	}
	if h.group == "" {
		return h, errors.New("group is missing")
	}
	if err := message.ValidateGroup(h.group); err != nil {
		return h, fmt.Errorf("group %q: %w", h.group, err)
	}
	if err := message.ValidateTopic(DLQTopic(h.group)); err != nil { // the shorter of %RETRY% and %DLQ%
		return h, fmt.Errorf("%w: group %q: %v", errNoRetryTopic, h.group, err)
	}
	if v := req.Ext("delayLevel"); v != "" {
		if h.delayLevel, err = strconv.Atoi(v); err != nil {
			return h, fmt.Errorf("delayLevel %q is not a number", v)
		}
	}
	if v := req.Ext("maxReconsumeTimes"); v != "" {
		if h.maxTimes, err = strconv.Atoi(v); err != nil {
			return h, fmt.Errorf("maxReconsumeTimes %q is not a number", v)
		}
	}
	return h, nil
}

// checkSentBack refuses a record the send-back cannot be about: one no
// consumer was delivered, or one of another topic than the request names
// (originTopic is the topic the client saw: the record's own, its
// RETRY_TOPIC, either without a namespace prefix).
func checkSentBack(e *message.Ext, originTopic string) error {
	if tt := message.TransactionType(e.SysFlag); tt == message.TransactionPreparedType || tt == message.TransactionRollbackType ||
		topicsNotSentBack[e.Topic] {
		return fmt.Errorf("the record at %d (topic %s) was never delivered to a consumer", e.CommitLogOffset, e.Topic)
	}
	if originTopic == "" {
		return nil
	}
	for _, t := range []string{e.Topic, e.Property(message.PropertyRetryTopic)} {
		if t != "" && (t == originTopic || strings.HasSuffix(t, "%"+originTopic)) {
			return nil
		}
	}
	return fmt.Errorf("the record at %d is of topic %s, not %s", e.CommitLogOffset, e.Topic, originTopic)
}

// sendBackMessage builds the copy of e to store and reports whether it goes
// to the dead-letter queue. The copy keeps body, flag, born time and host,
// and every property (UNIQ_KEY included); it gets reconsumeTimes+1,
// RETRY_TOPIC (the first topic, if not set yet) and ORIGIN_MESSAGE_ID (the
// first record's offset id, if not set yet). It goes to %DLQ%<group> when
// e was consumed maxTimes times already, or when the client asks (delay
// level < 0, which is what the Go client's orderly consumer sends), as
// consumerSendMsgBack does. Otherwise it goes to
// %RETRY%<group> with DELAY = the client's level, or 3 + reconsumeTimes
// when the client sent 0. maxTimes is the client's, else the group's
// retryMaxTimes.
func (b *Broker) sendBackMessage(e *message.Ext, h sendBackHeader) (*message.Message, bool) {
	maxTimes := h.maxTimes
	if maxTimes < 0 {
		maxTimes = b.retryMaxTimes(h.group)
	}
	dlq := int(e.ReconsumeTimes) >= maxTimes || h.delayLevel < 0

	m := e.Message
	m.QueueID = 0
	m.SysFlag = message.WithTransactionType(e.SysFlag, message.TransactionNotType)
	m.ReconsumeTimes = e.ReconsumeTimes + 1
	m.PreparedTransactionOffset = 0
	props := withoutDelay(e.Properties)
	if _, ok := message.Property(props, message.PropertyRetryTopic); !ok {
		props = message.SetProperty(props, message.PropertyRetryTopic, e.Topic)
	}
	if v, ok := message.Property(props, message.PropertyOriginMessageID); !ok || v == "" {
		props = message.SetProperty(props, message.PropertyOriginMessageID, e.MsgID())
	}
	if dlq {
		m.Topic = DLQTopic(h.group)
	} else {
		m.Topic = RetryTopic(h.group)
		level := h.delayLevel
		if level == 0 {
			level = 3 + int(e.ReconsumeTimes)
		}
		props = message.SetProperty(props, message.PropertyDelayTimeLevel, strconv.Itoa(level))
	}
	m.Properties = props
	return &m, dlq
}

// handleSendBack stores a failed message's retry. Bad input (an offset that
// is not a record, a forged topic) gets SYSTEM_ERROR. A store failure
// closes the connection instead of answering: the Go client v2.1.2 takes
// any response as success and would drop the message, while a transport
// error makes it retry (and the Java client re-sends through its producer).
func (b *Broker) handleSendBack(ctx context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendBackHeader(req)
	noTopic := func(err error) *remoting.Command {
		// Not the client's mistake, and an answer would lose the message
		// (the Go client acknowledges it whatever the code): close the
		// connection, so that it consumes the message again itself.
		b.opts.Logger.Error("send-back not stored: the group has no retry topic; closing the connection so the client retries",
			"remote", conn.RemoteAddr(), "group", h.group, "err", err)
		conn.Close()
		return nil
	}
	if errors.Is(err, errNoRetryTopic) {
		return noTopic(err)
	}
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	orig, err := b.store.ReadMessage(h.offset)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, fmt.Sprintf("look message by offset failed, %d: %v", h.offset, err))
	}
	if err := checkSentBack(&orig, h.originTopic); err != nil {
		b.opts.Logger.Warn("send-back refused", "remote", conn.RemoteAddr(), "group", h.group, "offset", h.offset, "err", err)
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	start := time.Now()
	// An orderly consumer retries a message itself and then asks for the
	// dead-letter queue (delay level -1): the record's reconsume count
	// does not include those retries. Read before the fallback below
	// sets the level for a copy that does not fit.
	var from string
	if h.delayLevel < 0 {
		from = lifecycle.FromConsumer
	}
	m, dlq := b.sendBackMessage(&orig, h)
	if err := message.ValidateTopic(m.Topic); err != nil { // a retry, and the group is too long for %RETRY%
		return noTopic(fmt.Errorf("%w: group %q: %v", errNoRetryTopic, h.group, err))
	}
	res, err := b.storeSentBack(ctx, h.group, m, dlq)
	if !dlq && (errors.Is(err, store.ErrMessageTooLarge) || errors.Is(err, store.ErrBadMessage)) {
		// The retry copy cannot be stored (it grew past a limit with the
		// retry properties, say): park the message in the DLQ instead.
		b.opts.Logger.Warn("retry copy refused; moving the message to the dead-letter queue", "group", h.group, "offset", h.offset, "err", err)
		h.delayLevel = -1
		m, dlq = b.sendBackMessage(&orig, h)
		res, err = b.storeSentBack(ctx, h.group, m, dlq)
	}
	if dlq && (errors.Is(err, store.ErrMessageTooLarge) || errors.Is(err, store.ErrBadMessage)) {
		// Not even room for RETRY_TOPIC and ORIGIN_MESSAGE_ID: park the
		// message with its own properties, which were stored once. Closing
		// the connection would be for ever: the client sends it back again.
		b.opts.Logger.Warn("dead-letter copy refused; parking the message without the retry properties", "group", h.group, "offset", h.offset, "err", err)
		// RETRY_TOPIC is kept when it alone fits: it is what tells
		// `halfback dlq resend` where the message goes back to.
		m.Properties = withoutDelay(orig.Properties)
		if _, ok := message.Property(m.Properties, message.PropertyRetryTopic); !ok {
			bare := m.Properties
			m.Properties = message.SetProperty(bare, message.PropertyRetryTopic, orig.Topic)
			if b.store.Check(m) != nil {
				m.Properties = bare
			}
		}
		res, err = b.storeSentBack(ctx, h.group, m, dlq)
	}
	b.traceSendBack(m, h.group, dlq, from, res, start, err)
	if err != nil {
		// Every failure after the record was found closes the connection:
		// the Go client takes any answer to a send-back as success and would
		// drop the message, while a transport error makes it retry.
		b.opts.Logger.Error("send-back not stored; closing the connection so the client retries",
			"remote", conn.RemoteAddr(), "group", h.group, "offset", h.offset, "err", err)
		conn.Close()
		return nil
	}
	b.metrics.sentBack(h.group, dlq)
	if dlq {
		b.opts.Logger.Warn("message moved to the dead-letter queue", "group", h.group, "topic", orig.Topic,
			"reconsumeTimes", orig.ReconsumeTimes, "offset", h.offset, "dlqOffset", res.PhysicalOffset)
	}
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// withoutDelay removes the properties that schedule a message (delay
// level, timer): a dead letter is stored at once, and a retry gets its own.
func withoutDelay(props string) string {
	return message.RemoveProperties(props, message.PropertyDelayTimeLevel, message.PropertyTimerDeliverMS,
		message.PropertyTimerDelayMS, message.PropertyTimerDelaySec)
}
