package client

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Tracing: the client starts OpenTelemetry spans with the global tracer
// provider (a no-op unless the application installed an SDK), following
// the messaging semantic conventions:
//
//   - "send <topic>" (kind Producer, operation type send) around each
//     Send, SendHalf and SendBatch; its context is injected into every
//     message's traceparent/tracestate properties.
//   - "settle <topic>" (kind Client, operation type settle) around
//     EndTransaction.
//   - "check <topic>" (kind Consumer, operation type process) around a
//     check-back: the listener call and the answer, a child of the trace
//     in the half message's properties.
//   - "process <topic>" (kind Consumer, operation type process) around a
//     push consumer's handler call: a child of the producer's span for a
//     single message, linked to each message's context for a batch.
//
// Attributes are built only when the span records.

// TracerName is the instrumentation name of the client's spans.
const TracerName = "github.com/halfbackmq/halfback/client"

// tracer is resolved through the global provider at each span start, so
// a provider installed after the client was created is used.
func tracer() trace.Tracer { return otel.Tracer(TracerName) }

// keyTxnState is the outcome an END_TRANSACTION carried or a check
// listener returned: COMMIT, ROLLBACK or UNKNOWN.
const keyTxnState = attribute.Key("messaging.rocketmq.transaction.state")

// Operation names (messaging.operation.name) of the client's spans.
const (
	opNameSend    = "send"
	opNameSettle  = "settle"
	opNameCheck   = "check"
	opNameProcess = "process"
)

// Span start options, built once: building them per span would allocate
// even when tracing is off.
var (
	producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	consumerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	clientSpan   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// sendParent is the parent of a send span: ctx when it carries a span,
// else the trace context the caller put in m's properties, if any.
func sendParent(ctx context.Context, m *Message) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() || m.Properties[message.PropertyTraceparent] == "" {
		return ctx
	}
	return telemetry.Extract(ctx, m.Properties)
}

// startSend starts the producer span of a send of msgs (one for Send and
// SendHalf) of type typ by group. id is the message id of a single send.
func startSend(ctx context.Context, group, typ string, msgs []*Message, id string) (context.Context, trace.Span) {
	m := msgs[0]
	ctx, span := tracer().Start(sendParent(ctx, m), opNameSend+" "+m.Topic, producerSpan...)
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := []attribute.KeyValue{
		telemetry.System(),
		telemetry.KeyOperationType.String(telemetry.OpSend),
		telemetry.KeyOperationName.String(opNameSend),
		telemetry.KeyDestination.String(m.Topic),
		telemetry.KeyRocketMQClient.String(group),
		telemetry.KeyRocketMQType.String(typ),
	}
	if len(msgs) > 1 {
		attrs = append(attrs, telemetry.KeyBatchCount.Int(len(msgs)))
	} else {
		attrs = append(attrs, telemetry.KeyMessageID.String(id), telemetry.KeyBodySize.Int(len(m.Body)))
		attrs = appendMessageAttrs(attrs, m)
		if m.DelayLevel > 0 {
			attrs = append(attrs, telemetry.KeyRocketMQDelay.Int(m.DelayLevel))
		}
		if !m.DeliverAt.IsZero() {
			attrs = append(attrs, telemetry.KeyRocketMQDeliver.Int64(m.DeliverAt.UnixMilli()))
		}
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// appendMessageAttrs appends m's tag, keys and message group.
func appendMessageAttrs(attrs []attribute.KeyValue, m *Message) []attribute.KeyValue {
	if m.Tags != "" {
		attrs = append(attrs, telemetry.KeyRocketMQTag.String(m.Tags))
	}
	var keys []string
	for _, k := range m.Keys {
		if k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		attrs = append(attrs, telemetry.KeyRocketMQKeys.StringSlice(keys))
	}
	if m.ShardingKey != "" {
		attrs = append(attrs, telemetry.KeyRocketMQGroup.String(m.ShardingKey))
	}
	return attrs
}

// messageType is the messaging.rocketmq.message.type of m sent normally.
func messageType(m *Message) string {
	switch {
	case m.delayed():
		return telemetry.TypeDelay
	case m.ShardingKey != "":
		return telemetry.TypeFIFO
	}
	return telemetry.TypeNormal
}

// injectTrace returns props with the trace context of ctx set, when
// there is one.
func injectTrace(ctx context.Context, props string) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return props
	}
	return telemetry.InjectProperties(ctx, props)
}

// endSpan records err (if any) on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startSettle starts the span of an END_TRANSACTION of r with state s.
func startSettle(ctx context.Context, r HalfReceipt, s TransactionState) (context.Context, trace.Span) {
	ctx, span := tracer().Start(ctx, opNameSettle+" "+r.Topic, clientSpan...)
	if span.IsRecording() {
		span.SetAttributes(
			telemetry.System(),
			telemetry.KeyOperationType.String(telemetry.OpSettle),
			telemetry.KeyOperationName.String(opNameSettle),
			telemetry.KeyDestination.String(r.Topic),
			telemetry.KeyMessageID.String(r.MsgID),
			telemetry.KeyRocketMQClient.String(r.ProducerGroup),
			telemetry.KeyRocketMQType.String(telemetry.TypeTransaction),
			keyTxnState.String(s.String()),
		)
	}
	return ctx, span
}

// startCheck starts the span of a check-back about cr: a child of the
// trace in the half message's properties.
func startCheck(ctx context.Context, cr *CheckRequest) (context.Context, trace.Span) {
	m := cr.Message
	ctx, span := tracer().Start(telemetry.Extract(ctx, m.Properties), opNameCheck+" "+m.Topic, consumerSpan...)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			telemetry.System(),
			telemetry.KeyOperationType.String(telemetry.OpProcess),
			telemetry.KeyOperationName.String(opNameCheck),
			telemetry.KeyDestination.String(m.Topic),
			telemetry.KeyMessageID.String(cr.Receipt.MsgID),
			telemetry.KeyRocketMQClient.String(cr.Receipt.ProducerGroup),
			telemetry.KeyRocketMQType.String(telemetry.TypeTransaction),
			telemetry.KeyBodySize.Int(len(m.Body)),
		}
		span.SetAttributes(appendMessageAttrs(attrs, &m.Message)...)
	}
	return ctx, span
}

// startProcess starts the span of a handler call on msgs of topic by
// group: for one message a child of its producer's span, for several a
// new trace linked to each message's.
func startProcess(ctx context.Context, group, model, topic string, msgs []*MessageExt) (context.Context, trace.Span) {
	parent := ctx
	if len(msgs) == 1 {
		parent = telemetry.Extract(ctx, msgs[0].Properties)
	}
	ctx, span := tracer().Start(parent, opNameProcess+" "+topic, consumerSpan...)
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := []attribute.KeyValue{
		telemetry.System(),
		telemetry.KeyOperationType.String(telemetry.OpProcess),
		telemetry.KeyOperationName.String(opNameProcess),
		telemetry.KeyDestination.String(topic),
		telemetry.KeyConsumerGroup.String(group),
		telemetry.KeyRocketMQClient.String(group),
		telemetry.KeyRocketMQModel.String(strings.ToLower(model)),
	}
	if len(msgs) == 1 {
		m := msgs[0]
		attrs = append(attrs, telemetry.KeyMessageID.String(m.MsgID), telemetry.KeyBodySize.Int(len(m.Body)),
			telemetry.KeyRocketMQReconsum.Int(int(m.ReconsumeTimes)))
		attrs = appendMessageAttrs(attrs, &m.Message)
	} else {
		attrs = append(attrs, telemetry.KeyBatchCount.Int(len(msgs)))
		for _, m := range msgs {
			if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), m.Properties)); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{telemetry.KeyMessageID.String(m.MsgID)}})
			}
		}
	}
	span.SetAttributes(attrs...)
	return ctx, span
}
