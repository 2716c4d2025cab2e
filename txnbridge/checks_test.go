package txnbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/halfbackmq/halfback/client"
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
