package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// FileExporter writes spans as OTLP/JSON lines: each export appends one
// line holding an ExportTraceServiceRequest in the OTLP JSON encoding
// (the form the OpenTelemetry Collector's file exporter writes and its
// otlpjsonfile receiver reads): resourceSpans → scopeSpans → spans, with
// traceId / spanId / parentSpanId as lower-case hex, times as decimal
// strings of Unix nanoseconds, kind and status code as OTLP's numbers,
// attributes as {"key", "value": {"stringValue"|"intValue"|...}}, and
// events and links.
//
// It is safe for concurrent use.
type FileExporter struct {
	mu sync.Mutex
	f  *os.File
}

// OpenFileExporter opens path for appending (creating it, mode 0644).
func OpenFileExporter(path string) (*FileExporter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpanFile, err)
	}
	return &FileExporter{f: f}, nil
}

// ExportSpans appends spans as one line, in one write call (so processes
// appending to the same file do not interleave their lines).
func (e *FileExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	line, err := json.Marshal(toRequest(spans))
	if err != nil {
		return fmt.Errorf("telemetry: encode spans: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return fmt.Errorf("telemetry: span file closed")
	}
	if _, err := e.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("telemetry: write spans: %w", err)
	}
	return nil
}

// Shutdown closes the file.
func (e *FileExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}

// The OTLP/JSON shapes of ExportTraceServiceRequest that FileExporter
// writes (only the fields it fills).
type (
	otlpRequest struct {
		ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	}
	otlpResourceSpans struct {
		Resource   otlpResource     `json:"resource"`
		ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
		SchemaURL  string           `json:"schemaUrl,omitempty"`
	}
	otlpResource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpScopeSpans struct {
		Scope     otlpScope  `json:"scope"`
		Spans     []otlpSpan `json:"spans"`
		SchemaURL string     `json:"schemaUrl,omitempty"`
	}
	otlpScope struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	otlpSpan struct {
		TraceID           string         `json:"traceId"`
		SpanID            string         `json:"spanId"`
		TraceState        string         `json:"traceState,omitempty"`
		ParentSpanID      string         `json:"parentSpanId,omitempty"`
		Flags             uint32         `json:"flags,omitempty"`
		Name              string         `json:"name"`
		Kind              int            `json:"kind"`
		StartTimeUnixNano string         `json:"startTimeUnixNano"`
		EndTimeUnixNano   string         `json:"endTimeUnixNano"`
		Attributes        []otlpKeyValue `json:"attributes,omitempty"`
		Events            []otlpEvent    `json:"events,omitempty"`
		Links             []otlpLink     `json:"links,omitempty"`
		Status            otlpStatus     `json:"status"`
	}
	otlpEvent struct {
		TimeUnixNano string         `json:"timeUnixNano"`
		Name         string         `json:"name"`
		Attributes   []otlpKeyValue `json:"attributes,omitempty"`
	}
	otlpLink struct {
		TraceID    string         `json:"traceId"`
		SpanID     string         `json:"spanId"`
		TraceState string         `json:"traceState,omitempty"`
		Attributes []otlpKeyValue `json:"attributes,omitempty"`
	}
	otlpStatus struct {
		Message string `json:"message,omitempty"`
		Code    int    `json:"code,omitempty"`
	}
	otlpKeyValue struct {
		Key   string       `json:"key"`
		Value otlpAnyValue `json:"value"`
	}
	otlpAnyValue struct {
		StringValue *string         `json:"stringValue,omitempty"`
		BoolValue   *bool           `json:"boolValue,omitempty"`
		IntValue    *string         `json:"intValue,omitempty"`
		DoubleValue *otlpDouble     `json:"doubleValue,omitempty"`
		ArrayValue  *otlpArrayValue `json:"arrayValue,omitempty"`
	}
	otlpArrayValue struct {
		Values []otlpAnyValue `json:"values"`
	}
)

// otlpDouble is a double in the proto3 JSON encoding: a number, or the
// string "NaN", "Infinity" or "-Infinity" (encoding/json refuses those,
// which failed the whole batch's export).
type otlpDouble float64

func (d otlpDouble) MarshalJSON() ([]byte, error) {
	switch f := float64(d); {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	default:
		return json.Marshal(f)
	}
}

// toRequest groups spans by resource and scope, in the order first seen.
func toRequest(spans []sdktrace.ReadOnlySpan) otlpRequest {
	type scopeKey struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	var req otlpRequest
	resIdx := map[*resource.Resource]int{}
	scopeIdx := map[scopeKey]int{}
	for _, s := range spans {
		res := s.Resource()
		ri, ok := resIdx[res]
		if !ok {
			ri = len(req.ResourceSpans)
			resIdx[res] = ri
			rs := otlpResourceSpans{Resource: otlpResource{Attributes: keyValues(res.Attributes())}}
			if res != nil {
				rs.SchemaURL = res.SchemaURL()
			}
			req.ResourceSpans = append(req.ResourceSpans, rs)
		}
		rs := &req.ResourceSpans[ri]
		sk := scopeKey{res, s.InstrumentationScope()}
		si, ok := scopeIdx[sk]
		if !ok {
			si = len(rs.ScopeSpans)
			scopeIdx[sk] = si
			rs.ScopeSpans = append(rs.ScopeSpans, otlpScopeSpans{Scope: otlpScope{Name: sk.scope.Name, Version: sk.scope.Version},
				SchemaURL: sk.scope.SchemaURL})
		}
		rs.ScopeSpans[si].Spans = append(rs.ScopeSpans[si].Spans, toSpan(s))
	}
	return req
}

func toSpan(s sdktrace.ReadOnlySpan) otlpSpan {
	sc := s.SpanContext()
	out := otlpSpan{
		TraceID:           sc.TraceID().String(),
		SpanID:            sc.SpanID().String(),
		TraceState:        sc.TraceState().String(),
		Flags:             uint32(sc.TraceFlags()),
		Name:              s.Name(),
		Kind:              int(s.SpanKind()), // the SDK's numbering is OTLP's
		StartTimeUnixNano: strconv.FormatInt(s.StartTime().UnixNano(), 10),
		EndTimeUnixNano:   strconv.FormatInt(s.EndTime().UnixNano(), 10),
		Attributes:        keyValues(s.Attributes()),
		Status:            otlpStatus{Message: s.Status().Description},
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		out.ParentSpanID = p.SpanID().String()
	}
	switch s.Status().Code { // OTLP: 0 unset, 1 ok, 2 error
	case codes.Ok:
		out.Status.Code = 1
	case codes.Error:
		out.Status.Code = 2
	}
	for _, ev := range s.Events() {
		out.Events = append(out.Events, otlpEvent{TimeUnixNano: strconv.FormatInt(ev.Time.UnixNano(), 10),
			Name: ev.Name, Attributes: keyValues(ev.Attributes)})
	}
	for _, l := range s.Links() {
		out.Links = append(out.Links, otlpLink{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String(),
			TraceState: l.SpanContext.TraceState().String(), Attributes: keyValues(l.Attributes)})
	}
	return out
}

func keyValues(kvs []attribute.KeyValue) []otlpKeyValue {
	out := make([]otlpKeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, otlpKeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) otlpAnyValue {
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		return otlpAnyValue{BoolValue: &b}
	case attribute.INT64:
		s := strconv.FormatInt(v.AsInt64(), 10)
		return otlpAnyValue{IntValue: &s}
	case attribute.FLOAT64:
		f := otlpDouble(v.AsFloat64())
		return otlpAnyValue{DoubleValue: &f}
	case attribute.BOOLSLICE:
		return array(v.AsBoolSlice(), func(b bool) attribute.Value { return attribute.BoolValue(b) })
	case attribute.INT64SLICE:
		return array(v.AsInt64Slice(), func(i int64) attribute.Value { return attribute.Int64Value(i) })
	case attribute.FLOAT64SLICE:
		return array(v.AsFloat64Slice(), func(f float64) attribute.Value { return attribute.Float64Value(f) })
	case attribute.STRINGSLICE:
		return array(v.AsStringSlice(), func(s string) attribute.Value { return attribute.StringValue(s) })
	}
	s := v.String()
	return otlpAnyValue{StringValue: &s}
}

func array[T any](vs []T, conv func(T) attribute.Value) otlpAnyValue {
	a := &otlpArrayValue{Values: make([]otlpAnyValue, 0, len(vs))}
	for _, v := range vs {
		a.Values = append(a.Values, anyValue(conv(v)))
	}
	return otlpAnyValue{ArrayValue: a}
}
