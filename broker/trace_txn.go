package broker

import (
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Lifecycle events and spans of transactions and send-backs.

// traceHalf records a stored half message and its span. repeat says the
// send was answered with the live half message of its id (nothing was
// stored): the event and the span say so, so that a retried send's
// dedup shows in the trace (a retry may come within the millisecond of
// the store it repeats, or while that store lands, so the store time
// cannot tell).
func (b *Broker) traceHalf(m *message.Message, group string, res store.AppendResult, repeat bool, start time.Time, err error) {
	now := time.Now()
	if err == nil || res.MsgID != "" {
		e := event(lifecycle.HalfStored, m.Properties, res)
		e.Time, e.Topic, e.Queue, e.Group, e.Flush = now, m.Topic, m.QueueID, group, b.flushName()
		if repeat {
			e.Detail = "a repeated send, answered with the live half message"
		}
		b.life.Record(e)
	}
	b.emit(spanRec{op: spanHalf, opType: telemetry.OpSend, topic: m.Topic, props: []string{m.Properties}, start: start, end: now, err: err,
		attrs: []attribute.KeyValue{telemetry.KeyRocketMQType.String(telemetry.TypeTransaction),
			telemetry.KeyRocketMQClient.String(group), attribute.String("messaging.rocketmq.flush", b.flushName()),
			keyTxnRepeated.Bool(repeat)}})
}

// keyTxnRepeated marks the store_half span of a send answered with the
// live half message of its id.
const keyTxnRepeated = attribute.Key("messaging.rocketmq.transaction.repeated")

// traceEnd records a transaction outcome (and the committed message's
// store) with their spans. from is lifecycle.FromClient, FromCheck or
// FromAdmin.
func (b *Broker) traceEnd(o txn.Outcome, out txn.EndResult, from string, start time.Time, err error) {
	if err != nil || out.Duplicate || o == txn.Unknown {
		return
	}
	now := time.Now()
	t := out.Txn
	var props string
	switch {
	case out.Message != nil:
		props = out.Message.Properties
	case tracingOn():
		// A rollback writes no copy of the message: read the half record
		// for its trace context, only when spans are made.
		if ext, rerr := b.store.ReadMessage(t.HalfOffset); rerr == nil {
			props = ext.Properties
		}
	}
	id := t.TransactionID
	if id == "" {
		id = t.MsgID
	}
	kind := lifecycle.Committed
	if o == txn.Rollback {
		kind = lifecycle.RolledBack
	}
	e := lifecycle.Event{MsgID: id, Time: now, Kind: kind, From: from, Group: t.Group, Topic: t.Topic, Keys: t.Keys}
	if from == lifecycle.FromCheck {
		e.Check = t.Checks
	}
	b.life.Record(e)
	attrs := []attribute.KeyValue{telemetry.KeyRocketMQClient.String(t.Group), attribute.String("messaging.rocketmq.transaction.outcome", o.String()),
		attribute.String("messaging.rocketmq.transaction.from", from), attribute.Int("messaging.rocketmq.transaction.checks", t.Checks),
		telemetry.KeyRocketMQType.String(telemetry.TypeTransaction)}
	var recProps []string
	if props != "" {
		recProps = []string{props}
	}
	ctx := b.emit(spanRec{op: spanEnd, opType: telemetry.OpSettle, topic: t.Topic, props: recProps, start: start, end: now, attrs: attrs})
	if out.Message == nil {
		return
	}
	m := out.Message
	se := event(lifecycle.Stored, m.Properties, out.Committed)
	// The transaction's id, not the committed record's: a message with no
	// UNIQ_KEY is named by its half record's offset id, as its first events.
	if id != "" {
		se.MsgID = id
	}
	se.Time, se.Topic, se.Queue, se.Flush = now, m.Topic, m.QueueID, b.flushName()
	b.life.Record(se)
	b.emit(spanRec{op: spanStore, opType: telemetry.OpSend, topic: m.Topic, props: []string{m.Properties}, start: start, end: now, parent: ctx,
		attrs: []attribute.KeyValue{attribute.String("messaging.rocketmq.flush", b.flushName()),
			attribute.Int64("messaging.rocketmq.queue_offset", out.Committed.QueueOffset),
			telemetry.KeyRocketMQType.String(telemetry.TypeTransaction)}})
}

// onLateEnd records an outcome whose record landed after its
// END_TRANSACTION (or operator request) had been answered with an error.
func (b *Broker) onLateEnd(o txn.Outcome, req txn.EndRequest, out txn.EndResult) {
	from := lifecycle.FromClient
	switch {
	case req.Admin:
		from = lifecycle.FromAdmin
	case req.FromCheck:
		from = lifecycle.FromCheck
	}
	b.traceEnd(o, out, from, time.Now(), nil)
}

// traceCheck records a check-back that reached a producer.
func (b *Broker) traceCheck(req txn.CheckRequest, start time.Time) {
	now := time.Now()
	e := event(lifecycle.CheckedBack, req.Message.Properties, store.AppendResult{MsgID: req.MsgID, QueueOffset: req.QueueOffset})
	if e.MsgID == "" {
		e.MsgID = req.TransactionID
	}
	e.Time, e.Check, e.Group, e.Topic = now, req.Check, req.Group, req.Message.Topic
	b.life.Record(e)
	b.emit(spanRec{op: spanCheck, opType: telemetry.OpProcess, topic: req.Message.Topic, props: []string{req.Message.Properties},
		start: start, end: now, attrs: []attribute.KeyValue{telemetry.KeyRocketMQClient.String(req.Group),
			attribute.Int("messaging.rocketmq.transaction.check", req.Check)}})
}

// onParked records a parked transaction.
func (b *Broker) onParked(t txn.Txn) {
	id := t.TransactionID
	if id == "" {
		id = t.MsgID
	}
	b.life.Record(lifecycle.Event{MsgID: id, Kind: lifecycle.Parked, Check: t.Checks, Group: t.Group, Topic: t.Topic, Keys: t.Keys,
		Detail: "checks used up; see halfback txn list"})
	if tracingOn() {
		if ext, err := b.store.ReadMessage(t.HalfOffset); err == nil {
			now := time.Now()
			b.emit(spanRec{op: spanPark, opType: telemetry.OpSettle, topic: t.Topic, props: []string{ext.Properties}, start: now, end: now,
				attrs: []attribute.KeyValue{attribute.Int("messaging.rocketmq.transaction.checks", t.Checks)}})
		}
	}
}

// traceSendBack records a send-back: a retry or a dead letter. from is
// lifecycle.FromConsumer for a dead letter the consumer asked for,
// lifecycle.FromClient for a retry the consumer's client sent as a
// message, else "".
func (b *Broker) traceSendBack(m *message.Message, group string, dlq bool, from string, res store.AppendResult, start time.Time, err error) {
	now := time.Now()
	op, kind := spanSendBack, lifecycle.SentBack
	if dlq {
		op, kind = spanDeadLetter, lifecycle.DeadLettered
	}
	if err == nil {
		e := event(kind, m.Properties, res)
		b.nameCopy(&e, m.Properties)
		e.Time, e.Group, e.Reconsume, e.Topic, e.Queue, e.From = now, group, int(m.ReconsumeTimes), m.Topic, m.QueueID, from
		if isScheduleTopic(m.Topic) {
			e.Topic, _ = message.Property(m.Properties, message.PropertyRealTopic)
			e.Queue = realQueue(m)
			e.Level = int(m.QueueID) + 1
			e.Offset = 0
		}
		b.life.Record(e)
	}
	topic := m.Topic
	if rt, ok := message.Property(m.Properties, message.PropertyRealTopic); ok && isScheduleTopic(topic) {
		topic = rt
	}
	attrs := []attribute.KeyValue{telemetry.KeyConsumerGroup.String(group), telemetry.KeyRocketMQReconsum.Int(int(m.ReconsumeTimes))}
	if v, ok := message.Property(m.Properties, message.PropertyDelayTimeLevel); ok && !dlq {
		if n, cerr := strconv.Atoi(v); cerr == nil {
			attrs = append(attrs, telemetry.KeyRocketMQDelay.Int(n))
		}
	}
	if err == nil && !isScheduleTopic(m.Topic) { // stored where it stays: the retry topic or the DLQ
		attrs = append(attrs, placeAttrs(m.QueueID, res.QueueOffset)...)
	}
	b.emit(spanRec{op: op, opType: telemetry.OpSettle, topic: topic, props: []string{m.Properties}, start: start, end: now, err: err, attrs: attrs})
}
