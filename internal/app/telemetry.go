package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/telemetry"
)

// telemetryFlushTimeout bounds how long stopping waits for buffered spans
// to reach their exporter.
const telemetryFlushTimeout = 5 * time.Second

// SetupTelemetry installs the tracer and meter providers of the telemetry
// section for the process named service (config.ServiceBroker, ...; used
// when telemetry.serviceName is empty) and returns the function that
// flushes and stops them, to call (once) on exit. Call it before anything
// that makes spans or metrics: the broker, the clients, the Temporal client.
func SetupTelemetry(ctx context.Context, cfg *config.Config, service string, log *slog.Logger) (shutdown func(), err error) {
	o := cfg.TelemetryOptions(service)
	tel, err := telemetry.Setup(ctx, o)
	switch {
	case errors.Is(err, telemetry.ErrSpanFile):
		return nil, fmt.Errorf("telemetry.file %q: %w", o.File, err)
	case errors.Is(err, telemetry.ErrMetricsListen):
		return nil, fmt.Errorf("telemetry.metricsAddr %q: %w", o.MetricsAddr, err)
	case err != nil:
		return nil, fmt.Errorf("telemetry (section telemetry): %w", err)
	}
	if o.Exporter != telemetry.ExporterNone || tel.MetricsAddr() != "" {
		log.Info("telemetry", "service", o.ServiceName, "exporter", o.Exporter, "endpoint", o.OTLPEndpoint,
			"file", o.File, "metrics", metricsURL(tel.MetricsAddr()))
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryFlushTimeout)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}, nil
}

func metricsURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "http://" + addr + telemetry.MetricsPath
}
