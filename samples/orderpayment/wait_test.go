package orderpayment

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// fakeTemporal starts runs whose Get waits for its context to end.
type fakeTemporal struct {
	temporalclient.Client
	waiting chan struct{} // a Get began
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o temporalclient.StartWorkflowOptions, _ any, _ ...any) (temporalclient.WorkflowRun, error) {
	return &blockedRun{id: o.ID, waiting: f.waiting}, nil
}

type blockedRun struct {
	temporalclient.WorkflowRun
	id      string
	waiting chan struct{}
}

func (r *blockedRun) GetID() string    { return r.id }
func (r *blockedRun) GetRunID() string { return "run-" + r.id }
func (r *blockedRun) Get(ctx context.Context, _ any) error {
	r.waiting <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// A starter interrupted while it waits for the runs reports no order as
// failed: it stopped waiting, the workflows did not fail.
func TestRunInterruptedWhileWaitingReportsNoFailure(t *testing.T) {
	db := txnbridgetest.OpenDB(t)
	f := &fakeTemporal{waiting: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.waiting
		cancel() // Ctrl-C
	}()
	sum, err := Run(ctx, f, db, Options{Orders: 2, Wait: true, TaskQueue: "q", Prefix: "int"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if sum.Failed != 0 || sum.Started != 2 {
		t.Fatalf("summary %+v, want 2 started and none failed", sum)
	}
	for _, o := range sum.Orders {
		if o.Error != "" {
			t.Fatalf("order %s reported %q: the wait was interrupted, the workflow did not fail", o.OrderID, o.Error)
		}
	}
}

// refusingSignals is fakeTemporal whose signals fail.
type refusingSignals struct{ fakeTemporal }

func (*refusingSignals) SignalWorkflow(context.Context, string, string, string, any) error {
	return errors.New("frontend unavailable")
}

// An order started whose pay signal failed is in the summary: it runs
// (and will time out), and the summary is what tells the user its id.
func TestRunListsOrderWhosePayFailed(t *testing.T) {
	db := txnbridgetest.OpenDB(t)
	f := &refusingSignals{}
	sum, err := Run(context.Background(), f, db, Options{Orders: 1, PayRatio: 1, TaskQueue: "q", Prefix: "pf"})
	if err == nil {
		t.Fatal("Run succeeded, want the pay signal's error")
	}
	if sum.Started != 1 || len(sum.Orders) != 1 || sum.Orders[0].OrderID != "pf-1" || sum.Orders[0].PaySent {
		t.Fatalf("summary %+v, want order pf-1 started, listed, pay not sent", sum)
	}
}

// Run tells, every ProgressEvery, which order it waits for and how many
// are still open: without a worker it would otherwise wait in silence.
func TestRunReportsWhatItWaitsFor(t *testing.T) {
	db := txnbridgetest.OpenDB(t)
	f := &fakeTemporal{waiting: make(chan struct{}, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type progress struct {
		id          string
		open, total int
	}
	got := make(chan progress, 1)
	o := Options{Orders: 2, Wait: true, TaskQueue: "q", Prefix: "pw", ProgressEvery: time.Millisecond,
		Progress: func(id string, open, total int) {
			select {
			case got <- progress{id, open, total}:
			default:
			}
		}}
	go func() {
		if p := <-got; p != (progress{"pw-1", 2, 2}) {
			t.Errorf("progress %+v, want order pw-1, 2 of 2 open", p)
		}
		cancel()
	}()
	if _, err := Run(ctx, f, db, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
}

// slowStarts is fakeTemporal whose starts take delay each (a loaded
// frontend).
type slowStarts struct {
	fakeTemporal
	delay    time.Duration
	lastDone time.Time // when the last start returned
}

func (f *slowStarts) ExecuteWorkflow(ctx context.Context, o temporalclient.StartWorkflowOptions, w any, args ...any) (temporalclient.WorkflowRun, error) {
	<-time.After(f.delay) // the start's latency, not a wait for an event
	defer func() { f.lastDone = time.Now() }()
	return f.fakeTemporal.ExecuteWorkflow(ctx, o, w, args...)
}

// WaitTimeout bounds the waiting only: slow starts do not use it up, and
// past it Run says it gave up, and on how many orders.
func TestWaitTimeoutCountsFromTheLastStart(t *testing.T) {
	db := txnbridgetest.OpenDB(t)
	const timeout = 300 * time.Millisecond
	f := &slowStarts{fakeTemporal: fakeTemporal{waiting: make(chan struct{}, 2)}, delay: 200 * time.Millisecond}
	_, err := Run(context.Background(), f, db, Options{Orders: 2, Wait: true, WaitTimeout: timeout, TaskQueue: "q", Prefix: "wt"})
	waited := time.Since(f.lastDone)
	if !errors.Is(err, ErrGaveUpWaiting) || err.Error() != "orderpayment: gave up waiting after 300ms, with 2 of 2 orders left to wait for" {
		t.Fatalf("Run: %v, want ErrGaveUpWaiting after 300ms with 2 of 2 left", err)
	}
	if waited < timeout {
		t.Fatalf("waited %v after the last start, want at least WaitTimeout %v", waited, timeout)
	}
}

// earlyDeadline is fakeTemporal whose runs' Get answers the deadline
// (serviceerror.DeadlineExceeded, as the SDK does when gRPC ends the call
// at it) while its context, which has a deadline, has not ended yet: on a
// loaded machine the SDK's Get returned so up to 1 ms before the
// context's own timer ended it, and the starter counted every order as
// failed.
type earlyDeadline struct{ fakeTemporal }

func (f *earlyDeadline) ExecuteWorkflow(_ context.Context, o temporalclient.StartWorkflowOptions, _ any, _ ...any) (temporalclient.WorkflowRun, error) {
	return &earlyDeadlineRun{id: o.ID}, nil
}

type earlyDeadlineRun struct {
	temporalclient.WorkflowRun
	id string
}

func (r *earlyDeadlineRun) GetID() string    { return r.id }
func (r *earlyDeadlineRun) GetRunID() string { return "run-" + r.id }
func (r *earlyDeadlineRun) Get(ctx context.Context, _ any) error {
	if _, ok := ctx.Deadline(); !ok {
		<-ctx.Done()
		return ctx.Err()
	}
	return serviceerror.NewDeadlineExceeded("context deadline exceeded")
}

// A Get cut by the wait's deadline is the wait given up, not the order
// failed, even when it returns before the wait's context has ended.
func TestWaitTimeoutWhenGetAnswersTheDeadlineFirst(t *testing.T) {
	db := txnbridgetest.OpenDB(t)
	sum, err := Run(context.Background(), &earlyDeadline{}, db, Options{Orders: 2, Wait: true, WaitTimeout: 200 * time.Millisecond,
		TaskQueue: "q", Prefix: "ed"})
	if !errors.Is(err, ErrGaveUpWaiting) || err.Error() != "orderpayment: gave up waiting after 200ms, with 2 of 2 orders left to wait for" {
		t.Fatalf("Run: %v, want ErrGaveUpWaiting after 200ms with 2 of 2 left", err)
	}
	if sum.Failed != 0 || sum.Started != 2 {
		t.Fatalf("summary %+v, want 2 started and none failed", sum)
	}
}
