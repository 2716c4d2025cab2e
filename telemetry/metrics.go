package telemetry

import (
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// Observables registers observable instruments read by one callback: make
// the instruments, then [Observables.Register] the callback that reports
// them all at collection time. Nothing runs between collections, so a
// component keeps plain counters (atomics) and pays nothing else.
//
//	obs := telemetry.NewObservables(nil, "github.com/halfbackmq/halfback/broker")
//	in := obs.Counter("halfback.messages.in", "{message}", "messages stored")
//	reg, err := obs.Register(func(_ context.Context, o metric.Observer) error {
//		o.ObserveInt64(in, sent.Load())
//		return nil
//	})
type Observables struct {
	meter metric.Meter
	insts []metric.Observable
	err   error
}

// NewObservables returns a registrar on mp's meter named scope; nil mp
// means otel.GetMeterProvider().
func NewObservables(mp metric.MeterProvider, scope string) *Observables {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return &Observables{meter: mp.Meter(scope)}
}

// MetricsEnabled reports whether mp (nil: the global provider) can record
// anything: false for the no-op provider [Setup] installs without
// MetricsAddr, so a component can skip even its counters.
func MetricsEnabled(mp metric.MeterProvider) bool {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	_, noop := mp.(metricnoop.MeterProvider)
	return !noop
}

func (r *Observables) add(inst metric.Observable, err error) {
	r.err = errors.Join(r.err, err)
	if err == nil {
		r.insts = append(r.insts, inst)
	}
}

// Counter makes a monotonic observable counter (a running total).
func (r *Observables) Counter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := r.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	r.add(c, err)
	return c
}

// UpDownCounter makes an observable up-down counter (a total that can
// fall, such as messages waiting).
func (r *Observables) UpDownCounter(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	c, err := r.meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	r.add(c, err)
	return c
}

// Gauge makes an observable integer gauge (a level, not a total).
func (r *Observables) Gauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := r.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	r.add(g, err)
	return g
}

// FloatGauge makes an observable floating-point gauge.
func (r *Observables) FloatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	g, err := r.meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	r.add(g, err)
	return g
}

// Meter is the meter the instruments are made on, for synchronous
// instruments (histograms) next to the observable ones.
func (r *Observables) Meter() metric.Meter { return r.meter }

// Register registers cb for every instrument made so far and returns the
// registration (Unregister it when the component closes). An error from
// making an instrument is returned here.
func (r *Observables) Register(cb metric.Callback) (metric.Registration, error) {
	if r.err != nil {
		return nil, r.err
	}
	return r.meter.RegisterCallback(cb, r.insts...)
}
