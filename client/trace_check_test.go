package client

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/internal/testutil"
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

// A handler call taken for hung (twice ConsumeTimeout) has its result
// ignored and its message consumed again; when it finally returns
// ConsumeSuccess, its process span says the result was ignored, and the
// retry's span is the one that succeeded.
func TestTraceHungHandlerProcessSpanIsAnError(t *testing.T) {
	rec := recordSpans(t)
	cl, c, p := flowSetup(t)
	topic := uniq("hungt")
	createTopic(t, p, topic)
	release, retried := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		switch {
		case string(msgs[0].Body) != "hang":
		case msgs[0].ReconsumeTimes == 0:
			<-release // ignores ctx
		default:
			once.Do(func() { close(retried) })
		}
		return ConsumeSuccess, nil
	}
	startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), Model: Broadcasting, MemoryOffsets: true,
		FromWhere: ConsumeFromFirst, ConsumeTimeout: 100 * time.Millisecond, SuspendInterval: 10 * time.Millisecond},
		topic, "*", h)
	ctx, root := rootSpan(t, "order")
	if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("hang")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	cl.waitStored(t, topic, 2) // createTopic's message and ours
	releaseAfterRetry(t, retried, release)
	var process []sdktrace.ReadOnlySpan
	testutil.WaitFor(t, 15*time.Second, "both calls' process spans", func() bool {
		process = process[:0]
		for _, s := range rec.Ended() {
			if s.Name() == "process "+topic && s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				process = append(process, s)
			}
		}
		return len(process) >= 2
	})
	var hung, ok int
	for _, s := range process {
		switch st := s.Status(); {
		case st.Code == codes.Error && strings.Contains(st.Description, "result was ignored"):
			hung++
		case st.Code != codes.Error:
			ok++
		default:
			t.Errorf("process span status %v", st)
		}
	}
	if hung != 1 || ok != len(process)-1 {
		t.Errorf("%d process spans: %d say the result was ignored, %d succeeded; want exactly one ignored", len(process), hung, ok)
	}
}
