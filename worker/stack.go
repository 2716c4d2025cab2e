package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
	"github.com/halfbackmq/halfback/workflows"
)

// stopTimeout bounds how long stopping the worker waits for running
// activities to finish.
const stopTimeout = 10 * time.Second

// namesrvRetryEvery is how often a worker of an external broker asks its
// name servers again, and says it waits for them, before "worker ready".
const namesrvRetryEvery = 2 * time.Second

// stack is everything the worker runs, started in order by [start] and
// stopped in the reverse order by [stack.Close].
type stack struct {
	broker   *embedded // nil unless worker.embeddedBroker
	nsAddrs  []string  // the name servers the halfback client uses
	db       *orders.DB
	temporal temporalclient.Client
	client   *client.Client
	worker   worker.Worker
	log      *slog.Logger
	// fatal receives the error the Temporal worker stopped on by itself
	// (see [stack.Failed]); buffered, so that the SDK's hook never blocks.
	fatal chan error
	// stopAwait ends the wait for an external broker's name servers
	// before "worker ready", and awaited is closed once that wait is
	// over; both nil with the embedded broker.
	stopAwait context.CancelFunc
	awaited   chan struct{}
}

// options are the worker's own knobs, besides the config.
type options struct {
	// interceptors are added to the Temporal worker's (the crash hook).
	interceptors []interceptor.WorkerInterceptor
}

// start runs the embedded broker (with worker.embeddedBroker), opens the
// order database, dials Temporal (with the tracing interceptor, so that
// the workflows, their activities and the check consumer's signals join
// each order's trace), builds the halfback client and the
// txnbridge plugin, and starts a Temporal worker on temporal.taskQueue
// with the plugin (which registers the workflows and activities, the
// check-back resolver and the delayed-check consumer). It logs "worker
// ready" then, or, with an external broker, once one of its name servers
// answers (see [stack.awaitNamesrv]). On an error it stops what it
// started.
func start(ctx context.Context, cfg *config.Config, log *slog.Logger, o options) (_ *stack, err error) {
	s := &stack{log: log, nsAddrs: app.NamesrvAddrs(cfg), fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if cfg.Worker.EmbeddedBroker {
		if s.broker, err = startBroker(ctx, cfg, log); err != nil {
			return nil, err
		}
		s.nsAddrs = s.broker.nsAddrs
	}
	if s.db, err = app.OpenOrders(ctx, cfg); err != nil {
		return nil, err
	}
	// The tracing interceptor goes on the client, not on the worker only
	// (the plugin's default): the client signals the orders' workflows
	// with the delayed payment checks, and a client's interceptors reach
	// its workers too, so the plugin adds none (DisableTracing).
	ti, err := txnbridge.NewTracingInterceptor()
	if err != nil {
		return nil, err
	}
	if s.temporal, err = app.DialTemporal(ctx, cfg, log, ti); err != nil {
		return nil, err
	}
	if s.client, err = app.NewClient(s.nsAddrs, log); err != nil {
		return nil, err
	}
	plugin, err := txnbridge.NewPlugin(txnbridge.Options{
		Client:            s.client,
		DB:                s.db,
		TaskQueue:         cfg.Temporal.TaskQueue,
		PaymentCheckLevel: cfg.Payment.CheckLevel,
		PaymentCheckDelay: cfg.PaymentCheckDelay(),
		MaxPaymentChecks:  cfg.Payment.MaxChecks,
		Temporal:          s.temporal,
		Logger:            log,
		DisableTracing:    true, // s.temporal has the tracing interceptor
	})
	if err != nil {
		return nil, fmt.Errorf("txnbridge plugin: %w", err)
	}
	w := worker.New(s.temporal, cfg.Temporal.TaskQueue, worker.Options{
		Plugins:           []worker.Plugin{plugin},
		Interceptors:      o.interceptors,
		WorkerStopTimeout: stopTimeout,
		OnFatalError: func(err error) {
			select {
			case s.fatal <- err:
			default:
			}
		},
	})
	if err := w.Start(); err != nil {
		w.Stop() // the plugin released its part already; this stops the rest
		return nil, fmt.Errorf("start Temporal worker on task queue %s: %w", cfg.Temporal.TaskQueue, err)
	}
	s.worker = w
	if cfg.Worker.EmbeddedBroker {
		s.logReady(cfg) // the broker runs in this process, up already
	} else {
		s.awaitNamesrv(ctx, cfg)
	}
	return s, nil
}

// awaitNamesrv logs "worker ready" once a name server of the external
// broker answers, and until then, every [namesrvRetryEvery], which ones
// it waits for; [stack.Close] ends the wait. The worker runs meanwhile
// (its client keeps asking, the Temporal SDK keeps polling, and orders
// flow as soon as the broker is there), but "worker ready", which scripts
// and people wait for, must mean that orders can flow.
func (s *stack) awaitNamesrv(ctx context.Context, cfg *config.Config) {
	ctx, s.stopAwait = context.WithCancel(ctx)
	s.awaited = make(chan struct{})
	go func() {
		defer close(s.awaited)
		if app.AwaitNamesrv(ctx, s.client, s.nsAddrs, workflows.TopicOrderEvents, namesrvRetryEvery, "worker", s.log) == nil {
			s.logReady(cfg)
		}
	}()
}

// logReady logs "worker ready" with what the worker serves and uses.
func (s *stack) logReady(cfg *config.Config) {
	s.log.Info("worker ready", "temporal", cfg.Temporal.HostPort, "namespace", cfg.Temporal.Namespace,
		"taskQueue", cfg.Temporal.TaskQueue, "namesrv", s.nsAddrs, "orders", cfg.OrdersDSN(),
		"paymentCheck", cfg.PaymentCheckDelay(), "maxChecks", cfg.Payment.MaxChecks)
}

// Failed receives the error on which the Temporal worker stopped by
// itself: a poll error the SDK does not retry (the namespace deleted, the
// client's version refused) for more than its grace period. The SDK has
// then stopped the worker, and the plugin's producer and check consumer
// with it: the process serves nothing and must not wait on as if it did.
func (s *stack) Failed() <-chan error { return s.fatal }

// Close ends the wait for a name server, stops the Temporal worker (which
// stops the plugin's producer and consumer), then closes the clients, the
// order database and the embedded broker. It returns the first error.
func (s *stack) Close() error {
	var errs []error
	if s.stopAwait != nil {
		s.stopAwait()
		<-s.awaited // it uses s.client
	}
	if s.worker != nil {
		s.worker.Stop()
	}
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	if s.temporal != nil {
		s.temporal.Close()
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	return errors.Join(errs...)
}
