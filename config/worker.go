package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/delay"
)

// Defaults of the sections the Temporal worker and the samples read.
const (
	// DefaultTemporalHostPort is the Temporal frontend of a local dev server.
	DefaultTemporalHostPort = "localhost:7233"
	// DefaultTemporalNamespace is the namespace every Temporal server has.
	DefaultTemporalNamespace = "default"
	// DefaultTaskQueue is the task queue of the order/payment workflows.
	DefaultTaskQueue = "order-payment"
	// DefaultPaymentCheckLevel is delay level 5, 1m with RocketMQ's levels.
	DefaultPaymentCheckLevel = 5
	// DefaultPaymentMaxChecks is how many unpaid checks cancel an order.
	DefaultPaymentMaxChecks = 10
	// PaymentMaxChecksLimit bounds payment.maxChecks. Each check adds
	// about 18 events to the order's workflow history, whose hard limit is
	// 51,200 events (Temporal warns from 10,240): 500 checks that come on
	// time, about 9,000 events, stay below the warning; lost ones, each
	// sent twice more (about 11 events a resend), stay below the limit.
	// txnbridge.MaxPaymentChecksLimit is the same bound.
	PaymentMaxChecksLimit = 500
	// DefaultOrdersDriver is the database/sql driver name of
	// modernc.org/sqlite.
	DefaultOrdersDriver = "sqlite"
	// OrdersFile is the order database's file name inside store.dataDir
	// when orders.dsn is empty.
	OrdersFile = "orders.db"
	// OrdersPragmas are the query parameters of the derived orders DSN:
	// wait up to 5 s for a lock, write-ahead logging, and transactions
	// that take the write lock when they begin (no lock upgrade to fail).
	OrdersPragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
)

// TemporalConfig is the "temporal" section: where the worker, the starter
// and the payer find Temporal.
type TemporalConfig struct {
	// HostPort (temporal.hostPort) is the Temporal frontend, host:port.
	HostPort string `mapstructure:"hostPort"`
	// Namespace (temporal.namespace) is the Temporal namespace.
	Namespace string `mapstructure:"namespace"`
	// TaskQueue (temporal.taskQueue) is the task queue the worker polls and
	// the starter starts OrderPaymentWorkflow runs on.
	TaskQueue string `mapstructure:"taskQueue"`
}

// PaymentConfig is the "payment" section: how unpaid orders time out.
type PaymentConfig struct {
	// CheckLevel (payment.checkLevel) is the broker delay level (1-based,
	// as broker.delayLevels lists them) of the delayed PaymentCheck
	// message each unpaid order schedules.
	CheckLevel int `mapstructure:"checkLevel"`
	// MaxChecks (payment.maxChecks) is how many PaymentChecks find an
	// order unpaid before it is cancelled: 1 to [PaymentMaxChecksLimit].
	MaxChecks int `mapstructure:"maxChecks"`
}

// OrdersConfig is the "orders" section: the local order database.
type OrdersConfig struct {
	// Driver (orders.driver) is the database/sql driver: "sqlite".
	Driver string `mapstructure:"driver"`
	// DSN (orders.dsn) is the driver's data source name. Empty means
	// [OrdersFile] in store.dataDir with [OrdersPragmas]; see
	// [Config.OrdersDSN].
	DSN string `mapstructure:"dsn"`
}

// WorkerConfig is the "worker" section, read by `go run ./worker`.
type WorkerConfig struct {
	// EmbeddedBroker (worker.embeddedBroker) runs the broker, and with
	// namesrv.embedded the name server, inside the worker process from the
	// store, broker and namesrv sections. false: the worker connects to
	// the name servers of broker.namesrvAddr.
	EmbeddedBroker bool `mapstructure:"embeddedBroker"`
}

// OrdersDSN returns orders.dsn, or when it is empty the derived one:
// <store.dataDir>/orders.db?<OrdersPragmas>.
func (c *Config) OrdersDSN() string {
	if strings.TrimSpace(c.Orders.DSN) != "" {
		return c.Orders.DSN
	}
	return filepath.Join(c.Store.DataDir, OrdersFile) + "?" + OrdersPragmas
}

// PaymentCheckDelay returns the delay of payment.checkLevel under
// broker.delayLevels, or 0 if either is invalid.
func (c *Config) PaymentCheckDelay() time.Duration {
	levels, err := delay.ParseLevels(c.Broker.DelayLevels)
	if err != nil || c.Payment.CheckLevel < 1 || c.Payment.CheckLevel > len(levels) {
		return 0
	}
	return levels[c.Payment.CheckLevel-1]
}

// validateWorker checks the temporal, payment, orders and worker sections.
func (c *Config) validateWorker() error {
	for _, err := range []error{
		hostPort("temporal.hostPort", c.Temporal.HostPort, true),
		name("temporal.namespace", c.Temporal.Namespace),
		name("temporal.taskQueue", c.Temporal.TaskQueue),
		checkLevel(c.Payment.CheckLevel, c.Broker.DelayLevels),
		positive("payment.maxChecks", c.Payment.MaxChecks),
		atMost("payment.maxChecks", c.Payment.MaxChecks, PaymentMaxChecksLimit,
			"each check adds about 18 events to the order's workflow history (Temporal's limit 51,200, warning at 10,240)"),
		ordersDriver(c.Orders.Driver),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// name checks a Temporal name: not empty, no white space.
func name(key, v string) error {
	if err := required(key, v); err != nil {
		return err
	}
	if strings.ContainsAny(v, " \t\r\n") {
		return invalid(key, fmt.Sprintf("must not contain white space (got %q)", v))
	}
	return nil
}

// checkLevel checks that level is one of the configured delay levels.
func checkLevel(level int, delayLevels string) error {
	levels, err := delay.ParseLevels(delayLevels)
	if err != nil {
		return nil // reported as broker.delayLevels
	}
	if level < 1 || level > len(levels) {
		return invalid("payment.checkLevel", fmt.Sprintf("must be a delay level from 1 to %d (broker.delayLevels has %d; got %d)",
			len(levels), len(levels), level))
	}
	return nil
}

func ordersDriver(v string) error {
	if v != DefaultOrdersDriver {
		return invalid("orders.driver", fmt.Sprintf("unknown driver %q (want %s)", v, DefaultOrdersDriver))
	}
	return nil
}
