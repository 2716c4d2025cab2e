package txnbridge

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	temporalclient "go.temporal.io/sdk/client"

	"github.com/halfbackmq/halfback/activities"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

// PluginName is the plugin's name, as Temporal lists it.
const PluginName = "halfback.txnbridge"

// Defaults of Options.
const (
	// DefaultProducerGroup is the producer group of the order events.
	DefaultProducerGroup = "order-payment"
	// DefaultTaskQueue is workflows.TaskQueue.
	DefaultTaskQueue = workflows.TaskQueue
	// DefaultPaymentCheckLevel and DefaultMaxPaymentChecks are the payment
	// policy's (config.yaml's payment section).
	DefaultPaymentCheckLevel = activities.DefaultCheckLevel
	DefaultMaxPaymentChecks  = activities.DefaultMaxChecks
	// DefaultStartTimeout bounds the start of the check consumer.
	DefaultStartTimeout = 30 * time.Second
	// DefaultCheckMaxReconsumeTimes is the check consumer's
	// MaxReconsumeTimes: as many retries as the client allows, so that a
	// check whose signal fails while Temporal is unreachable is retried
	// until it is back instead of going to the dead-letter queue, where
	// the order waiting for it would wait for ever. (The mirror's consumer
	// uses the same value.)
	DefaultCheckMaxReconsumeTimes = math.MaxInt32
	// MaxPaymentChecksLimit bounds MaxPaymentChecks. Each check adds about
	// 18 events to the order's workflow history (16 before
	// workflows.CheckResendChange, whose lost-check timer adds 2: an order
	// cancelled after 4 checks had 106, after 1 had 58; a check sent again
	// adds about 11 more), whose hard limit is 51,200 events
	// (Temporal warns from 10,240): 500 checks that come on time, about
	// 9,000 events, stay below the warning; 500 lost ones, each sent
	// twice more, about 20,000-25,500, below the limit. config.PaymentMaxChecksLimit is the same bound on
	// payment.maxChecks.
	MaxPaymentChecksLimit = 500
)

// ErrInvalidOptions means Options failed validation; the error names the
// field.
var ErrInvalidOptions = errors.New("txnbridge: invalid options")

// Options configure the plugin. Client and DB are required; the zero
// value of every other field means "use the default".
type Options struct {
	// Client is the halfback client (the broker's name servers). The
	// plugin creates its producer and check consumer on it; closing it is
	// the caller's job, after the worker stopped.
	Client *client.Client
	// ProducerGroup is the producer group of the transactional messages;
	// the broker checks its unresolved half messages with the resolver.
	// Default DefaultProducerGroup.
	ProducerGroup string
	// DB is the order database: the activities' local transactions and
	// the resolver's fence.
	DB *orders.DB
	// TaskQueue is the task queue whose workers run the plugin; a worker
	// of another task queue (a plugin set on the Temporal client reaches
	// every worker) is left alone. No white space (ErrInvalidOptions), as
	// config's temporal.taskQueue. Default DefaultTaskQueue.
	TaskQueue string
	// PaymentCheckLevel is the delay level of the payment checks
	// (payment.checkLevel). Default DefaultPaymentCheckLevel.
	PaymentCheckLevel int
	// PaymentCheckDelay is PaymentCheckLevel's delay on the broker (the
	// worker passes config's PaymentCheckDelay, from broker.delayLevels):
	// an order sends a check not signalled within a multiple of it again
	// (workflows.CheckResendChange). Default the level's delay under
	// RocketMQ's default levels (none past them: checks not sent again).
	PaymentCheckDelay time.Duration
	// MaxPaymentChecks is how many checks find an order unpaid before it
	// is cancelled (payment.maxChecks): at most MaxPaymentChecksLimit
	// (500), since every check grows the order's workflow history. Default
	// DefaultMaxPaymentChecks.
	MaxPaymentChecks int
	// Temporal is the client the check consumer signals workflows with,
	// set by the worker after dialling. Nil runs no check consumer (tests):
	// unpaid orders then wait for their checks until one runs. The plugin
	// cannot add interceptors to it: for the check signals to join the
	// order's trace (a SignalWorkflow span under the check's "process"
	// span), dial it with [NewTracingInterceptor] in its Interceptors, and
	// set DisableTracing, since that interceptor reaches its workers too.
	Temporal temporalclient.Client
	// CheckConsumer tunes the check consumer. Group defaults to
	// workflows.CheckConsumerGroup; FromWhere is always ConsumeFromFirst
	// (a check stored before the group's first start is not skipped);
	// MaxReconsumeTimes defaults to DefaultCheckMaxReconsumeTimes, not
	// the client's 16: a check is never given up to the dead-letter queue
	// while Temporal is down (its retries back off along the broker's
	// delay levels, 3 + retries, up to the last one: 2h with RocketMQ's).
	// A MaxReconsumeTimes set here is kept, and a check whose signal fails
	// that often goes to %DLQ%<Group>, leaving its order waiting. The
	// rest is passed on as set.
	CheckConsumer client.ConsumerOptions
	// StartTimeout bounds the check consumer's first round at worker
	// start. Default DefaultStartTimeout.
	StartTimeout time.Duration
	// Logger receives the plugin's events. Default slog.Default().
	Logger *slog.Logger
	// DisableTracing leaves the workers' interceptors alone. By default
	// the plugin adds Temporal's OpenTelemetry tracing interceptor
	// ([NewTracingInterceptor]) to every worker it configures, so that
	// workflow and activity spans and the client's message spans form one
	// trace per order. Set it when the worker's Temporal client already
	// has a tracing interceptor (a client's interceptors reach its
	// workers), or each span would be recorded twice. That is the setup
	// that traces the check consumer's signals as well (see Temporal),
	// and the one the worker (`go run ./worker`) uses.
	DisableTracing bool
}

func (o Options) withDefaults() Options {
	if o.ProducerGroup == "" {
		o.ProducerGroup = DefaultProducerGroup
	}
	if o.TaskQueue == "" {
		o.TaskQueue = DefaultTaskQueue
	}
	if o.PaymentCheckLevel == 0 {
		o.PaymentCheckLevel = DefaultPaymentCheckLevel
	}
	if o.MaxPaymentChecks == 0 {
		o.MaxPaymentChecks = DefaultMaxPaymentChecks
	}
	if o.CheckConsumer.Group == "" {
		o.CheckConsumer.Group = workflows.CheckConsumerGroup
	}
	o.CheckConsumer.FromWhere = client.ConsumeFromFirst
	if o.CheckConsumer.MaxReconsumeTimes == 0 {
		o.CheckConsumer.MaxReconsumeTimes = DefaultCheckMaxReconsumeTimes
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first option missing or out of range, naming it.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Client == nil:
		return fmt.Errorf("%w: Client is nil", ErrInvalidOptions)
	case o.DB == nil:
		return fmt.Errorf("%w: DB is nil", ErrInvalidOptions)
	case strings.ContainsAny(o.TaskQueue, " \t\r\n"):
		// As config's temporal.taskQueue: such a name is a typo, and the
		// plugin would leave every worker of the intended queue alone.
		return fmt.Errorf("%w: TaskQueue %q contains white space", ErrInvalidOptions, o.TaskQueue)
	case o.PaymentCheckLevel < 0:
		return fmt.Errorf("%w: PaymentCheckLevel %d is negative", ErrInvalidOptions, o.PaymentCheckLevel)
	case o.PaymentCheckDelay < 0:
		return fmt.Errorf("%w: PaymentCheckDelay %v is negative", ErrInvalidOptions, o.PaymentCheckDelay)
	case o.MaxPaymentChecks < 0:
		return fmt.Errorf("%w: MaxPaymentChecks %d is negative", ErrInvalidOptions, o.MaxPaymentChecks)
	case o.MaxPaymentChecks > MaxPaymentChecksLimit:
		return fmt.Errorf("%w: MaxPaymentChecks %d is above %d: each check adds about 18 events to the order's workflow history (limit 51,200, warning at 10,240)",
			ErrInvalidOptions, o.MaxPaymentChecks, MaxPaymentChecksLimit)
	case o.StartTimeout < 0:
		return fmt.Errorf("%w: StartTimeout %v is negative", ErrInvalidOptions, o.StartTimeout)
	}
	if err := (client.ProducerOptions{Group: o.ProducerGroup}).Validate(); err != nil {
		return fmt.Errorf("%w: ProducerGroup: %w", ErrInvalidOptions, err)
	}
	if err := o.CheckConsumer.Validate(); err != nil {
		return fmt.Errorf("%w: CheckConsumer: %w", ErrInvalidOptions, err)
	}
	return nil
}
