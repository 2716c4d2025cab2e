package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Headers the mirror puts on every record (see package mirror).
const (
	headerTags  = message.PropertyTags        // the RocketMQ tag, TAGS
	headerMsgID = "rocketmq.msgId"            // mirror.HeaderMsgID
	headerTrace = message.PropertyTraceparent // the mirror's publish span
)

// tracerName is the instrumentation scope of the consumer's spans.
const tracerName = "github.com/halfbackmq/halfback/samples/kafka-consumer"

// handler is the sarama.ConsumerGroupHandler: it prints the records of its
// tag, each in a consumer span, and marks every record consumed. The
// claims of several partitions call it at once.
type handler struct {
	o      options
	tracer trace.Tracer
	log    *slog.Logger
	// stop ends the consumer once o.max records were printed.
	stop func()

	mu      sync.Mutex // serializes printing and counting
	out     io.Writer
	printed int
}

func newHandler(o options, out io.Writer, stop func(), log *slog.Logger) *handler {
	return &handler{o: o, out: out, stop: stop, log: log, tracer: otel.Tracer(tracerName)}
}

// Setup is called at the start of each generation of the group: it logs
// the partitions this member reads.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.log.Info("partitions assigned", "topic", h.o.topic, "partitions", sess.Claims()[h.o.topic],
		"generation", sess.GenerationID(), "member", sess.MemberID())
	return nil
}

// Cleanup is called at the end of each generation of the group.
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim handles the records of one partition until the generation
// ends or --max records were printed.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok || !h.handle(sess, m) {
				return nil
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// handle prints m if its tag is kept and marks it consumed. It returns
// false once --max records were printed: m is then left for later.
func (h *handler) handle(sess sarama.ConsumerGroupSession, m *sarama.ConsumerMessage) bool {
	tag, _ := header(m.Headers, headerTags)
	if h.o.tag != "" && tag != h.o.tag {
		sess.MarkMessage(m, "")
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.o.max > 0 && h.printed >= h.o.max {
		return false
	}
	h.process(sess.Context(), m, tag)
	sess.MarkMessage(m, "")
	h.printed++
	if h.o.max > 0 && h.printed >= h.o.max {
		sess.Commit()
		h.stop()
		return false
	}
	return true
}

// process prints m in a consumer span, a child of m's traceparent.
func (h *handler) process(ctx context.Context, m *sarama.ConsumerMessage, tag string) {
	parent := propagation.TraceContext{}.Extract(ctx, headerCarrier(m.Headers))
	msgID, _ := header(m.Headers, headerMsgID)
	_, span := h.tracer.Start(parent, "process "+m.Topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			telemetry.KeySystem.String("kafka"),
			telemetry.KeyOperationType.String(telemetry.OpProcess),
			telemetry.KeyOperationName.String("process"),
			telemetry.KeyDestination.String(m.Topic),
			telemetry.KeyConsumerGroup.String(h.o.group),
			telemetry.KeyMessageID.String(msgID),
			telemetry.KeyBodySize.Int(len(m.Value)),
			attribute.String("messaging.kafka.message.key", string(m.Key)),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(int(m.Partition))), // a string in the conventions
			attribute.Int64("messaging.kafka.offset", m.Offset),
			telemetry.KeyRocketMQTag.String(tag),
		))
	defer span.End()
	traceID := "-"
	if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
		traceID = sc.TraceID().String()
	}
	fmt.Fprintf(h.out, "partition=%d offset=%d key=%s tag=%s msgId=%s trace=%s body=%s\n",
		m.Partition, m.Offset, orDash(string(m.Key)), orDash(tag), orDash(msgID), traceID, printable(m.Value))
}

// header returns the value of the first record header named key.
func header(hs []*sarama.RecordHeader, key string) (string, bool) {
	for _, h := range hs {
		if h != nil && string(h.Key) == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// headerCarrier reads a record's headers for an OpenTelemetry propagator.
// It is read-only: Set does nothing (the consumer never injects).
type headerCarrier []*sarama.RecordHeader

// Get returns the first header named key, "" if none.
func (c headerCarrier) Get(key string) string {
	v, _ := header(c, key)
	return v
}

// Set does nothing.
func (c headerCarrier) Set(string, string) {}

// Keys returns the header names.
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for _, h := range c {
		if h != nil {
			keys = append(keys, string(h.Key))
		}
	}
	return keys
}

// orDash returns s, or "-" for "".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable returns a body as is when it is UTF-8 without control
// characters (one-line JSON, say), else quoted, so each record stays on
// one line and the terminal prints what it is given.
func printable(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	if s := string(b); utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return fmt.Sprintf("%q", b)
}
