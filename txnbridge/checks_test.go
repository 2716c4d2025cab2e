package txnbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// signals records signals and answers with err.
type signals struct {
	mu   sync.Mutex
	err  error
	sent []string // "<workflow id> <signal> <check>"
}

func (s *signals) SignalWorkflow(_ context.Context, id, runID, name string, arg any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := arg.(workflows.PaymentCheck)
	s.sent = append(s.sent, id+" "+name+" "+strconv.Itoa(c.Check))
	return s.err
}

func checkMsg(key string, c workflows.PaymentCheck) *client.MessageExt {
	body, _ := json.Marshal(c)
	m := &client.MessageExt{MsgID: c.OrderID + "/check"}
	m.Body, m.Keys = body, []string{key}
	return m
}

func TestCheckHandler(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		err      error
		msg      *client.MessageExt
		want     client.ConsumeResult
		wantSent string
	}{
		{"signalled", nil, checkMsg("o1", workflows.PaymentCheck{OrderID: "o1", Check: 2}), client.ConsumeSuccess, "o1 payment-check 2"},
		{"finished workflow dropped", serviceerror.NewNotFound("workflow execution already completed"),
			checkMsg("o1", workflows.PaymentCheck{OrderID: "o1", Check: 1}), client.ConsumeSuccess, "o1 payment-check 1"},
		{"temporal down retried", errors.New("connection refused"),
			checkMsg("o1", workflows.PaymentCheck{OrderID: "o1", Check: 1}), client.ConsumeRetryLater, "o1 payment-check 1"},
		{"key names the workflow", nil, checkMsg("o2", workflows.PaymentCheck{OrderID: "other", Check: 1}), client.ConsumeSuccess,
			"o2 payment-check 1"},
		{"malformed dropped", nil, &client.MessageExt{Message: client.Message{Body: []byte("{"), Keys: []string{"o1"}}},
			client.ConsumeSuccess, ""},
		{"check 0 dropped", nil, checkMsg("o1", workflows.PaymentCheck{OrderID: "o1"}), client.ConsumeSuccess, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &signals{err: tc.err}
			res, err := txnbridge.CheckHandler(s, txnbridgetest.Logger(t))(ctx, []*client.MessageExt{tc.msg})
			if res != tc.want || (res == client.ConsumeRetryLater) != (err != nil) {
				t.Fatalf("result %v, %v; want %v", res, err, tc.want)
			}
			if got := len(s.sent); (tc.wantSent == "" && got != 0) || (tc.wantSent != "" && (got != 1 || s.sent[0] != tc.wantSent)) {
				t.Fatalf("signals %q, want %q", s.sent, tc.wantSent)
			}
		})
	}
}

// outage fails the first fail signals, as Temporal does while it is
// unreachable, then succeeds; it counts the calls.
type outage struct {
	mu    sync.Mutex
	fail  int
	calls int
	ok    bool
}

func (o *outage) SignalWorkflow(context.Context, string, string, string, any) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.calls <= o.fail {
		return errors.New("connection refused")
	}
	o.ok = true
	return nil
}

func (o *outage) state() (calls int, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, o.ok
}

// startOutage starts the plugin's check consumer, with consumer options
// co, on a broker whose one short delay level makes every retry quick (a
// retry's level, 3 + retries, is capped at the last one); its signals
// go to s. It sends one check and returns the broker.
func startOutage(t *testing.T, co client.ConsumerOptions, s txnbridge.Signaler) (*txnbridgetest.Stack, *client.PushConsumer) {
	t.Helper()
	st, pc, p := startChecks(t, co, s)
	sendCheck(t, context.Background(), p, 0)
	return st, pc
}

// startChecks starts the plugin's check consumer as startOutage does and
// returns the broker, the consumer and a producer of checks.
func startChecks(t *testing.T, co client.ConsumerOptions, s txnbridge.Signaler) (*txnbridgetest.Stack, *client.PushConsumer, *client.Producer) {
	t.Helper()
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{Levels: "100ms"})
	c := txnbridgetest.NewClient(t, st.NamesrvAddr)
	co.RebalanceInterval = 200 * time.Millisecond
	pc, err := txnbridge.StartCheckConsumer(context.Background(), txnbridge.Options{Client: c, DB: &orders.DB{},
		Logger: txnbridgetest.Logger(t), CheckConsumer: co}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p, err := c.NewProducer(client.ProducerOptions{Group: "check-sender"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return st, pc, p
}

// sendCheck sends order o1's first payment check through p, with ctx (and
// its trace) and delay level delay.
func sendCheck(t *testing.T, ctx context.Context, p *client.Producer, delay int) {
	t.Helper()
	body, _ := json.Marshal(workflows.PaymentCheck{OrderID: "o1", Check: 1})
	if _, err := p.Send(ctx, &client.Message{Topic: workflows.TopicPaymentCheck, Tags: workflows.TagPaymentCheck,
		Keys: []string{"o1"}, Body: body, DelayLevel: delay}); err != nil {
		t.Fatal(err)
	}
}

// A check whose signal fails more often than the client's default
// MaxReconsumeTimes (a long Temporal outage) is retried until the signal
// succeeds, never moved to the dead-letter queue, where the order waiting
// for it would wait for ever.
func TestCheckConsumerOutlastsOutage(t *testing.T) {
	s := &outage{fail: client.DefaultMaxReconsumeTimes + 4}
	st, _ := startOutage(t, client.ConsumerOptions{}, s)
	testutil.WaitFor(t, 30*time.Second, "the check signalled after the outage", func() bool {
		_, ok := s.state()
		return ok
	})
	if calls, _ := s.state(); calls != s.fail+1 {
		t.Fatalf("%d signals, want %d failed ones and one that succeeded", calls, s.fail)
	}
	if dlq := st.Stored(t, client.DLQTopic(workflows.CheckConsumerGroup)); len(dlq) != 0 {
		t.Fatalf("%d checks dead-lettered: %+v", len(dlq), dlq)
	}
}

// A MaxReconsumeTimes the user set in Options.CheckConsumer is kept: after
// that many retries the check goes to the dead-letter queue.
func TestCheckConsumerKeepsMaxReconsumeTimes(t *testing.T) {
	s := &outage{fail: 1 << 30}
	st, _ := startOutage(t, client.ConsumerOptions{MaxReconsumeTimes: 2}, s)
	testutil.WaitFor(t, 30*time.Second, "the check dead-lettered", func() bool {
		return len(st.Stored(t, client.DLQTopic(workflows.CheckConsumerGroup))) == 1
	})
	if calls, _ := s.state(); calls != 3 {
		t.Fatalf("%d signals before the dead-letter queue, want 3 (the first and 2 retries)", calls)
	}
}

// silent is a Temporal that never answers: each signal waits for its
// context to end.
type silent struct{ calls atomic.Int32 }

func (s *silent) SignalWorkflow(ctx context.Context, _, _, _ string, _ any) error {
	s.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// Closing the check consumer ends a signal waiting on an unanswering
// Temporal (the worker's shutdown waited for the consumer's ConsumeTimeout,
// 15 min); the check stays unacknowledged and is delivered again.
func TestCheckConsumerCloseEndsAWaitingSignal(t *testing.T) {
	s := &silent{}
	_, pc := startOutage(t, client.ConsumerOptions{}, s)
	testutil.WaitFor(t, 30*time.Second, "a signal under way", func() bool { return s.calls.Load() > 0 })
	closed := make(chan error, 1)
	go func() { closed <- pc.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the check consumer's Close still waits for a signal Temporal does not answer")
	}
}

// A check whose key no workflow id can be (Temporal's client carries the
// id in a gRPC header, which takes printable ASCII only: a client refuses
// to start or signal "ordér-1" with a serviceerror.Internal) is dropped
// like a malformed one. It was answered ConsumeRetryLater, as if Temporal
// were down, and with the check consumer's unlimited MaxReconsumeTimes it
// went round the retry topic for ever.
func TestCheckHandlerDropsKeyNoWorkflowCanHave(t *testing.T) {
	tc := txnbridgetest.DialTemporal(t, txnbridgetest.StartDevServer(t))
	h := txnbridge.CheckHandler(tc, txnbridgetest.Logger(t))
	for _, key := range []string{"ordér-1", "o\t1", "o\x7f1", "\xff"} {
		res, err := h(context.Background(), []*client.MessageExt{checkMsg(key, workflows.PaymentCheck{OrderID: "o1", Check: 1})})
		if res != client.ConsumeSuccess || err != nil {
			t.Errorf("check keyed %q: %v, %v; want it dropped (ConsumeSuccess)", key, res, err)
		}
	}
}
