// Command worker is halfback's Temporal worker for the order/payment flow.
//
//	go run ./worker [--config config.yaml]
//
// It reads the config (config.yaml and HALFBACK_* overrides), runs the
// broker and its name server in-process when worker.embeddedBroker is
// true (else it uses the name servers of broker.namesrvAddr), opens the
// order database (orders section), dials Temporal (temporal section), and
// runs a worker on temporal.taskQueue with the txnbridge plugin: the
// OrderPaymentWorkflow, its activities, the check-back resolver and the
// consumer that turns delayed payment checks into signals. SIGINT or
// SIGTERM stops it cleanly: the worker first (running activities get
// 10 s), then the clients, the database and the broker.
//
// # Fault hook
//
// For crash tests, HALFBACK_KILL_AT=before:<activity type> or
// after:<activity type> makes the worker SIGKILL itself when an attempt
// of that activity starts, or right after one succeeded (before Temporal
// hears of it); see killHook.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/interceptor"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run is main with its arguments: it starts the stack, waits for ctx to
// end, and stops the stack.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loadConfig := app.ConfigFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.Log.SlogLevel())
	stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServiceWorker, log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	var o options
	if hook, err := killHookFromEnv(os.Getenv(killAtEnv), log); err != nil {
		return err
	} else if hook != nil {
		o.interceptors = []interceptor.WorkerInterceptor{hook}
	}
	s, err := start(ctx, cfg, log, o)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping worker")
	if err := s.Close(); err != nil {
		return err
	}
	log.Info("worker stopped")
	return nil
}
