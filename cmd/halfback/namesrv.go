package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/namesrv"
)

func newNamesrvCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "namesrv",
		Short: "Run the name server alone",
		Long: `Run the halfback name server until SIGINT or SIGTERM.

The name server is RocketMQ's: brokers register with it every 30 s (a
broker not heard from for 120 s is dropped), and clients ask it where a
topic's queues are. An unknown topic is routed to every live broker that
creates topics on first use (broker.autoCreateTopicEnable: such a broker
registers TBW102, as RocketMQ's do), which creates it on the first send;
broker.autoCreateTopicEnable false in this name server's own config turns
that off for every broker. It keeps no state on disk: brokers
re-register after a restart. It logs one line when ready.

--listen overrides namesrv.listenAddr from config.yaml and the
HALFBACK_NAMESRV_LISTENADDR environment variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				cfg.Namesrv.ListenAddr = listen
			}
			if err := cfg.Validate(); err != nil {
				var ke *config.KeyError
				if cmd.Flags().Changed("listen") && errors.As(err, &ke) && ke.Key == "namesrv.listenAddr" {
					return fmt.Errorf("--listen %q: %w", listen, err)
				}
				return err
			}
			return runNamesrv(cmd.Context(), cfg, newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel()))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "host:port to serve on (overrides namesrv.listenAddr)")
	return cmd
}

// runNamesrv serves until ctx is done. cfg must be valid.
func runNamesrv(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	srv, err := namesrv.Open(namesrv.Options{ListenAddr: cfg.Namesrv.ListenAddr, Logger: log,
		DisableAutoCreateTopic: !cfg.Broker.AutoCreateTopicEnable, DefaultQueueNums: cfg.Broker.DefaultTopicQueueNums})
	if err != nil {
		return err
	}
	log.Info("halfback namesrv ready", "addr", srv.Addr())

	<-ctx.Done()

	if err := srv.Close(); err != nil {
		return fmt.Errorf("close name server on %s: %w", srv.Addr(), err)
	}
	log.Info("halfback namesrv stopped", "addr", srv.Addr())
	return nil
}
