package txnbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/halfbackmq/halfback/activities"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/workflows"
)

// NewPlugin returns the plugin for worker.Options.Plugins (or a replayer's
// WorkflowReplayerOptions.Plugins). On the start of a worker of
// o.TaskQueue it creates the producer (group o.ProducerGroup, check-backs
// answered by NewResolver(o.DB)), starts the check consumer when
// o.Temporal is set, and registers workflows.OrderPaymentWorkflow and the
// activities; on the worker's stop it closes them. Workers of one
// process share the producer and consumer (a Client holds one of each
// group): the first start creates them, the last stop closes them. A
// replayer gets the workflow only. Unless o.DisableTracing, the plugin
// adds Temporal's OpenTelemetry tracing interceptor to every worker and
// replayer it is given.
//
// A worker whose start fails after the plugin started (Temporal is
// unreachable, its namespace does not exist) releases them at once: Run
// and Start return the error with nothing of the plugin left running (a
// Stop after that is harmless).
func NewPlugin(o Options) (*Plugin, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := &plugin{o: o.withDefaults(), queues: map[string]string{}, users: map[string]bool{}}
	p.log = p.o.Logger.With("plugin", PluginName)
	var interceptors []interceptor.WorkerInterceptor
	if !p.o.DisableTracing {
		ti, err := NewTracingInterceptor()
		if err != nil {
			return nil, err
		}
		interceptors = append(interceptors, ti)
	}
	sp, err := temporal.NewSimplePlugin(temporal.SimplePluginOptions{
		Name:               PluginName,
		WorkerInterceptors: interceptors,
		ConfigureWorker:    p.configureWorker,
		RunContextBefore:   p.before,
		// No RunContextAfter: SimplePlugin runs it before the worker's own
		// stop, while activities still use the producer (Plugin.StopWorker).
	})
	if err != nil {
		return nil, err
	}
	return &Plugin{SimplePlugin: sp, p: p}, nil
}

// Plugin is the txnbridge plugin: a temporal.SimplePlugin (for
// worker.Options.Plugins, client.Options.Plugins or a replayer's) whose
// runtime is released after its worker has stopped.
type Plugin struct {
	*temporal.SimplePlugin
	p *plugin
}

// StartWorker starts the worker; if that fails, it releases what the
// plugin started for it, as its stop would: the SDK's Run returns a
// failed start's error without calling Stop, which left the producer
// answering check-backs and the check consumer signalling workflows (and
// their groups registered on the Client) in a process that runs no
// worker.
func (pl *Plugin) StartWorker(ctx context.Context, o worker.PluginStartWorkerOptions, next func(context.Context, worker.PluginStartWorkerOptions) error) error {
	if err := pl.SimplePlugin.StartWorker(ctx, o, next); err != nil {
		pl.p.after(o.WorkerInstanceKey)
		return err
	}
	return nil
}

// StopWorker stops the worker first, then releases the producer and the
// check consumer when no other worker uses them. A graceful stop lets the
// activities running finish within the worker's WorkerStopTimeout, and
// they send through the producer: SimplePlugin's RunContextAfter, which
// runs before the worker's stop, would close it under them.
func (pl *Plugin) StopWorker(ctx context.Context, o worker.PluginStopWorkerOptions, next func(context.Context, worker.PluginStopWorkerOptions)) {
	pl.SimplePlugin.StopWorker(ctx, o, next)
	pl.p.after(o.WorkerInstanceKey)
}

// plugin is the state behind the SimplePlugin's callbacks.
type plugin struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	queues map[string]string // task queue of each configured worker, by instance key
	users  map[string]bool   // instance keys of the started workers using rt
	rt     *runtime          // nil while no worker uses it
}

// runtime is what running workers share.
type runtime struct {
	producer *client.Producer
	consumer *client.PushConsumer // nil without Options.Temporal
	acts     *activities.Activities
}

// configureWorker notes the worker's task queue.
func (p *plugin) configureWorker(_ context.Context, o worker.PluginConfigureWorkerOptions) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queues[o.WorkerInstanceKey] = o.TaskQueue
	return nil
}

// before registers the workflow and, for a worker, starts the runtime and
// registers the activities.
func (p *plugin) before(ctx context.Context, o temporal.SimplePluginRunContextBeforeOptions) error {
	if o.WorkflowReplayer {
		workflows.Register(o.Registry)
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.queues[o.InstanceKey]; q != p.o.TaskQueue {
		p.log.Info("txnbridge: worker of another task queue left alone", "taskQueue", q, "want", p.o.TaskQueue)
		return nil
	}
	if p.rt == nil {
		rt, err := p.start(ctx)
		if err != nil {
			return err
		}
		p.rt = rt
	}
	p.users[o.InstanceKey] = true
	workflows.Register(o.Registry)
	p.rt.acts.Register(o.Registry)
	return nil
}

// after stops the runtime when the last worker using it has stopped.
func (p *plugin) after(instanceKey string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.queues, instanceKey)
	if !p.users[instanceKey] {
		return // a worker of another task queue
	}
	delete(p.users, instanceKey)
	if len(p.users) == 0 && p.rt != nil {
		p.rt.close(p.log)
		p.rt = nil
	}
}

// start creates the producer and starts the check consumer.
func (p *plugin) start(ctx context.Context) (*runtime, error) {
	prod, err := p.o.Client.NewProducer(client.ProducerOptions{Group: p.o.ProducerGroup, CheckListener: NewResolver(p.o.DB)})
	if err != nil {
		return nil, fmt.Errorf("txnbridge: producer %s: %w", p.o.ProducerGroup, err)
	}
	rt := &runtime{producer: prod, acts: &activities.Activities{DB: p.o.DB, Producer: prod,
		CheckLevel: p.o.PaymentCheckLevel, CheckDelay: p.o.PaymentCheckDelay, MaxChecks: p.o.MaxPaymentChecks}}
	if p.o.Temporal == nil {
		p.log.Warn("txnbridge: no Temporal client; payment checks are not consumed")
		return rt, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.o.StartTimeout)
	defer cancel()
	if rt.consumer, err = startCheckConsumer(ctx, p.o, p.o.Temporal, p.log); err != nil {
		_ = prod.Close()
		return nil, err
	}
	return rt, nil
}

// close closes the consumer (waiting for the signals in flight), then
// the producer.
func (rt *runtime) close(log *slog.Logger) {
	if rt.consumer != nil {
		if err := rt.consumer.Close(); err != nil && !errors.Is(err, client.ErrClosed) {
			log.Warn("txnbridge: closing the check consumer", "err", err)
		}
	}
	if err := rt.producer.Close(); err != nil && !errors.Is(err, client.ErrClosed) {
		log.Warn("txnbridge: closing the producer", "err", err)
	}
}
