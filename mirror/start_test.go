package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// onSpanTP is a no-op tracer provider that calls onStart whenever the
// mirror starts a publish span, which a handler call does first.
type onSpanTP struct {
	noop.TracerProvider
	onStart func()
}

func (p onSpanTP) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return onSpanTracer{onStart: p.onStart}
}

type onSpanTracer struct {
	noop.Tracer
	onStart func()
}

func (t onSpanTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	t.onStart()
	return noop.Tracer{}.Start(ctx, name, opts...)
}

// slowBroker registers a broker serving topic with the name server at
// nsAddr: it takes heartbeats but holds GET_CONSUMER_LIST_BY_GROUP until
// the test ends, so that a rebalance reaching topic waits there.
func slowBroker(t *testing.T, nsAddr, topic string) {
	t.Helper()
	hold := make(chan struct{})
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqHeartBeat, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	mux.HandleFunc(remoting.ReqGetConsumerListByGroup, func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return remoting.NewResponse(req, remoting.RespSystemError, "held")
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: mux, Logger: txnbridgetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(func() { close(hold) }) // before Close, which waits for the handlers
	body, err := json.Marshal(namesrv.RegisterBrokerBody{TopicConfigSerializeWrapper: namesrv.TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]namesrv.TopicConfig{topic: {TopicName: topic, ReadQueueNums: 1, WriteQueueNums: 1, Perm: namesrv.PermRW}},
		DataVersion:      namesrv.DataVersion{Timestamp: 1, Counter: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ns := remotetest.Dial(t, nsAddr)
	resp := remotetest.Call(t, ns, remoting.ReqRegisterBroker, map[string]string{"brokerName": uniq("slow"),
		"brokerAddr": srv.Addr().String(), "clusterName": "DefaultCluster", "brokerId": "0"}, body)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("register the slow broker: %d %s", resp.Code, resp.Remark)
	}
}

// TestStartEndedByItsContextWhileABatchRuns ends Start's context while
// the first rebalance is still under way (it waits for a slow broker) and
// a handler call has begun on a queue it already took: Start returns the
// context's error (the consumer waits for the handler, which must not need
// anything Start holds), and Close then returns too.
func TestStartEndedByItsContextWhileABatchRuns(t *testing.T) {
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	// The held request must outlast the wait for the first handler call,
	// however loaded the machine: the rebalance then still waits at topicB
	// when Start's context ends.
	c, err := client.New(client.Options{NamesrvAddrs: []string{st.NamesrvAddr}, Logger: txnbridgetest.Logger(t),
		RequestTimeout: 5 * time.Minute, RouteRefreshInterval: time.Second, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topicA, topicB := uniq("startA"), uniq("startB")
	createTopic(t, st.Broker.Addr(), topicA)
	slowBroker(t, st.NamesrvAddr, topicB)
	kc := startKafka(t, kfake.SeedTopics(1, topicA, topicB))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newProducer(t, c, client.ProducerOptions{})
	send(t, ctx, p, &client.Message{Topic: topicA, Body: []byte("first")})

	startCtx, endStart := context.WithCancel(ctx)
	defer endStart()
	var once sync.Once
	m, err := mirror.New(mirror.Options{Client: c, Group: uniq("mirror"), StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topicA, Kafka: topicA}, {RocketMQ: topicB, Kafka: topicB}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), DialTimeout: time.Second, ProduceTimeout: 3 * time.Second},
		Logger: txnbridgetest.Logger(t), MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		// The first handler call ends Start's context.
		TracerProvider: onSpanTP{onStart: func() { once.Do(endStart) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- m.Start(startCtx) }()
	var startErr error
	returned := false
	testutil.WaitFor(t, 20*time.Second, "Start to return after its context ended", func() bool {
		select {
		case startErr = <-started:
			returned = true
		default:
		}
		return returned
	})
	if !errors.Is(startErr, context.Canceled) {
		t.Fatalf("Start: %v, want the context's error", startErr)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
