package broker

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// collected is one collection of a ManualReader.
type collected map[string]metricdata.Aggregation

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// value sums the integer points of metric name whose attributes include
// every key=value of kv; ok is false when the metric is missing.
func (c collected) value(name string, kv ...string) (n int64, ok bool) {
	var points []metricdata.DataPoint[int64]
	switch d := c[name].(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		return 0, false
	}
next:
	for _, p := range points {
		for i := 0; i+1 < len(kv); i += 2 {
			if v, found := p.Attributes.Value(attribute.Key(kv[i])); !found || v.String() != kv[i+1] {
				continue next
			}
		}
		n += p.Value
	}
	return n, true
}

func (c collected) want(t *testing.T, name string, want int64, kv ...string) {
	t.Helper()
	if got, ok := c.value(name, kv...); !ok || got != want {
		t.Errorf("%s%v = %d (present %v), want %d", name, kv, got, ok, want)
	}
}

func TestBrokerMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	o := txnOptions(t)
	o.MeterProvider = mp
	var ownFlushes atomic.Int64 // an OnFlush of the caller's runs beside the metric's
	o.Store.OnFlush = func(time.Duration) { ownFlushes.Add(1) }
	b := startBroker(t, o)
	c := dial(t, b)

	for i := range 3 {
		mustSend(t, c, "orders", 0, props("TAGS", "a"), "m"+string(rune('0'+i)))
	}
	mustSend(t, c, "later", 0, props("DELAY", "1"), "delayed") // 100 ms
	waitQueue(t, b, "orders", 0, 3)
	if resp := pull(t, c, "orders", 0, 0, 0, "*", 0); resp.Code != remoting.RespSuccess {
		t.Fatalf("pull: %d %s", resp.Code, resp.Remark)
	}
	if r := updateOffset(t, c, "cg", "orders", 0, 1); r.Code != remoting.RespSuccess {
		t.Fatalf("update offset: %d %s", r.Code, r.Remark)
	}
	commit := sendHalfRaw(t, c, "orders", "c1")
	sendHalfRaw(t, c, "orders", "open1")
	sendHalfRaw(t, c, "orders", "op1")
	if r := endTxn(t, c, commit, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	if r := call(t, c, remoting.ReqHalfbackResolveTransaction, map[string]string{"id": "op1", "outcome": "rollback"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("operator rollback: %d %s", r.Code, r.Remark)
	}
	offs := appendTestMsgs(t, b, "failing", 0, 2)
	if r := callSendBack(t, c, sendBackExt(offs[0], "g", "failing", 0, 5)); r.Code != remoting.RespSuccess {
		t.Fatalf("send back: %d %s", r.Code, r.Remark)
	}
	if r := callSendBack(t, c, sendBackExt(offs[1], "g", "failing", -1, 5)); r.Code != remoting.RespSuccess {
		t.Fatalf("send back to DLQ: %d %s", r.Code, r.Remark)
	}
	// A retry the consumer's client sends itself (RocketMQ's Java client
	// when its send-back failed) is a retry of its group too.
	retry := sendExtV2(RetryTopic("h"), 0, props("UNIQ_KEY", "resent", "DELAY", "5"))
	retry["j"], retry["l"] = "1", "16"
	if r := call(t, c, remoting.ReqSendMessageV2, retry, []byte("again")); r.Code != remoting.RespSuccess {
		t.Fatalf("retry send: %d %s", r.Code, r.Remark)
	}
	waitQueue(t, b, DLQTopic("g"), 0, 1)
	waitFor(t, "the delayed message", func() bool { return b.Scheduler().Stats().Delivered >= 1 })

	m := collect(t, reader)
	m.want(t, "halfback.broker.messages.in", 3, "messaging.destination.name", "orders")
	m.want(t, "halfback.broker.messages.in", 1, "messaging.destination.name", "later")
	m.want(t, "halfback.broker.messages.out", 3, "messaging.destination.name", "orders", "messaging.consumer.group.name", "cg")
	// The commit made a fourth message in orders/0; cg committed 1.
	m.want(t, "halfback.broker.consumer.lag", 3, "messaging.consumer.group.name", "cg", "messaging.destination.name", "orders")
	m.want(t, "halfback.broker.retries", 1, "messaging.consumer.group.name", "g")
	m.want(t, "halfback.broker.retries", 1, "messaging.consumer.group.name", "h")
	m.want(t, "halfback.broker.dlq.messages", 1, "messaging.consumer.group.name", "g")
	m.want(t, "halfback.broker.dlq.size", 1, "messaging.destination.name", "%DLQ%g")
	m.want(t, "halfback.txn.halves", 3)
	m.want(t, "halfback.txn.outcomes", 1, "halfback.txn.outcome", "commit", "halfback.txn.source", "producer")
	m.want(t, "halfback.txn.outcomes", 0, "halfback.txn.outcome", "rollback", "halfback.txn.source", "producer")
	m.want(t, "halfback.txn.outcomes", 1, "halfback.txn.outcome", "rollback", "halfback.txn.source", "operator")
	m.want(t, "halfback.txn.outcomes", 1, "halfback.txn.outcome", "rollback")
	pending, _ := m.value("halfback.txn.half.pending")
	parked, _ := m.value("halfback.txn.half.parked")
	if pending+parked != 1 {
		t.Errorf("half messages pending %d + parked %d, want 1 open", pending, parked)
	}
	if _, ok := m.value("halfback.txn.checks"); !ok {
		t.Error("halfback.txn.checks missing")
	}
	m.want(t, "halfback.delay.scheduled", 1, "halfback.delay.level", "1")
	if n, ok := m.value("halfback.delay.delivered"); !ok || n < 1 {
		t.Errorf("halfback.delay.delivered = %d (present %v), want at least 1", n, ok)
	}
	if _, ok := m["halfback.delay.lateness.max"].(metricdata.Gauge[float64]); !ok {
		t.Error("halfback.delay.lateness.max missing")
	}
	m.want(t, "halfback.lifecycle.events.dropped", 0)
	if ownFlushes.Load() == 0 {
		t.Error("the Store.OnFlush given to Open was never called")
	}
	h, ok := m["halfback.store.flush.duration"].(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count == 0 || h.DataPoints[0].Sum <= 0 {
		t.Errorf("halfback.store.flush.duration = %+v, want SYNC_FLUSH fsyncs recorded", m["halfback.store.flush.duration"])
	}

	// Closing the broker unregisters its callback.
	b.Close()
	if _, ok := collect(t, reader).value("halfback.broker.messages.in"); ok {
		t.Error("metrics still reported after Close")
	}
}

func TestBrokerMetricsOffWithNoopProvider(t *testing.T) {
	o := testOptions(t)
	o.MeterProvider = metricnoop.NewMeterProvider()
	b := startBroker(t, o)
	if b.metrics != nil {
		t.Fatal("metrics made on the no-op provider")
	}
	mustSend(t, dial(t, b), "orders", 0, "", "x") // the nil hooks do nothing
}

func TestPrometheusEndpointServesBrokerMetrics(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{MetricsAddr: "127.0.0.1:0", ServiceName: "halfback-broker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tel.Shutdown(context.Background())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
	})
	b := startBroker(t, testOptions(t)) // the global provider
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "x")
	mustSend(t, c, "orders", 0, "", "y")
	resp, err := http.Get("http://" + tel.MetricsAddr() + telemetry.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var line string
	for l := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(l, "halfback_broker_messages_in_total{") && strings.Contains(l, `messaging_destination_name="orders"`) {
			line = l
		}
	}
	if !strings.HasSuffix(line, " 2") {
		t.Errorf("messages in of orders: %q in\n%s", line, body)
	}
	for _, name := range []string{"halfback_txn_half_pending", "halfback_store_flush_duration_seconds_bucket", "halfback_delay_lateness_max_seconds"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("metrics page lacks %s", name)
		}
	}
}
