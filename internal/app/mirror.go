package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/mirror"
)

// StartMirror starts the Kafka mirror of the mirror.kafka section on a
// client of the name servers nsAddrs, with the global tracer and meter
// providers (SetupTelemetry's). It returns the function that stops it:
// the mirror, then its client. `halfback broker` and the worker call it
// when mirror.kafka.enabled, `halfback mirror` always.
func StartMirror(ctx context.Context, cfg *config.Config, nsAddrs []string, log *slog.Logger) (stop func() error, err error) {
	opts, err := cfg.MirrorOptions()
	if err != nil {
		return nil, err
	}
	c, err := NewClient(nsAddrs, log)
	if err != nil {
		return nil, err
	}
	opts.Client = c
	opts.Logger = log
	m, err := mirror.New(opts)
	if err == nil {
		err = m.Start(ctx)
	}
	if err != nil {
		c.Close()
		if errors.Is(err, mirror.ErrUnknownTopic) {
			return nil, fmt.Errorf("config: mirror.kafka.topics: %w", err)
		}
		return nil, fmt.Errorf("kafka mirror: %w", err)
	}
	return func() error { return errors.Join(m.Close(), c.Close()) }, nil
}
