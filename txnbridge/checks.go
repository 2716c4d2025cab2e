package txnbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/api/serviceerror"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/telemetry"
	"github.com/halfbackmq/halfback/workflows"
)

// Signaler is what the check consumer needs of a Temporal client.
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

var _ Signaler = temporalclient.Client(nil)

// startCheckConsumer starts the consumer of the delayed payment checks
// (o with its defaults: o.CheckConsumer is used as it is), which signals
// through s.
func startCheckConsumer(ctx context.Context, o Options, s Signaler, log *slog.Logger) (*client.PushConsumer, error) {
	pc, err := o.Client.NewPushConsumer(o.CheckConsumer)
	if err != nil {
		return nil, fmt.Errorf("txnbridge: check consumer: %w", err)
	}
	if err := pc.Subscribe(workflows.TopicPaymentCheck, "*", checkHandler(s, log, pc.Closing())); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("txnbridge: check consumer: %w", err)
	}
	if err := pc.Start(ctx); err != nil {
		return nil, fmt.Errorf("txnbridge: start check consumer: %w", err)
	}
	return pc, nil
}

// CheckHandler returns the handler of the delayed-check consumer: each
// message's first key is a workflow id (the order id), which it signals
// with workflows.SignalPaymentCheck and the message's PaymentCheck. A
// message is acknowledged only once its signal succeeded; a check of a
// workflow that no longer runs, one that cannot be decoded, or one whose
// key no workflow id can be (anything but printable ASCII, which
// Temporal's client cannot send), is acknowledged and dropped (logged).
// Any other failure asks for the message again later. The signal gets
// the handler's context, which carries the consumer's "process" span: a
// Signaler with Temporal's tracing interceptor records its SignalWorkflow
// span under it. In a call with several messages (a ConsumeBatchSize
// above one) that span starts a trace of its own, so each signal gets the
// trace context of its message instead: its order's.
func CheckHandler(s Signaler, log *slog.Logger) client.MessageHandler {
	return checkHandler(s, log, nil)
}

// checkHandler is CheckHandler whose signals also end when closing is
// closed (the consumer's Closing): a signal retried while Temporal is down
// would otherwise hold the consumer's Close for its ConsumeTimeout
// (15 min); the check unacknowledged is delivered again.
func checkHandler(s Signaler, log *slog.Logger, closing <-chan struct{}) client.MessageHandler {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		if closing != nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel() // also ends the goroutine below
			go func() {
				select {
				case <-closing:
					cancel()
				case <-ctx.Done():
				}
			}()
		}
		for _, m := range msgs {
			mctx := ctx
			if len(msgs) > 1 {
				// The process span of a batch starts a trace of its own
				// (linked to each message's): each signal continues its
				// own order's trace, from the check's traceparent.
				mctx = telemetry.Extract(ctx, m.Properties)
			}
			if err := signalCheck(mctx, s, log, m); err != nil {
				return client.ConsumeRetryLater, err
			}
		}
		return client.ConsumeSuccess, nil
	}
}

// signalCheck signals m's workflow.
func signalCheck(ctx context.Context, s Signaler, log *slog.Logger, m *client.MessageExt) error {
	var c workflows.PaymentCheck
	if err := json.Unmarshal(m.Body, &c); err != nil || c.Check < 1 {
		log.Error("txnbridge: dropping a malformed payment check", "msgID", m.MsgID, "body", string(m.Body), "err", err)
		return nil
	}
	id := c.OrderID
	if len(m.Keys) > 0 {
		id = m.Keys[0]
	}
	if id == "" {
		log.Error("txnbridge: dropping a payment check without an order id", "msgID", m.MsgID)
		return nil
	}
	if !printableASCII(id) {
		// Temporal's client sends the workflow id in a gRPC header, which
		// takes printable ASCII only: no workflow started through it has
		// such an id, and signalling one fails every time.
		log.Error("txnbridge: dropping a payment check whose key is no workflow id", "msgID", m.MsgID, "key", id)
		return nil
	}
	err := s.SignalWorkflow(ctx, id, "", workflows.SignalPaymentCheck, c)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		log.Debug("txnbridge: payment check of a finished workflow dropped", "workflowID", id, "check", c.Check)
		return nil
	case err != nil:
		log.Warn("txnbridge: signalling a payment check failed; retrying later", "workflowID", id, "err", err)
		return fmt.Errorf("txnbridge: signal %s check %d: %w", id, c.Check, err)
	}
	return nil
}

// printableASCII reports whether s is made of printable ASCII (0x20-0x7e),
// as a gRPC header value must be.
func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
