package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/config"
)

func newBrokerCmd() *cobra.Command {
	var dataDir, flush string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the broker (for now: the storage engine only)",
		Long: `Run the halfback broker until SIGINT or SIGTERM.

For now the broker is the storage engine only: it opens (and, after a crash,
recovers) the commit log, consume queues and index in the data directory,
logs one line when ready, and on a signal closes the store, which writes
the checkpoint. It does not listen on the network yet: the RocketMQ
remoting protocol (broker.listenAddr) arrives in the next release.

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
				return err
			}
			return runBroker(cmd.Context(), cfg, newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel()))
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (overrides store.dataDir)")
	cmd.Flags().StringVar(&flush, "flush", "", "sync or async (overrides store.flushType)")
	return cmd
}

// runBroker opens the store, logs that it is ready, waits for ctx to be
// done, then closes the store. cfg must be valid.
func runBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	opts, err := cfg.StoreOptions()
	if err != nil {
		return err
	}
	opts.Logger = log
	if abs, err := filepath.Abs(opts.Dir); err == nil {
		opts.Dir = abs
	}
	st, err := store.Open(opts)
	if err != nil {
		return fmt.Errorf("open store in %s: %w", opts.Dir, err)
	}
	log.Info("halfback broker ready", "dataDir", opts.Dir, "flush", opts.FlushType.String())

	<-ctx.Done()

	if err := st.Close(); err != nil {
		return fmt.Errorf("close store in %s: %w", opts.Dir, err)
	}
	log.Info("halfback broker stopped", "dataDir", opts.Dir)
	return nil
}
