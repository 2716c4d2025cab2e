package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/halfbackmq/halfback/broker"
)

// A check listener that panics is answered Unknown, as before, and its
// check span says it failed, as a panicking handler's process span does.
func TestTraceCheckListenerPanicIsAnError(t *testing.T) {
	rec := recordSpans(t)
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn.Timeout, o.Txn.CheckInterval = 200*time.Millisecond, 200*time.Millisecond
	})
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { panic("no order database") })})
	topic := uniq("pay")
	ctx, root := rootSpan(t, "order")
	if _, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte("charge")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	check := findSpan(t, rec, root.SpanContext().TraceID(), "check "+topic)
	wantAttrs(t, check, keyTxnState.String("UNKNOWN"))
	if st := check.Status(); st.Code != codes.Error || !strings.Contains(st.Description, "no order database") {
		t.Errorf("check span of a panicking listener: status %v, want an error naming the panic", st)
	}
}
