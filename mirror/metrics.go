package mirror

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/halfbackmq/halfback/telemetry"
)

// registerMetrics reports the counters through the meter provider:
//
//	halfback.mirror.records   {record}  records acknowledged by Kafka (outcome=mirrored) or rejected for good (outcome=rejected)
//	halfback.mirror.failures  {attempt} failed attempts at a batch
//	halfback.mirror.retrying  {queue}   queues waiting to retry a batch: above 0 while Kafka is down
//
// How far the mirror is behind is the broker's consumer lag of the
// mirror's group (halfback.broker.consumer.lag), also shown by `halfback mirror
// status`.
func (m *Mirror) registerMetrics() error {
	if !telemetry.MetricsEnabled(m.opts.MeterProvider) {
		return nil
	}
	obs := telemetry.NewObservables(m.opts.MeterProvider, scope)
	records := obs.Counter("halfback.mirror.records", "{record}", "records the Kafka mirror produced (mirrored) or had to skip (rejected)")
	failures := obs.Counter("halfback.mirror.failures", "{attempt}", "failed attempts of the Kafka mirror at a batch")
	retrying := obs.UpDownCounter("halfback.mirror.retrying", "{queue}", "queues whose batch the Kafka mirror is retrying (Kafka down or refusing)")
	group := metric.WithAttributes(telemetry.KeyConsumerGroup.String(m.opts.Group))
	reg, err := obs.Register(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(records, m.mirrored.Load(), metric.WithAttributes(telemetry.KeyConsumerGroup.String(m.opts.Group), outcome("mirrored")))
		o.ObserveInt64(records, m.rejected.Load(), metric.WithAttributes(telemetry.KeyConsumerGroup.String(m.opts.Group), outcome("rejected")))
		o.ObserveInt64(failures, m.failures.Load(), group)
		o.ObserveInt64(retrying, m.retrying.Load(), group)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror: metrics: %w", err)
	}
	m.metrics = reg
	return nil
}

func (m *Mirror) unregisterMetrics() {
	if m.metrics != nil {
		_ = m.metrics.Unregister()
		m.metrics = nil
	}
}

func outcome(v string) attribute.KeyValue { return attribute.String("outcome", v) }
