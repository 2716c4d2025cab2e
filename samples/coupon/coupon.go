package coupon

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// DefaultGroup is the consumer group of the coupon service.
const DefaultGroup = "coupon-service"

// ErrBadEvent means an OrderPaid message's body is not an OrderEvent with
// an order id. Such a message is retried and, after the group's
// maxReconsumeTimes, parked in its dead-letter queue.
var ErrBadEvent = errors.New("coupon: bad OrderPaid event")

// Options configure [Start].
type Options struct {
	// Group is the consumer group. Default DefaultGroup.
	Group string
	// Logger gets one line per coupon granted or duplicate skipped.
	// Default slog.Default().
	Logger *slog.Logger
	// Observe, if set, is called with every OrderPaid message handled and
	// whether it granted a coupon (false: a duplicate), after the commit.
	// Tests use it.
	Observe func(m *client.MessageExt, granted bool)
}

func (o Options) withDefaults() Options {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Start subscribes a push consumer of o.Group to the OrderPaid events and
// starts it. Close the consumer to stop.
func Start(ctx context.Context, c *client.Client, db *orders.DB, o Options) (*client.PushConsumer, error) {
	o = o.withDefaults()
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: o.Group, FromWhere: client.ConsumeFromFirst})
	if err != nil {
		return nil, err
	}
	if err := pc.Subscribe(workflows.TopicOrderEvents, workflows.TagOrderPaid, Handler(db, o)); err != nil {
		pc.Close()
		return nil, err
	}
	if err := pc.Start(ctx); err != nil {
		pc.Close()
		return nil, fmt.Errorf("coupon consumer %s: %w", o.Group, err)
	}
	return pc, nil
}

// Handler returns the consumer's message handler: for each message, one
// local transaction that records the message id (UNIQ_KEY, stable across
// redeliveries) for o.Group and grants the coupon. It succeeds, so the
// message is acknowledged, only once that transaction committed or found
// the message consumed before.
func Handler(db *orders.DB, o Options) client.MessageHandler {
	o = o.withDefaults()
	return func(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		for _, m := range msgs {
			if err := handle(ctx, db, o, m); err != nil {
				o.Logger.Warn("coupon not granted; the message comes again", "msgId", m.MsgID, "err", err)
				return client.ConsumeRetryLater, err
			}
		}
		return client.ConsumeSuccess, nil
	}
}

func handle(ctx context.Context, db *orders.DB, o Options, m *client.MessageExt) error {
	var ev workflows.OrderEvent
	if err := json.Unmarshal(m.Body, &ev); err != nil || ev.OrderID == "" {
		return fmt.Errorf("%w: message %s: %d bytes: %q", ErrBadEvent, m.MsgID, len(m.Body), bodyHead(m.Body))
	}
	first, err := db.Consume(ctx, o.Group, m.MsgID, func(tx *sql.Tx) error {
		return orders.GrantCoupon(ctx, tx, ev.OrderID, ev.User)
	})
	if err != nil {
		return err
	}
	if first {
		o.Logger.Info("coupon granted", "order", ev.OrderID, "user", ev.User, "msgId", m.MsgID)
	} else {
		o.Logger.Info("duplicate OrderPaid skipped", "order", ev.OrderID, "msgId", m.MsgID)
	}
	if o.Observe != nil {
		o.Observe(m, first)
	}
	return nil
}

// maxLoggedBody bounds how much of a bad message's body its error quotes:
// the error is logged at every delivery, and a body may be megabytes.
const maxLoggedBody = 128

// bodyHead returns body, cut to maxLoggedBody bytes.
func bodyHead(body []byte) []byte {
	if len(body) > maxLoggedBody {
		return body[:maxLoggedBody]
	}
	return body
}
