package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const topic = "order-events"

// startKafka starts a one-broker kfake cluster on 127.0.0.1 with topic in
// three partitions, and returns its address.
func startKafka(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// record is one record to produce, to a given partition.
type record struct {
	partition             int32
	key, tag, msgID, body string
	traceparent           string // "" for none
}

func produce(t *testing.T, addr string, recs ...record) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, r := range recs {
		hs := []sarama.RecordHeader{
			{Key: []byte("TAGS"), Value: []byte(r.tag)},
			{Key: []byte("KEYS"), Value: []byte(r.key)},
			{Key: []byte("rocketmq.msgId"), Value: []byte(r.msgID)},
		}
		if r.traceparent != "" {
			hs = append(hs, sarama.RecordHeader{Key: []byte("traceparent"), Value: []byte(r.traceparent)})
		}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: r.partition,
			Key: sarama.StringEncoder(r.key), Value: sarama.StringEncoder(r.body), Headers: hs}); err != nil {
			t.Fatal(err)
		}
	}
}

// recordSpans installs an SDK tracer provider that records ended spans, for
// the rest of the test.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	return rec
}

// consumeLines runs the command with args and returns its output lines,
// sorted (partitions are read concurrently).
func consumeLines(t *testing.T, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run %q: %v; log:\n%s", args, err, &stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("run %q: timed out before --max records; printed:\n%s\nlog:\n%s", args, &stdout, &stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	slices.Sort(lines)
	return lines
}

const (
	trace1 = "4bf92f3577b34da6a3ce929d0e0e4736"
	trace3 = "0af7651916cd43dd8448eb211c80319c"
	span1  = "00f067aa0ba902b7"
	span3  = "b7ad6b7169203331"
)

func TestPrintsTheTagsRecordsInTheirTraces(t *testing.T) {
	addr := startKafka(t)
	spans := recordSpans(t)
	produce(t, addr,
		record{0, "order-1", "OrderCreated", "MSG-1A", `{"orderId":"order-1"}`, "00-" + trace1 + "-1111111111111111-01"},
		record{0, "order-1", "OrderPaid", "MSG-1B", `{"orderId":"order-1","status":"PAID"}`, "00-" + trace1 + "-" + span1 + "-01"},
		record{1, "order-2", "OrderPaid", "MSG-2B", `{"orderId":"order-2"}`, "not-a-traceparent"},
		record{2, "order-3", "OrderCreated", "MSG-3A", `{"orderId":"order-3"}`, ""},
		record{2, "order-3", "OrderPaid", "MSG-3B", "line one\nline two", "00-" + trace3 + "-" + span3 + "-01"},
	)
	got := consumeLines(t, "--brokers", addr, "--topic", topic, "--group", "analytics", "--tag", "OrderPaid", "--max", "3")
	want := []string{
		`partition=0 offset=1 key=order-1 tag=OrderPaid msgId=MSG-1B trace=` + trace1 + ` body={"orderId":"order-1","status":"PAID"}`,
		`partition=1 offset=0 key=order-2 tag=OrderPaid msgId=MSG-2B trace=- body={"orderId":"order-2"}`,
		`partition=2 offset=1 key=order-3 tag=OrderPaid msgId=MSG-3B trace=` + trace3 + ` body="line one\nline two"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// One consumer span per printed record, a child of its traceparent.
	parents := map[string]string{}
	for _, s := range spans.Ended() {
		if s.Name() != "process "+topic || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("span %q kind %v, want %q kind consumer", s.Name(), s.SpanKind(), "process "+topic)
			continue
		}
		var msgID string
		for _, a := range s.Attributes() {
			if a.Key == "messaging.message.id" {
				msgID = a.Value.AsString()
			}
			if a.Key == "messaging.destination.partition.id" && a.Value.Type() != attribute.STRING {
				t.Errorf("span's messaging.destination.partition.id is a %v, want a string (semantic conventions)", a.Value.Type())
			}
		}
		parents[msgID] = s.Parent().TraceID().String() + "-" + s.Parent().SpanID().String()
		if s.Parent().IsValid() && s.SpanContext().TraceID() != s.Parent().TraceID() {
			t.Errorf("span of %s in trace %s, its parent in %s", msgID, s.SpanContext().TraceID(), s.Parent().TraceID())
		}
	}
	wantParents := map[string]string{
		"MSG-1B": trace1 + "-" + span1,
		"MSG-2B": trace.TraceID{}.String() + "-" + trace.SpanID{}.String(), // a root span
		"MSG-3B": trace3 + "-" + span3,
	}
	if len(parents) != 3 || parents["MSG-1B"] != wantParents["MSG-1B"] ||
		parents["MSG-2B"] != wantParents["MSG-2B"] || parents["MSG-3B"] != wantParents["MSG-3B"] {
		t.Errorf("span parents by message %v, want %v", parents, wantParents)
	}

	// Every record read was marked and committed, printed or not: the
	// group goes on with the next record only.
	if got := committed(t, addr, "analytics"); !slices.Equal(got, []int64{2, 1, 2}) {
		t.Errorf("committed offsets %v, want [2 1 2]", got)
	}
	produce(t, addr, record{1, "order-4", "OrderPaid", "MSG-4B", `{"orderId":"order-4"}`, "00-" + trace1 + "-" + span1 + "-00"})
	got = consumeLines(t, "--brokers", addr, "--group", "analytics", "--max", "1")
	if want := `partition=1 offset=1 key=order-4 tag=OrderPaid msgId=MSG-4B trace=` + trace1 + ` body={"orderId":"order-4"}`; !slices.Equal(got, []string{want}) {
		t.Errorf("after the commit, printed %q, want %q", got, want)
	}
}

func TestConfigExportsTheSpans(t *testing.T) {
	addr := startKafka(t)
	produce(t, addr, record{0, "order-1", "OrderPaid", "MSG-1B", "paid", "00-" + trace1 + "-" + span1 + "-01"})
	dir := t.TempDir()
	spans, cfgFile := filepath.Join(dir, "spans.jsonl"), filepath.Join(dir, "config.yaml")
	yaml := "telemetry:\n  exporter: file\n  file: " + spans + "\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	consumeLines(t, "--config", cfgFile, "--brokers", addr, "--max", "1")
	b, err := os.ReadFile(spans) // flushed when run returned
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"process order-events"`, trace1, span1, ServiceName} {
		if !strings.Contains(string(b), want) {
			t.Errorf("exported spans lack %s:\n%s", want, b)
		}
	}
}

func TestEmptyTagPrintsEveryRecord(t *testing.T) {
	addr := startKafka(t)
	produce(t, addr,
		record{0, "order-1", "OrderCreated", "MSG-1A", "created", ""},
		record{0, "order-1", "OrderPaid", "MSG-1B", "paid", ""},
		record{0, "", "", "", "", ""},
	)
	got := consumeLines(t, "--brokers", addr, "--tag", "", "--max", "3")
	want := []string{
		"partition=0 offset=0 key=order-1 tag=OrderCreated msgId=MSG-1A trace=- body=created",
		"partition=0 offset=1 key=order-1 tag=OrderPaid msgId=MSG-1B trace=- body=paid",
		"partition=0 offset=2 key=- tag=- msgId=- trace=- body=-",
	}
	if !slices.Equal(got, want) {
		t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// committed returns the group's committed offsets of topic's partitions.
func committed(t *testing.T, addr, group string) []int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for p := range int32(3) {
		if b := resp.GetBlock(topic, p); b != nil {
			out = append(out, b.Offset)
		}
	}
	return out
}

func TestTraceIDOfHeaders(t *testing.T) {
	for _, tt := range []struct {
		traceparent, want string
	}{
		{"00-" + trace1 + "-" + span1 + "-01", trace1},
		{"00-" + trace1 + "-" + span1 + "-00", trace1}, // not sampled: still the trace
		{"", "-"},
		{"00-" + trace1 + "-" + span1, "-"},
		{"00-00000000000000000000000000000000-" + span1 + "-01", "-"},
		{"00-" + trace1 + "-0000000000000000-01", "-"},
		{"ff-" + trace1 + "-" + span1 + "-01", "-"},
		{"00-" + strings.ToUpper(trace1) + "-" + span1 + "-01", "-"},
	} {
		var hs []*sarama.RecordHeader
		if tt.traceparent != "" {
			hs = append(hs, &sarama.RecordHeader{Key: []byte("traceparent"), Value: []byte(tt.traceparent)})
		}
		ctx := propagation.TraceContext{}.Extract(context.Background(), headerCarrier(hs))
		got := "-"
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			got = sc.TraceID().String()
		}
		if got != tt.want {
			t.Errorf("traceparent %q: trace %s, want %s", tt.traceparent, got, tt.want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		usage bool
		msg   string
	}{
		{[]string{"--from", "middle"}, true, "want oldest or newest"},
		{[]string{"--max", "-1"}, true, "negative"},
		{[]string{"--brokers", " , "}, true, "--brokers is empty"},
		{[]string{"--topic", ""}, true, "--topic is empty"},
		{[]string{"--group", ""}, true, "--group is empty"},
		{[]string{"--partition", "1"}, true, "flag provided but not defined"},
		{[]string{"extra"}, true, "unexpected arguments"},
		{[]string{"--config", "/nonexistent.yaml"}, false, "no such file"},
		{[]string{"--brokers", "127.0.0.1:1"}, false, "run out of available brokers"},
	} {
		err := run(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || errors.Is(err, errUsage) != tt.usage || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: %v (usage error %v), want an error with %q (usage error %v)",
				tt.args, err, errors.Is(err, errUsage), tt.msg, tt.usage)
		}
	}
}
