package txnbridge

import (
	"errors"
	"fmt"
	"log/slog"
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
	// every worker) is left alone. Default DefaultTaskQueue.
	TaskQueue string
	// PaymentCheckLevel is the delay level of the payment checks
	// (payment.checkLevel). Default DefaultPaymentCheckLevel.
	PaymentCheckLevel int
	// MaxPaymentChecks is how many checks find an order unpaid before it
	// is cancelled (payment.maxChecks). Default DefaultMaxPaymentChecks.
	MaxPaymentChecks int
	// Temporal is the client the check consumer signals workflows with,
	// set by the worker after dialling. Nil runs no check consumer (tests):
	// unpaid orders then wait for their checks until one runs.
	Temporal temporalclient.Client
	// CheckConsumer tunes the check consumer. Group defaults to
	// workflows.CheckConsumerGroup; FromWhere is always ConsumeFromFirst
	// (a check stored before the group's first start is not skipped);
	// the rest is passed on as set.
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
	// workers), or each span would be recorded twice.
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
	case o.PaymentCheckLevel < 0:
		return fmt.Errorf("%w: PaymentCheckLevel %d is negative", ErrInvalidOptions, o.PaymentCheckLevel)
	case o.MaxPaymentChecks < 0:
		return fmt.Errorf("%w: MaxPaymentChecks %d is negative", ErrInvalidOptions, o.MaxPaymentChecks)
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
