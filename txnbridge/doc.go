// Package txnbridge is the Temporal plugin of halfback: added to a
// worker, it brings the order/payment workflow, its activities, the
// producer whose unresolved half messages the order database resolves,
// and the consumer that turns delayed payment checks into signals.
//
// # The plugin
//
// [NewPlugin] returns a [Plugin], a temporal.SimplePlugin. When a worker of
// [Options].TaskQueue starts, the plugin creates the producer of
// [Options].ProducerGroup with [NewResolver] as its check listener,
// starts the check consumer (group workflows.CheckConsumerGroup, topic
// workflows.TopicPaymentCheck: each check signals the workflow its key
// names, acknowledged only after the signal succeeded, and retried, never
// dead-lettered by default, while the signal fails), and registers
// workflows.OrderPaymentWorkflow and the activities.Activities. When the
// worker has stopped (after a graceful stop let the activities running
// finish, within its WorkerStopTimeout, with the producer) it closes
// them, and so it does when the worker's start fails after the plugin's
// part (worker.Run returns that error without a Stop). A workflow
// replayer given the plugin gets the workflow only.
//
// # Tracing
//
// The plugin adds Temporal's OpenTelemetry interceptor
// ([NewTracingInterceptor]) to its workers: workflow and activity spans
// continue the trace of whoever started the workflow (a client with the
// same interceptor), and the activities' sends, half messages and
// commits (package client's spans) are children of the activity spans,
// so one order is one trace. Spans go to the global tracer provider; with
// none installed nothing is recorded.
//
// The check consumer signals through [Options].Temporal, within the span
// of its processing of the check (a child of the check's send). The
// plugin cannot add an interceptor to that client: dial it with one, and
// set [Options].DisableTracing, since a client's interceptors reach its
// workers too. Each check's SignalWorkflow span, and the workflow's
// HandleSignal span after it, then join the order's trace. The worker
// (`go run ./worker`) is set up so, as in Usage below.
//
// # Check-back
//
// [NewResolver] answers the broker's check-back of a half message nobody
// ended (the worker died between the steps' activities, say): it fences
// the transaction id in the order database, so that a local transaction
// that has not committed never will, and answers Commit if the local
// transaction won, Rollback if the fence did.
//
// # The step
//
// [SendTransactional] and [Step] are workflows.SendTransactional and
// workflows.Step: the reusable half message, local transaction, commit
// or rollback.
//
// # Usage
//
//	ti, err := txnbridge.NewTracingInterceptor()
//	tc, err := client.Dial(client.Options{Interceptors: []interceptor.ClientInterceptor{ti}})
//	plugin, err := txnbridge.NewPlugin(txnbridge.Options{Client: hb, DB: db, Temporal: tc, DisableTracing: true,
//		PaymentCheckLevel: cfg.Payment.CheckLevel, MaxPaymentChecks: cfg.Payment.MaxChecks})
//	w := worker.New(tc, workflows.TaskQueue, worker.Options{Plugins: []worker.Plugin{plugin}})
//	err = w.Run(worker.InterruptCh())
//
// Tests start the broker, the order database and a Temporal dev server
// with package txnbridgetest.
package txnbridge
