package workflows

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/halfbackmq/halfback/client"
)

// Errors of [SendTransactional]; test them with errors.Is.
var (
	// ErrInvalidStep means a Step lacks a name, topic, body or local
	// activity, or its transaction id is not a legal message id. Nothing
	// was sent.
	ErrInvalidStep = errors.New("workflows: invalid transactional step")
	// ErrRolledBack means the step's local transaction failed permanently
	// (a non-retryable error, fenced included) and its half message was
	// rolled back: consumers never see it. The local activity's error is
	// wrapped as well.
	ErrRolledBack = errors.New("workflows: local transaction failed, message rolled back")
	// ErrOutcomeUnknown means the local activity ended without an outcome
	// (the workflow was cancelled, or a timeout ran out). The half message
	// is left to the broker's check-back, which fences the transaction id
	// and then commits or rolls back as the local database says.
	ErrOutcomeUnknown = errors.New("workflows: local transaction outcome unknown, left to check-back")
)

// Step is one transactional message: a half message, a local transaction
// run by an activity, then commit (the local transaction succeeded) or
// rollback (it failed permanently).
type Step struct {
	// Name names the step within its workflow; the transaction id is
	// TxnID(ctx, Name), "<workflow id>/<run tag>/<Name>". Running a step
	// of the same name twice in one workflow reuses the id: give a retry
	// a new name. The id is the same in every run of a chain too
	// (continue-as-new, retry, reset): a workflow that continues as new
	// and runs the step in each run needs a name per run (an iteration
	// number in it, say).
	Name string
	// Topic, Tags, Keys and Body are the message's.
	Topic string
	Tags  string
	Keys  []string
	Body  []byte
	// ShardingKey, when set, picks the message's queue by its hash, so a
	// topic's messages of one sharding key share a queue and an orderly
	// consumer (the Kafka mirror) sees them in the order they were
	// committed (RocketMQ's ordered messages). The order steps use the
	// order id. Empty: queues in turn.
	ShardingKey string
	// Local is the registered name of the local-transaction activity. It
	// is called with the transaction id followed by LocalArgs, must write
	// the id in the same database transaction as its effect, and must
	// return a non-retryable ApplicationError for a permanent failure (one
	// of type ErrTypeFenced when the check-back fenced the id).
	Local     string
	LocalArgs []any
	// SendTimeout is how long sending the half message is retried before
	// the step gives up with an error. Zero retries until the broker has
	// stored it, as a step that records something already accepted
	// elsewhere (a payment) must: giving up would lose it. Set it on a
	// step that may give up, such as creating an order nobody paid for.
	// (Before SendTimeout existed, every step gave up after ten minutes.)
	SendTimeout time.Duration
}

// SendHalfInput is the ActivitySendHalf argument.
type SendHalfInput struct {
	// TxnID is the message id (UNIQ_KEY): a retried send returns the live
	// half message of this id instead of storing another.
	TxnID string   `json:"txnId"`
	Topic string   `json:"topic"`
	Tags  string   `json:"tags,omitempty"`
	Keys  []string `json:"keys,omitempty"`
	Body  []byte   `json:"body"`
	// ShardingKey picks the queue (Step.ShardingKey).
	ShardingKey string `json:"shardingKey,omitempty"`
}

// EndInput is the ActivityEndTransaction argument.
type EndInput struct {
	Receipt client.HalfReceipt `json:"receipt"`
	// Commit commits the message; false rolls it back.
	Commit bool `json:"commit"`
}

// Activity options of a step. Transport failures are retried without a
// limit on attempts; permanent failures are non-retryable errors. A half
// message not ended in time is resolved by the check-back, so a step that
// stalls never leaves a transaction open for good.
var (
	// sendHalfOptions retries until the half message is stored, or until
	// the step's SendTimeout (ScheduleToCloseTimeout) passes: a step that
	// gives up acknowledged nothing to anyone, and a half message stored by
	// a lost attempt is rolled back by the check-back.
	sendHalfOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         retryPolicy(time.Minute),
	}
	// localOptions retries until the local transaction commits or fails
	// permanently; a check-back fences a transaction that stalls, which
	// ends the retries with ErrTypeFenced.
	localOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         retryPolicy(30 * time.Second),
	}
	// endOptions retries until the broker recorded the outcome.
	endOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         retryPolicy(time.Minute),
	}
)

// retryPolicy backs off from one second up to max, without a limit on
// attempts.
func retryPolicy(max time.Duration) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: max}
}

// RunChainTxnIDs is the workflow.GetVersion change id of transaction ids
// that name the workflow's run chain (version 1, [StepTxnID]). Before it
// (DefaultVersion) a step's id was "<workflow id>/<step>", so a workflow
// started again under the id of a closed one (Temporal's default id reuse
// policy allows it) found each of its steps' ids committed by the earlier
// run and took them as its own: it reported an order created and a
// payment taken that the database never recorded. Histories recorded
// before it replay with the earlier ids.
const RunChainTxnIDs = "txn-id-run-chain"

// TxnID returns the transaction id of step name in the workflow ctx runs:
// [StepTxnID] of the workflow's id and its first run's id (the same for
// every run of a chain: a workflow retried, continued as new or reset
// reuses its steps' ids, as it should). A run without a first-run id (the
// SDK's test environment) and a workflow started before [RunChainTxnIDs]
// use "<workflow id>/<step>".
func TxnID(ctx workflow.Context, name string) string {
	info := workflow.GetInfo(ctx)
	if workflow.GetVersion(ctx, RunChainTxnIDs, workflow.DefaultVersion, 1) == workflow.DefaultVersion || info.FirstRunID == "" {
		return info.WorkflowExecution.ID + "/" + name
	}
	return StepTxnID(info.WorkflowExecution.ID, info.FirstRunID, name)
}

// StepTxnID is the transaction id of step name in the run chain of
// workflow id whose first run is firstRunID:
// "<workflow id>/<run tag>/<step>", the run tag 12 hex digits of a hash
// of the first run's id. Two runs under one workflow id that are not one
// chain get different ids, so the second one's steps run against the
// database (where, for an order id used already, "create" fails).
func StepTxnID(workflowID, firstRunID, name string) string {
	h := fnv.New64a()
	h.Write([]byte(firstRunID))
	return fmt.Sprintf("%s/%012x/%s", workflowID, h.Sum64()&(1<<48-1), name)
}

// SendTransactional runs s: ActivitySendHalf with the deterministic
// transaction id, the local-transaction activity s.Local, then
// ActivityEndTransaction (commit). It returns the half message's receipt
// (also when it fails after the send).
//
// A local transaction that fails permanently rolls the message back and
// returns an error wrapping ErrRolledBack and the activity's error. One
// that ends without an outcome returns ErrOutcomeUnknown and leaves the
// message to the check-back. A send that fails returns its error;
// nothing is visible to consumers then.
func SendTransactional(ctx workflow.Context, s Step) (client.HalfReceipt, error) {
	txnID := TxnID(ctx, s.Name)
	if err := s.validate(txnID); err != nil {
		return client.HalfReceipt{}, err
	}
	log := workflow.GetLogger(ctx)
	var receipt client.HalfReceipt
	in := SendHalfInput{TxnID: txnID, Topic: s.Topic, Tags: s.Tags, Keys: s.Keys, Body: s.Body, ShardingKey: s.ShardingKey}
	opts := sendHalfOptions
	opts.ScheduleToCloseTimeout = s.SendTimeout
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivitySendHalf, in).Get(ctx, &receipt)
	if err != nil {
		return receipt, fmt.Errorf("step %s: send half message %s: %w", s.Name, txnID, err)
	}
	args := append([]any{txnID}, s.LocalArgs...)
	err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, localOptions), s.Local, args...).Get(ctx, nil)
	if err != nil && !IsPermanent(err) {
		log.Warn("local transaction without outcome; left to check-back", "txnID", txnID, "error", err)
		return receipt, fmt.Errorf("step %s: %s: %w: %w", s.Name, txnID, ErrOutcomeUnknown, err)
	}
	if err != nil {
		log.Info("local transaction failed; rolling back", "txnID", txnID, "error", err)
		if rerr := endTransaction(ctx, receipt, false); rerr != nil {
			return receipt, fmt.Errorf("step %s: %s: local transaction failed (%w) and rollback failed: %w", s.Name, txnID, err, rerr)
		}
		return receipt, fmt.Errorf("step %s: %s: %w: %w", s.Name, txnID, ErrRolledBack, err)
	}
	if err := endTransaction(ctx, receipt, true); err != nil {
		return receipt, fmt.Errorf("step %s: commit %s: %w", s.Name, txnID, err)
	}
	return receipt, nil
}

// endTransaction commits or rolls back receipt's message.
func endTransaction(ctx workflow.Context, receipt client.HalfReceipt, commit bool) error {
	in := EndInput{Receipt: receipt, Commit: commit}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, endOptions), ActivityEndTransaction, in).Get(ctx, nil)
}

// IsPermanent reports whether err, an activity's error, is a
// non-retryable ApplicationError: the failure will not go away.
func IsPermanent(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

// IsFenced reports whether err, an activity's error, says the check-back
// fenced the local transaction's id (ErrTypeFenced).
func IsFenced(err error) bool { return HasErrorType(err, ErrTypeFenced) }

// HasErrorType reports whether err wraps an ApplicationError of type t.
func HasErrorType(err error, t string) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == t
}

// validate checks s before anything is sent.
func (s Step) validate(txnID string) error {
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: no name", ErrInvalidStep)
	case s.Topic == "":
		return fmt.Errorf("%w: step %s has no topic", ErrInvalidStep, s.Name)
	case len(s.Body) == 0:
		return fmt.Errorf("%w: step %s has no body", ErrInvalidStep, s.Name)
	case s.Local == "":
		return fmt.Errorf("%w: step %s has no local activity", ErrInvalidStep, s.Name)
	case len(txnID) > client.MaxIDLength || strings.ContainsAny(txnID, " \x01\x02"):
		return fmt.Errorf("%w: transaction id %q is longer than %d characters or has a space or a control separator",
			ErrInvalidStep, txnID, client.MaxIDLength)
	}
	return nil
}
