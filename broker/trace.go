package broker

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Spans and the lifecycle record. Every step of a message's life in the
// broker (store, half store, end transaction, check-back, schedule,
// delivery from the schedule, send-back, dead letter) gets a span whose
// parent is the producer's context from the message's traceparent
// property (a batch's span links to each message's instead), and an event
// in the lifecycle record (broker/lifecycle). Spans go through the global
// tracer provider; with none installed nothing is built. Spans are made
// when the step is done, with its start and end times, so a step that
// does not trace costs one provider check.

// tracerName is the instrumentation scope of the broker's spans.
const tracerName = "github.com/halfbackmq/halfback/broker"

// globalPkg is the package of the global tracer provider in place before
// any is set (it hands out no-op spans).
const globalPkg = "go.opentelemetry.io/otel/internal/global"

// tracingOn reports whether a tracer provider other than the no-op one
// is installed.
func tracingOn() bool {
	tp := otel.GetTracerProvider()
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	t := reflect.TypeOf(tp)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() != globalPkg
}

// Span operation names (messaging.operation.name).
const (
	spanStore      = "store"
	spanHalf       = "store_half"
	spanEnd        = "end_transaction"
	spanCheck      = "check_back"
	spanSchedule   = "schedule"
	spanDeliver    = "deliver_scheduled"
	spanSendBack   = "send_back"
	spanDeadLetter = "dead_letter"
	spanPark       = "park"
)

// spanRec describes a finished broker step to turn into a span.
type spanRec struct {
	op, opType string
	topic      string // destination
	props      []string
	start, end time.Time
	err        error
	attrs      []attribute.KeyValue
	parent     context.Context // parent instead of the messages' context
}

// emit starts and ends the span of a finished step. With one message the
// span is a child of the producer's context; with several it links to
// each one's.
func (b *Broker) emit(r spanRec) context.Context {
	if !tracingOn() {
		return nil
	}
	parent := r.parent
	var opts []trace.SpanStartOption
	switch {
	case parent != nil:
	case len(r.props) == 1:
		parent = telemetry.ExtractProperties(context.Background(), r.props[0])
	default:
		parent = context.Background()
		for _, p := range r.props {
			if sc := trace.SpanContextFromContext(telemetry.ExtractProperties(context.Background(), p)); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
	}
	opts = append(opts, trace.WithTimestamp(r.start), trace.WithSpanKind(spanKind(r.op)))
	ctx, span := otel.Tracer(tracerName).Start(parent, r.op+" "+r.topic, opts...)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{telemetry.System(), telemetry.KeyOperationType.String(r.opType),
			telemetry.KeyOperationName.String(r.op), telemetry.KeyDestination.String(r.topic)}
		if len(r.props) == 1 {
			attrs = append(attrs, messageAttrs(r.props[0])...)
		} else if len(r.props) > 1 {
			attrs = append(attrs, telemetry.KeyBatchCount.Int(len(r.props)))
		}
		// The step's own attributes last: they win over what the
		// properties say (a committed message's no longer say transaction,
		// a delivered one's no longer delay).
		span.SetAttributes(append(attrs, r.attrs...)...)
		if r.err != nil {
			span.RecordError(r.err)
			span.SetStatus(codes.Error, r.err.Error())
		}
	}
	span.End(trace.WithTimestamp(r.end))
	return ctx
}

// spanKind is server for the steps a request asks for, client for a
// check-back (the broker asks a producer), internal for the broker's own.
func spanKind(op string) trace.SpanKind {
	switch op {
	case spanCheck:
		return trace.SpanKindClient
	case spanDeliver, spanPark:
		return trace.SpanKindInternal
	}
	return trace.SpanKindServer
}

// messageAttrs are the semconv attributes one message's properties give.
func messageAttrs(props string) []attribute.KeyValue {
	var out []attribute.KeyValue
	if id, ok := message.Property(props, message.PropertyUniqKey); ok {
		out = append(out, telemetry.KeyMessageID.String(id))
	}
	if k, ok := message.Property(props, message.PropertyKeys); ok && strings.TrimSpace(k) != "" {
		out = append(out, telemetry.KeyRocketMQKeys.StringSlice(strings.Fields(k))) // string[], as the client's
	}
	if t, ok := message.Property(props, message.PropertyTags); ok && t != "" {
		out = append(out, telemetry.KeyRocketMQTag.String(t))
	}
	switch {
	case isTxnProps(props):
		out = append(out, telemetry.KeyRocketMQType.String(telemetry.TypeTransaction))
	case hasDelay(props):
		out = append(out, telemetry.KeyRocketMQType.String(telemetry.TypeDelay))
	default:
		out = append(out, telemetry.KeyRocketMQType.String(telemetry.TypeNormal))
	}
	if v, ok := message.Property(props, message.PropertyDelayTimeLevel); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			out = append(out, telemetry.KeyRocketMQDelay.Int(n))
		}
	}
	if v, ok := message.Property(props, message.PropertyTimerDeliverMS); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out = append(out, telemetry.KeyRocketMQDeliver.Int64(n))
		}
	}
	return out
}

func isTxnProps(props string) bool {
	v, _ := message.Property(props, message.PropertyTransactionPrepared)
	ok, _ := strconv.ParseBool(v)
	return ok
}

// msgIdentity is what the lifecycle record indexes a message by.
type msgIdentity struct{ id, keys, tag, traceID string }

// identityOf reads a message's id (UNIQ_KEY, else offsetID), keys, tag
// and trace id from its properties.
func identityOf(props, offsetID string) msgIdentity {
	var m msgIdentity
	m.id = uniqOrOrigin(props)
	if m.id == "" {
		m.id = offsetID
	}
	m.keys, _ = message.Property(props, message.PropertyKeys)
	m.tag, _ = message.Property(props, message.PropertyTags)
	if tp, ok := message.Property(props, message.PropertyTraceparent); ok {
		m.traceID = lifecycle.TraceIDOf(tp)
	}
	return m
}

// uniqOrOrigin is the id the lifecycle record names a message by when
// its properties say: its UNIQ_KEY, else (a retry or dead-letter copy of
// a message that had none) ORIGIN_MESSAGE_ID, the offset message id of
// the record first stored, whose id the first events carry.
func uniqOrOrigin(props string) string {
	if id, _ := message.Property(props, message.PropertyUniqKey); id != "" {
		return id
	}
	id, _ := message.Property(props, message.PropertyOriginMessageID)
	return id
}

// nameCopy names the event e of a copy (a retry, a dead letter) of a
// committed message without UNIQ_KEY, which its ORIGIN_MESSAGE_ID (props)
// names by the committed record's offset message id, as traceEnd names
// the message's own events: by its half record's, so that they are one
// timeline.
func (b *Broker) nameCopy(e *lifecycle.Event, props string) {
	if b.life == nil {
		return // no events are recorded: no need to read the store
	}
	if u, _ := message.Property(props, message.PropertyUniqKey); u != "" {
		return
	}
	if origin, _ := message.Property(props, message.PropertyOriginMessageID); origin != "" && origin == e.MsgID {
		e.MsgID = b.halfIDOf(origin)
	}
}

// halfIDOf is the offset message id of the half record of the committed
// message without UNIQ_KEY whose record the offset message id id names
// (traceEnd names its events by it); any other id is returned as it is.
func (b *Broker) halfIDOf(id string) string {
	host, phys, err := message.ParseOffsetMsgID(id)
	if err != nil {
		return id
	}
	e, err := b.store.ReadMessage(phys)
	if err != nil || message.TransactionType(e.SysFlag) != message.TransactionCommitType {
		return id
	}
	if u, _ := message.Property(e.Properties, message.PropertyUniqKey); u != "" {
		return id
	}
	return message.OffsetMsgID(host, e.PreparedTransactionOffset)
}

// event is a lifecycle event about the message with properties props.
func event(kind lifecycle.Kind, props string, res store.AppendResult) lifecycle.Event {
	id := identityOf(props, res.MsgID)
	return lifecycle.Event{MsgID: id.id, Kind: kind, Keys: id.keys, Tag: id.tag, TraceID: id.traceID,
		Offset: res.QueueOffset, OffsetMsgID: res.MsgID}
}

// flushName is the store's flush mode as RocketMQ names it.
func (b *Broker) flushName() string {
	if b.opts.Store.FlushType == store.SyncFlush {
		return "SYNC_FLUSH"
	}
	return "ASYNC_FLUSH"
}

// traceStored records messages a send stored (or scheduled) and its span.
func (b *Broker) traceStored(msgs []*message.Message, res []store.AppendResult, start time.Time, err error) {
	if b.life == nil && !tracingOn() {
		return
	}
	now := time.Now()
	for i, m := range msgs {
		if i >= len(res) {
			break
		}
		b.life.Record(b.storedEvent(m, res[i], now))
	}
	// The span's inputs are built only when a span will be: with the
	// lifecycle record on and tracing off, a send pays for the events alone.
	if len(msgs) == 0 || !tracingOn() {
		return
	}
	// Every message's context, stored or not: a send the store refused
	// (no results) is a failed step of the producer's trace, not a trace
	// of its own.
	props := make([]string, 0, len(msgs))
	for _, m := range msgs {
		props = append(props, m.Properties)
	}
	op, topic, attrs := spanStore, msgs[0].Topic, []attribute.KeyValue{attribute.String("messaging.rocketmq.flush", b.flushName())}
	queue := msgs[0].QueueID
	if rt, ok := message.Property(msgs[0].Properties, message.PropertyRealTopic); ok && isScheduleTopic(topic) {
		op, topic, queue = spanSchedule, rt, realQueue(msgs[0])
	}
	if len(res) > 0 {
		attrs = append(attrs, placeAttrs(queue, res[0].QueueOffset)...)
	}
	b.emit(spanRec{op: op, opType: telemetry.OpSend, topic: topic, props: props,
		start: start, end: now, err: err, attrs: attrs})
}

// placeAttrs name where a stored copy is: its queue and queue offset.
func placeAttrs(queue int32, offset int64) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.Int64("messaging.rocketmq.queue_offset", offset),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(int(queue)))} // a string in the conventions, as in the metrics
}

func isScheduleTopic(t string) bool { return t == delay.ScheduleTopic || t == delay.TimerTopic }

// realQueue is the queue a scheduled message will be delivered to (its
// REAL_QID), as the send's answer names it: its own queue in the schedule
// topic is the delay level's.
func realQueue(m *message.Message) int32 {
	v, _ := message.Property(m.Properties, message.PropertyRealQueueID)
	q, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return m.QueueID
	}
	return int32(q)
}

// storedEvent is the Stored (or Scheduled) event of one stored message.
func (b *Broker) storedEvent(m *message.Message, res store.AppendResult, now time.Time) lifecycle.Event {
	e := event(lifecycle.Stored, m.Properties, res)
	b.nameCopy(&e, m.Properties)
	e.Time, e.Topic, e.Queue, e.Flush = now, m.Topic, m.QueueID, b.flushName()
	if isScheduleTopic(m.Topic) {
		e.Kind = lifecycle.Scheduled
		e.Topic, _ = message.Property(m.Properties, message.PropertyRealTopic)
		e.Queue = realQueue(m)
		if m.Topic == delay.ScheduleTopic {
			e.Level = int(m.QueueID) + 1
			if l := int(m.QueueID); l < len(b.delayLevels) {
				e.DueAt = time.UnixMilli(res.StoreTimestamp).Add(b.delayLevels[l])
			}
		} else if v, ok := message.Property(m.Properties, message.PropertyTimerDeliverMS); ok {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				e.DueAt = time.UnixMilli(ms)
			}
		}
	}
	return e
}

// onDelivered records messages the scheduler delivered.
func (b *Broker) onDelivered(ds []delay.Delivery) {
	now := time.Now()
	for _, d := range ds {
		e := event(lifecycle.Delivered, d.Message.Properties, d.Result)
		b.nameCopy(&e, d.Message.Properties)
		e.Time, e.Topic, e.Queue, e.Level, e.DueAt = now, d.Message.Topic, d.Message.QueueID, d.Level, d.DueAt
		b.life.Record(e)
		b.emit(spanRec{op: spanDeliver, opType: telemetry.OpSend, topic: d.Message.Topic, props: []string{d.Message.Properties},
			start: d.DueAt, end: now, attrs: deliverAttrs(d)})
	}
}

// deliverAttrs are a delivery span's own attributes: the message's delay
// level, or for a timer message (level 0) its due time, as the attributes
// of its send named them.
func deliverAttrs(d delay.Delivery) []attribute.KeyValue {
	when := telemetry.KeyRocketMQDeliver.Int64(d.DueAt.UnixMilli())
	if d.Level > 0 {
		when = telemetry.KeyRocketMQDelay.Int(d.Level)
	}
	return append([]attribute.KeyValue{when, telemetry.KeyRocketMQType.String(telemetry.TypeDelay)},
		placeAttrs(d.Message.QueueID, d.Result.QueueOffset)...)
}
