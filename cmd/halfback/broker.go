package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/namesrv"
)

func newBrokerCmd() *cobra.Command {
	var dataDir, flush string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the broker (and, by default, the name server)",
		Long: `Run the halfback broker until SIGINT or SIGTERM.

It serves Apache RocketMQ's remoting protocol on broker.listenAddr
(127.0.0.1:10911), so the official RocketMQ clients work against it, and
with namesrv.embedded (the default) also runs the name server on
namesrv.listenAddr (127.0.0.1:9876): point clients at that. It opens (and,
after a crash, recovers) the commit log, consume queues and index in the
data directory, delivers delayed messages as they fall due, logs one line
when ready, and on a signal stops, writing its checkpoints.

The telemetry section turns on tracing (telemetry.exporter: otlp, stdout
or file) and a Prometheus metrics endpoint (telemetry.metricsAddr); spans
still buffered are flushed on the way out.

Flags override config.yaml and HALFBACK_* environment variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data-dir") {
				cfg.Store.DataDir = dataDir
			}
			if cmd.Flags().Changed("flush") {
				if _, err := store.ParseFlushType(flush); err != nil {
					return fmt.Errorf("--flush %q: %w (want sync or async)", flush, config.ErrInvalid)
				}
				cfg.Store.FlushType = flush
			}
			if err := cfg.Validate(); err != nil {
				// A bad --data-dir is the flag's fault, not the config's.
				var ke *config.KeyError
				if cmd.Flags().Changed("data-dir") && errors.As(err, &ke) && ke.Key == "store.dataDir" {
					return fmt.Errorf("--data-dir %q: %w", dataDir, err)
				}
				return err
			}
			return runBroker(cmd.Context(), cfg, newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel()))
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (overrides store.dataDir)")
	cmd.Flags().StringVar(&flush, "flush", "", "sync or async (overrides store.flushType)")
	return cmd
}

// runBroker runs the network broker (and, with namesrv.embedded, the name
// server, and with mirror.kafka.enabled, the Kafka mirror) with the
// telemetry section's tracer and meter providers, logs one line when
// ready, waits for ctx to be done, then stops the mirror and closes the
// broker and name server, writing the store's and the scheduler's
// checkpoints, and flushes telemetry.
func runBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	opts, err := cfg.BrokerOptions()
	if err != nil {
		return err
	}
	stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServiceBroker, log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	opts.Logger = log
	opts.Version = versionString()
	if abs, err := filepath.Abs(opts.Store.Dir); err == nil {
		opts.Store.Dir = abs
		opts.Delay.Dir = filepath.Join(abs, "delay")
	}
	var ns *namesrv.Server
	if cfg.Namesrv.Embedded {
		if ns, err = namesrv.Open(namesrv.Options{ListenAddr: cfg.Namesrv.ListenAddr, Logger: log,
			DisableAutoCreateTopic: !cfg.Broker.AutoCreateTopicEnable, DefaultQueueNums: cfg.Broker.DefaultTopicQueueNums}); err != nil {
			return fmt.Errorf("embedded name server: %w", err)
		}
		defer ns.Close()
		opts.NamesrvAddrs = []string{ns.Addr()}
	}
	b, err := broker.Open(opts)
	if err != nil {
		return openError(opts, err)
	}
	stopMirror := func() error { return nil }
	if cfg.Mirror.Kafka.Enabled {
		if stopMirror, err = app.StartMirror(ctx, cfg, opts.NamesrvAddrs, log); err != nil {
			b.Close()
			return err
		}
	}
	nsAddr := strings.Join(opts.NamesrvAddrs, ";")
	log.Info("halfback broker ready", "addr", b.Addr(), "listen", opts.ListenAddr, "broker", opts.BrokerName, "namesrv", nsAddr, "embeddedNamesrv", cfg.Namesrv.Embedded,
		"dataDir", opts.Store.Dir, "flush", b.Store().FlushType().String(), "delayLevels", cfg.Broker.DelayLevels)

	<-ctx.Done()

	if err := stopMirror(); err != nil {
		log.Warn("kafka mirror stopped with an error", "err", err)
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("close broker in %s: %w", opts.Store.Dir, err)
	}
	log.Info("halfback broker stopped", "dataDir", opts.Store.Dir)
	return nil
}

// openError is broker.Open's error; a data directory written under
// another store.segmentSize or store.queueEntriesPerFile is a
// *config.KeyError naming the key.
func openError(opts broker.Options, err error) error {
	keyErr := func(key string, v int64, what string) error {
		return &config.KeyError{Key: key, Err: config.ErrInvalid, Cause: err, Detail: fmt.Sprintf(
			"%d is not the %s %s was written with; set it back (%v)", v, what, opts.Store.Dir, err)}
	}
	switch {
	case errors.Is(err, store.ErrSegmentSizeChanged):
		return keyErr("store.segmentSize", opts.Store.SegmentSize, "segment size")
	case errors.Is(err, store.ErrQueueEntriesChanged):
		return keyErr("store.queueEntriesPerFile", int64(opts.Store.QueueEntriesPerFile), "number of entries a file")
	}
	return fmt.Errorf("open broker in %s: %w", opts.Store.Dir, err)
}
