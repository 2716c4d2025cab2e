package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/config"
)

func newBrokerCmd() *cobra.Command {
	var dataDir, flush string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the broker (for now: storage engine and delay scheduler)",
		Long: `Run the halfback broker until SIGINT or SIGTERM.

For now the broker is the storage engine and the delay scheduler: it opens
(and, after a crash, recovers) the commit log, consume queues and index in
the data directory, starts delivering delayed messages that fall due, logs
one line when ready, and on a signal closes both, writing their checkpoints. It does not listen on the network yet: the RocketMQ
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

// runBroker opens the store and the delay scheduler, logs that it is
// ready, waits for ctx to be done, then closes both. cfg must be valid.
func runBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	e, err := openEngine(cfg, log)
	if err != nil {
		return err
	}
	dir := e.store.Dir()
	log.Info("halfback broker ready", "dataDir", dir, "flush", e.store.FlushType().String(), "delayLevels", cfg.Broker.DelayLevels)

	<-ctx.Done()

	if err := e.close(); err != nil {
		return fmt.Errorf("close store in %s: %w", dir, err)
	}
	log.Info("halfback broker stopped", "dataDir", dir)
	return nil
}
