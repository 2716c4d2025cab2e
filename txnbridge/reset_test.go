package txnbridge_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// gate holds an activity of a workflow, once, where it starts, until the
// test releases it: the test acts (fences a transaction id, signals)
// while the workflow is known to wait on that activity, without a start
// delay the test must act within.
type gate struct {
	mu    sync.Mutex
	holds map[string]*hold // by workflow id and activity type
}

// hold is one held activity: reached is closed when it has started,
// release lets it run.
type hold struct {
	reached, release chan struct{}
	used             bool
	once             sync.Once
}

// let lets the held activity run (again: a no-op).
func (h *hold) let() { h.once.Do(func() { close(h.release) }) }

func newGate() *gate { return &gate{holds: map[string]*hold{}} }

// hold makes the next run of activity of workflow id wait for let (at
// the latest when t ends); call it before the workflow may run the
// activity.
func (g *gate) hold(t *testing.T, id, activity string) *hold {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := &hold{reached: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(h.let)
	g.holds[id+"\x00"+activity] = h
	return h
}

// take returns the unused hold of the activity ctx runs, marking it used.
func (g *gate) take(ctx context.Context) *hold {
	info := activity.GetInfo(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.holds[info.WorkflowExecution.ID+"\x00"+info.ActivityType.Name]
	if h == nil || h.used {
		return nil
	}
	h.used = true
	return h
}

// wait waits until the held activity started, failing t after a minute.
func (h *hold) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.reached:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not start", what)
	}
}

// interceptor is the worker interceptor that holds g's activities.
func (g *gate) interceptor() interceptor.WorkerInterceptor {
	return wrapActivities(func(ctx context.Context, run func() (any, error)) (any, error) {
		if h := g.take(ctx); h != nil {
			close(h.reached)
			select {
			case <-h.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return run()
	})
}

// wrapActivities returns a worker interceptor running every activity
// through wrap, which calls run to execute the activity itself.
func wrapActivities(wrap func(ctx context.Context, run func() (any, error)) (any, error)) interceptor.WorkerInterceptor {
	return &activityWrapper{wrap: wrap}
}

type activityWrapper struct {
	interceptor.WorkerInterceptorBase
	wrap func(ctx context.Context, run func() (any, error)) (any, error)
}

func (w *activityWrapper) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityWrapperInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, w: w}
}

type activityWrapperInbound struct {
	interceptor.ActivityInboundInterceptorBase
	w *activityWrapper
}

func (i *activityWrapperInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	return i.w.wrap(ctx, func() (any, error) { return i.Next.ExecuteActivity(ctx, in) })
}

// history returns the events of run.
func (s *stack) history(t *testing.T, run temporalclient.WorkflowRun) []*historypb.HistoryEvent {
	t.Helper()
	it := s.tc.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	return events
}

// scheduledBy returns the id of the WorkflowTaskCompleted event whose
// task scheduled the n-th (from 1) run of activity name in events.
func scheduledBy(t *testing.T, events []*historypb.HistoryEvent, name string, n int) int64 {
	t.Helper()
	seen := 0
	for _, e := range events {
		a := e.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.GetActivityType().GetName() != name {
			continue
		}
		if seen++; seen == n {
			return a.GetWorkflowTaskCompletedEventId()
		}
	}
	t.Fatalf("no activity %s number %d in the history", name, n)
	return 0
}

// reset resets run to the workflow task that completed in event eventID
// (the task runs again in the new run), reapplying the signals recorded
// after it if signals, and returns the new run.
func (s *stack) reset(t *testing.T, run temporalclient.WorkflowRun, eventID int64, signals bool) temporalclient.WorkflowRun {
	t.Helper()
	var exclude []enumspb.ResetReapplyExcludeType
	if !signals {
		exclude = append(exclude, enumspb.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL)
	}
	resp, err := s.tc.ResetWorkflowExecution(context.Background(), &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
		Reason:                    t.Name(),
		WorkflowTaskFinishEventId: eventID,
		RequestId:                 t.Name(),
		ResetReapplyExcludeTypes:  exclude,
	})
	if err != nil {
		t.Fatalf("reset %s to event %d: %v", run.GetID(), eventID, err)
	}
	return s.tc.GetWorkflow(context.Background(), run.GetID(), resp.GetRunId())
}

// firstWorkflowTask returns the id of the first WorkflowTaskCompleted
// event: a reset to it runs the whole workflow again.
func firstWorkflowTask(t *testing.T, events []*historypb.HistoryEvent) int64 {
	t.Helper()
	for _, e := range events {
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			return e.GetEventId()
		}
	}
	t.Fatal("no completed workflow task in the history")
	return 0
}

// flush sends a plain message on TopicOrderEvents and waits until the
// store holds it: the store dispatches in commit-log order, so every
// message committed before (a second OrderPaid) is stored too, and
// events sees it.
func (s *stack) flush(t *testing.T) {
	t.Helper()
	p, err := s.client.NewProducer(client.ProducerOptions{Group: "test-flush"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	id := "flush-" + strconv.FormatInt(flushes.Add(1), 10)
	if _, err := p.Send(context.Background(), &client.Message{Topic: workflows.TopicOrderEvents, Keys: []string{id},
		Body: []byte(id), ID: id}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, id+" stored", func() bool {
		return slices.ContainsFunc(s.broker.Stored(t, workflows.TopicOrderEvents),
			func(m txnbridgetest.Stored) bool { return m.MsgID == id })
	})
}

var flushes atomic.Int64

// failedActivities returns the types of the activities that failed in
// events, in order.
func failedActivities(events []*historypb.HistoryEvent) []string {
	names := map[int64]string{}
	var failed []string
	for _, e := range events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[e.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskFailedEventAttributes(); a != nil {
			failed = append(failed, names[a.GetScheduledEventId()])
		}
	}
	return failed
}
