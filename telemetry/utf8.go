package telemetry

import (
	"context"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// validUTF8Exporter hands its exporter spans whose strings (name,
// attributes, events, links, status) are valid UTF-8, invalid bytes
// replaced by U+FFFD: OTLP's protobuf encoding refuses a string that is
// not, and with it the whole batch. A message's key or tag is bytes to
// RocketMQ, and spans carry them.
type validUTF8Exporter struct{ sdktrace.SpanExporter }

func (e validUTF8Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	var out []sdktrace.ReadOnlySpan // a copy only when a span needs one
	for i, s := range spans {
		if spanValidUTF8(s) {
			if out != nil {
				out = append(out, s)
			}
			continue
		}
		if out == nil {
			out = append(make([]sdktrace.ReadOnlySpan, 0, len(spans)), spans[:i]...)
		}
		out = append(out, validSpan{s})
	}
	if out == nil {
		out = spans
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

func spanValidUTF8(s sdktrace.ReadOnlySpan) bool {
	if !utf8.ValidString(s.Name()) || !utf8.ValidString(s.Status().Description) || !attrsValid(s.Attributes()) {
		return false
	}
	for _, ev := range s.Events() {
		if !utf8.ValidString(ev.Name) || !attrsValid(ev.Attributes) {
			return false
		}
	}
	for _, l := range s.Links() {
		if !attrsValid(l.Attributes) {
			return false
		}
	}
	return true
}

func attrsValid(kvs []attribute.KeyValue) bool {
	for _, kv := range kvs {
		if !utf8.ValidString(string(kv.Key)) {
			return false
		}
		switch kv.Value.Type() {
		case attribute.STRING:
			if !utf8.ValidString(kv.Value.AsString()) {
				return false
			}
		case attribute.STRINGSLICE:
			for _, s := range kv.Value.AsStringSlice() {
				if !utf8.ValidString(s) {
					return false
				}
			}
		}
	}
	return true
}

// validSpan is a span with its strings made valid UTF-8.
type validSpan struct{ sdktrace.ReadOnlySpan }

func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func (s validSpan) Name() string { return valid(s.ReadOnlySpan.Name()) }

func (s validSpan) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	st.Description = valid(st.Description)
	return st
}

func (s validSpan) Attributes() []attribute.KeyValue { return validAttrs(s.ReadOnlySpan.Attributes()) }

func (s validSpan) Events() []sdktrace.Event {
	evs := append([]sdktrace.Event(nil), s.ReadOnlySpan.Events()...)
	for i := range evs {
		evs[i].Name, evs[i].Attributes = valid(evs[i].Name), validAttrs(evs[i].Attributes)
	}
	return evs
}

func (s validSpan) Links() []sdktrace.Link {
	ls := append([]sdktrace.Link(nil), s.ReadOnlySpan.Links()...)
	for i := range ls {
		ls[i].Attributes = validAttrs(ls[i].Attributes)
	}
	return ls
}

func validAttrs(kvs []attribute.KeyValue) []attribute.KeyValue {
	if attrsValid(kvs) {
		return kvs
	}
	out := make([]attribute.KeyValue, len(kvs))
	for i, kv := range kvs {
		k := attribute.Key(valid(string(kv.Key)))
		switch kv.Value.Type() {
		case attribute.STRING:
			out[i] = k.String(valid(kv.Value.AsString()))
		case attribute.STRINGSLICE:
			ss := kv.Value.AsStringSlice()
			for j := range ss {
				ss[j] = valid(ss[j])
			}
			out[i] = k.StringSlice(ss)
		default:
			out[i] = attribute.KeyValue{Key: k, Value: kv.Value}
		}
	}
	return out
}
