package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// testInterceptors is set only in the test binary (faulthook_test.go): the
// crash tests' fault hook, which SIGKILLs a worker process they run.
var testInterceptors func(log *slog.Logger) ([]interceptor.WorkerInterceptor, error)

// run is main with its arguments: it starts the stack, waits for ctx to
// end, and stops the stack. If the Temporal worker stops by itself first
// ([stack.Failed]), run stops the rest and returns its error.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loadConfig := app.ConfigFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (the config file is given as --config FILE)", app.ErrUsage, fs.Arg(0))
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
	if testInterceptors != nil {
		if o.interceptors, err = testInterceptors(log); err != nil {
			return err
		}
	}
	s, err := start(ctx, cfg, log, o)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.Failed():
		// Exit with an error, so that whatever runs the worker (systemd,
		// Kubernetes) starts it again or tells someone.
		log.Error("Temporal worker stopped by itself; stopping the worker", "err", err)
		return errors.Join(fmt.Errorf("the Temporal worker on task queue %s, namespace %s, stopped: %w",
			cfg.Temporal.TaskQueue, cfg.Temporal.Namespace, err), s.Close())
	}
	log.Info("stopping worker")
	if err := s.Close(); err != nil {
		return err
	}
	log.Info("worker stopped")
	return nil
}
