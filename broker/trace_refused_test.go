package broker

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// A send the store refuses (here: properties at RocketMQ's limit, which
// the broker's CLUSTER property pushes past it) is a failed store span in
// the producer's trace, naming the message, not a trace of its own.
func TestRefusedStoreSpanStaysInTheProducersTrace(t *testing.T) {
	rec := recordSpans(t)
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	tp, tid := traceparent(t, "7bf92f3577b34da6a3ce929d0e0e4739")
	base := props("UNIQ_KEY", "big1", "traceparent", tp)
	p := base + props("PAD", strings.Repeat("x", message.MaxPropertiesLength-len(base)-len("PAD\x01\x02")))
	resp := call(t, c, remoting.ReqSendMessageV2, sendExtV2("orders", 0, p), []byte("b"))
	if resp.Code == remoting.RespSuccess {
		t.Fatal("a send with properties past the limit was stored")
	}
	var stores []string
	for _, s := range rec.Ended() {
		if s.Name() != "store orders" {
			continue
		}
		stores = append(stores, s.SpanContext().TraceID().String())
		if s.SpanContext().TraceID() != tid || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("refused store span in trace %s under %s, want the producer's %s under 00f067aa0ba902b7",
				s.SpanContext().TraceID(), s.Parent().SpanID(), tid)
		}
		if s.Status().Code != codes.Error || attr(s, string(telemetry.KeyMessageID)) != "big1" {
			t.Errorf("refused store span: status %v, attributes %v", s.Status(), s.Attributes())
		}
	}
	if len(stores) != 1 {
		t.Fatalf("%d store spans (traces %v), want 1", len(stores), stores)
	}
}
