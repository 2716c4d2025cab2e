package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/halfbackmq/halfback/activities"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

// Test order: the workflow id and the input of every test.
const (
	orderID    = "order-1"
	checkDelay = time.Minute // the broker's delay level in these tests
)

var input = workflows.OrderInput{OrderID: orderID, User: "alice", SKU: "sku-1", Qty: 2, Amount: 1500}

// harness runs OrderPaymentWorkflow in a test environment with the real
// activities registered and mocked, recording their calls. Tests replace
// the behaviour funcs before run.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	// behaviour of the mocked activities; defaults succeed.
	sendHalf func(in workflows.SendHalfInput) (client.HalfReceipt, error)
	endTxn   func(in workflows.EndInput) error
	local    func(activity, txnID string) error // the three local transactions
	state    func() (string, error)             // the order's status
	// recorded is the payment the mocked database recorded, answered by
	// ActivityOrderState with a PAID state.
	recorded  string
	maxChecks int
	// deliverChecks delivers each sent check as a signal after checkDelay.
	deliverChecks bool
	// lose, if set, tells which sent checks are lost instead of delivered:
	// send counts the sends of check number n from 1.
	lose func(n, send int) bool
	// stamp, if set, is the run a sent check names (the activity's result
	// and the message's Run) instead of the activity's run: "" keeps it.
	// A run started by Temporal's reset has in its history the checks the
	// run it replaced sent before the reset point, stamped with that run.
	stamp func(n, send int) string
	// sendErr, if set, is the error of an attempt to send a check (send
	// counts the attempts too).
	sendErr func(n, send int) error
	// sendTakes, if set, is how long on the workflow's clock attempt i
	// (from 0, over every check) to send a check takes: a send that
	// retries while the check topic's broker is unreachable.
	sendTakes func(i int) time.Duration
	// legacy runs the workflow as one started before
	// workflows.SettlesChange (GetVersion answers DefaultVersion).
	legacy bool
	// beforePaymentID runs the workflow as one started before
	// workflows.PaymentIDChange.
	beforePaymentID bool
	// beforeCheckRun runs the workflow as one started before
	// workflows.CheckRunChange.
	beforeCheckRun bool
	// beforeCheckResend runs the workflow as one started before
	// workflows.CheckResendChange.
	beforeCheckResend bool
	// beforeResendRuns runs the workflow as one started before
	// workflows.CheckResendRunsChange.
	beforeResendRuns bool
	// beforeResendWait runs the workflow as one started before
	// workflows.CheckResendWaitChange.
	beforeResendWait bool
	// beforeSendWait runs the workflow as one started before
	// workflows.CheckSendWaitChange.
	beforeSendWait bool

	mu     sync.Mutex
	halves []workflows.SendHalfInput
	ends   []workflows.EndInput
	locals []string // "<activity> <txn id>"
	checks []int
	// checkIDs are the ids the checks were sent for (the workflow ids).
	checkIDs []string
	paid     []workflows.PayInput
	// states are the state activities run, by name.
	states []string
}

func newHarness(t *testing.T) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(nopLogger{})
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment(), maxChecks: 3, deliverChecks: true}
	h.env.SetStartWorkflowOptions(temporalclient.StartWorkflowOptions{ID: orderID})
	h.sendHalf = func(in workflows.SendHalfInput) (client.HalfReceipt, error) { return receipt(in.TxnID), nil }
	h.endTxn = func(workflows.EndInput) error { return nil }
	h.local = func(string, string) error { return nil }
	h.state = func() (string, error) { return workflows.StatusPendingPayment, nil }
	return h
}

// receipt is the mocked SendHalf's receipt of txnID.
func receipt(txnID string) client.HalfReceipt {
	return client.HalfReceipt{ProducerGroup: "order-payment", Topic: workflows.TopicOrderEvents, BrokerName: "b",
		MsgID: txnID, TransactionID: txnID, CommitLogOffset: 42}
}

// install registers the activities and the mocks.
func (h *harness) install() {
	env := h.env
	workflows.Register(env)
	(&activities.Activities{}).Register(env)
	for id, before := range map[string]bool{ // the changes the workflow runs without
		workflows.SettlesChange:         h.legacy,
		workflows.PaymentIDChange:       h.beforePaymentID,
		workflows.CheckRunChange:        h.beforeCheckRun,
		workflows.CheckResendChange:     h.beforeCheckResend,
		workflows.CheckResendRunsChange: h.beforeResendRuns,
		workflows.CheckResendWaitChange: h.beforeResendWait,
		workflows.CheckSendWaitChange:   h.beforeSendWait,
	} {
		if before {
			env.OnGetVersion(id, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		}
	}
	any2 := []any{mock.Anything, mock.Anything}
	env.OnActivity(workflows.ActivitySendHalf, any2...).Return(
		func(_ context.Context, in workflows.SendHalfInput) (client.HalfReceipt, error) {
			h.record(func() { h.halves = append(h.halves, in) })
			return h.sendHalf(in)
		})
	env.OnActivity(workflows.ActivityEndTransaction, any2...).Return(func(_ context.Context, in workflows.EndInput) error {
		h.record(func() { h.ends = append(h.ends, in) })
		return h.endTxn(in)
	})
	env.OnActivity(workflows.ActivityCreateOrderLocal, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, txnID string, in workflows.OrderInput) error {
			return h.runLocal(workflows.ActivityCreateOrderLocal, txnID)
		})
	env.OnActivity(workflows.ActivityMarkPaidLocal, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, txnID, _ string, p workflows.PayInput) error {
			h.record(func() { h.paid = append(h.paid, p) })
			return h.runLocal(workflows.ActivityMarkPaidLocal, txnID)
		})
	env.OnActivity(workflows.ActivityCancelLocal, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, txnID, _, _ string) error {
			return h.runLocal(workflows.ActivityCancelLocal, txnID)
		})
	env.OnActivity(workflows.ActivityPaymentState, any2...).Return(func(context.Context, string) (string, error) {
		h.record(func() { h.states = append(h.states, workflows.ActivityPaymentState) })
		return h.state()
	})
	env.OnActivity(workflows.ActivityOrderState, any2...).Return(func(context.Context, string) (workflows.OrderState, error) {
		h.record(func() { h.states = append(h.states, workflows.ActivityOrderState) })
		status, err := h.state()
		if err != nil || status != workflows.StatusPaid {
			return workflows.OrderState{Status: status}, err
		}
		return workflows.OrderState{Status: status, PaymentID: h.recorded}, nil
	})
	env.OnActivity(workflows.ActivityPaymentPolicy, mock.Anything).Return(workflows.PaymentPolicy{MaxChecks: h.maxChecks, CheckDelay: checkDelay}, nil)
	var sendAttempts int
	env.OnActivity(workflows.ActivitySendPaymentCheck, mock.Anything, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		var d time.Duration
		h.record(func() {
			if h.sendTakes != nil {
				d = h.sendTakes(sendAttempts)
			}
			sendAttempts++
		})
		return d
	}).Return(
		func(ctx context.Context, id string, n int) (string, error) {
			var send int
			h.record(func() {
				h.checks, h.checkIDs = append(h.checks, n), append(h.checkIDs, id)
				for _, c := range h.checks {
					if c == n {
						send++
					}
				}
			})
			if h.sendErr != nil {
				if err := h.sendErr(n, send); err != nil {
					return "", err
				}
			}
			run := activity.GetInfo(ctx).WorkflowExecution.RunID // as the real activity stamps it
			if h.stamp != nil {
				if r := h.stamp(n, send); r != "" {
					run = r
				}
			}
			if h.deliverChecks && (h.lose == nil || !h.lose(n, send)) {
				env.RegisterDelayedCallback(func() {
					env.SignalWorkflow(workflows.SignalPaymentCheck, workflows.PaymentCheck{OrderID: id, Check: n, Run: run})
				}, checkDelay)
			}
			return run, nil
		})
}

func (h *harness) runLocal(activity, txnID string) error {
	h.record(func() { h.locals = append(h.locals, activity+" "+txnID) })
	return h.local(activity, txnID)
}

func (h *harness) record(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

// run executes the workflow with in and returns its result and error.
func (h *harness) run(in workflows.OrderInput) (workflows.OrderResult, error) {
	h.t.Helper()
	h.install()
	h.env.ExecuteWorkflow(workflows.OrderPaymentWorkflowName, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	var res workflows.OrderResult
	err := h.env.GetWorkflowError()
	if err == nil {
		if gerr := h.env.GetWorkflowResult(&res); gerr != nil {
			h.t.Fatal(gerr)
		}
	}
	return res, err
}

// pay signals a payment after d.
func (h *harness) pay(p workflows.PayInput, d time.Duration) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(workflows.SignalPay, p) }, d)
}

// commits returns the transaction ids ended with commit, then those
// ended with rollback.
func (h *harness) outcomes() (commits, rollbacks []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.ends {
		if e.Commit {
			commits = append(commits, e.Receipt.TransactionID)
		} else {
			rollbacks = append(rollbacks, e.Receipt.TransactionID)
		}
	}
	return commits, rollbacks
}

// Permanent local-transaction errors the tests inject.
var (
	errFenced        = permanent("orders: local transaction fenced", workflows.ErrTypeFenced)
	errPaymentExists = permanent("orders: payment id already recorded for another order", workflows.ErrTypePaymentExists)
)

// failing is a harness.local that fails every run of activity with err
// and lets the other local transactions succeed.
func failing(activity string, err error) func(activity, txnID string) error {
	return func(a, _ string) error {
		if a == activity {
			return err
		}
		return nil
	}
}

// cancelDuringRetryOf is h.local failing the first call of activity with
// a retryable error and cancelling the workflow during the retry's
// back-off.
func (h *harness) cancelDuringRetryOf(activity string) func(activity, txnID string) error {
	first := true
	return func(a, _ string) error {
		if a == activity && first {
			first = false
			h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 0)
			return errors.New("database is locked")
		}
		return nil
	}
}

// permanent returns a non-retryable activity error of errType.
func permanent(msg, errType string) error {
	return temporal.NewNonRetryableApplicationError(msg, errType, errors.New(msg))
}

// nopLogger silences the workflow logs.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// status answers the "status" query (also once the workflow has closed).
func (h *harness) status() workflows.OrderResult {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(workflows.QueryStatus)
	if err != nil {
		h.t.Fatal(err)
	}
	var res workflows.OrderResult
	if err := v.Get(&res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

// wantCancelled fails t unless err is the workflow's cancellation.
func wantCancelled(t *testing.T, err error) {
	t.Helper()
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("error %v, want the workflow's cancellation", err)
	}
}
