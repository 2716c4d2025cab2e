package orderpayment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// Outcome is one order's part of a [Summary].
type Outcome struct {
	OrderID string `json:"orderId"`
	// PaySent says the starter signalled "pay" for this order.
	PaySent bool `json:"paySent"`
	// Status is the workflow's final status (PAID, CANCELLED, FAILED), or
	// "" without Options.Wait.
	Status string `json:"status,omitempty"`
	// Checks counts the delayed payment checks the order got.
	Checks int `json:"checks"`
	// Error says why the order failed: the workflow failed, or ended
	// other than intended (PAID if paid, else CANCELLED).
	Error string `json:"error,omitempty"`
	// TraceID is the order's trace: the root span "order <id>" the
	// workflow was started in, "" when no tracer provider records.
	TraceID string `json:"traceId,omitempty"`
}

// Summary is what [Run] did.
type Summary struct {
	// Started counts the workflow runs started, PaySent the "pay"
	// signals sent.
	Started int `json:"started"`
	PaySent int `json:"paySent"`
	// With Options.Wait: Paid and Cancelled count the orders that ended
	// so as intended; Failed counts the others (a failed workflow, or a
	// paid order cancelled, or an unpaid one paid).
	Paid      int       `json:"paid"`
	Cancelled int       `json:"cancelled"`
	Failed    int       `json:"failed"`
	Orders    []Outcome `json:"orders"`
}

// Run seeds stock for o.Orders orders, starts one OrderPaymentWorkflow per
// order (workflow id = order id), pays the fraction o.PayRatio of them
// and, with o.Wait, waits for every run to end. The error is for what
// stopped Run early (a start that failed, ctx); the Summary counts what
// happened until then.
func Run(ctx context.Context, tc temporalclient.Client, db *orders.DB, o Options) (Summary, error) {
	if err := o.Validate(); err != nil {
		return Summary{}, err
	}
	o = o.withDefaults()
	if err := SeedStock(ctx, db, o.SKU, o.Orders); err != nil {
		return Summary{}, fmt.Errorf("seed stock of %s: %w", o.SKU, err)
	}
	var sum Summary
	runs := make([]temporalclient.WorkflowRun, 0, o.Orders)
	for i := range o.Orders {
		in := o.input(i)
		out := Outcome{OrderID: in.OrderID}
		run, err := startOrder(ctx, tc, o, in, ShouldPay(i, o.Orders, o.PayRatio), &out)
		if run != nil {
			runs = append(runs, run)
			sum.Started++
			sum.Orders = append(sum.Orders, out) // also when its pay failed: it runs
		}
		if out.PaySent {
			sum.PaySent++
		}
		if err != nil {
			return sum, err
		}
	}
	if !o.Wait {
		return sum, nil
	}
	wctx := ctx
	if o.WaitTimeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, o.WaitTimeout, ErrGaveUpWaiting)
		defer cancel()
	}
	for i, run := range runs {
		r := o.wait(wctx, run, len(runs)-i, len(runs))
		if cutByDeadline(wctx, r.err) {
			<-wctx.Done()
		}
		if wctx.Err() != nil { // the wait was cut short: the run did not fail
			if err := ctx.Err(); err != nil {
				return sum, err
			}
			return sum, fmt.Errorf("%w after %v, with %d of %d orders left to wait for",
				ErrGaveUpWaiting, o.WaitTimeout, len(runs)-i, len(runs))
		}
		sum.settle(&sum.Orders[i], r)
	}
	return sum, nil
}

// cutByDeadline says whether err, a run's Get error, is ctx's deadline
// rather than the run's end. gRPC ends a call at the deadline by itself,
// and the SDK returns that (serviceerror.DeadlineExceeded) up to a
// moment before ctx's own timer ends ctx: counted as the runs' failure,
// a loaded machine's starter reported every order failed (its Get
// returned 0.3 ms after the deadline, ctx not ended yet) instead of the
// wait given up.
func cutByDeadline(ctx context.Context, err error) bool {
	if _, ok := ctx.Deadline(); !ok {
		return false
	}
	var de *serviceerror.DeadlineExceeded
	return errors.As(err, &de)
}

// TracerName is the instrumentation name of the orders' root spans.
const TracerName = "github.com/halfbackmq/halfback/samples/orderpayment"

// startOrder starts in's workflow and, with pay, pays it, inside a new
// root span "order <id>" whose trace id it notes in out (a Temporal
// client with the tracing interceptor carries the span to the workflow).
// The run is nil if the start failed.
func startOrder(ctx context.Context, tc temporalclient.Client, o Options, in workflows.OrderInput, pay bool,
	out *Outcome) (temporalclient.WorkflowRun, error) {
	ctx, span := otel.Tracer(TracerName).Start(ctx, "order "+in.OrderID, trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("order.id", in.OrderID)))
	defer span.End()
	if sc := span.SpanContext(); sc.IsValid() && span.IsRecording() {
		out.TraceID = sc.TraceID().String()
	}
	// An order id names one order: a start under an id in use, running or
	// closed, fails rather than attaching to (or repeating) that order.
	run, err := tc.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{ID: in.OrderID, TaskQueue: o.TaskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true},
		workflows.OrderPaymentWorkflowName, in)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("start order %s: %w", in.OrderID, err)
	}
	if pay {
		if err := Pay(ctx, tc, in.OrderID, PaymentID(in.OrderID), in.Amount); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return run, err
		}
		out.PaySent = true
	}
	return run, nil
}

// input is order i's workflow input.
func (o Options) input(i int) workflows.OrderInput {
	return workflows.OrderInput{
		OrderID: fmt.Sprintf("%s-%d", o.Prefix, i+1),
		User:    fmt.Sprintf("user-%d", i%o.Users+1),
		SKU:     o.SKU,
		Qty:     1,
		Amount:  o.Amount,
	}
}

// result is a run's end: its result, or why it has none.
type result struct {
	res workflows.OrderResult
	err error
}

// wait waits for run to end, calling o.Progress (open of total runs left
// to wait for) every o.ProgressEvery until it does.
func (o Options) wait(ctx context.Context, run temporalclient.WorkflowRun, open, total int) result {
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = run.Get(ctx, &r.res)
		done <- r
	}()
	if o.Progress == nil {
		return <-done
	}
	t := time.NewTicker(o.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case r := <-done:
			return r
		case <-t.C:
			o.Progress(run.GetID(), open, total)
		}
	}
}

// settle records out's end r and counts it.
func (s *Summary) settle(out *Outcome, r result) {
	out.Status, out.Checks = r.res.Status, r.res.Checks
	want := workflows.StatusCancelled
	if out.PaySent {
		want = workflows.StatusPaid
	}
	switch {
	case r.err != nil:
		out.Error = "workflow failed: " + r.err.Error()
	case out.Status != want:
		out.Error = fmt.Sprintf("ended %s, want %s", out.Status, want)
		if r.res.Reason != "" {
			out.Error += ": " + r.res.Reason
		}
	case want == workflows.StatusPaid:
		s.Paid++
		return
	default:
		s.Cancelled++
		return
	}
	s.Failed++
}
