package broker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/telemetry"
)

// MeterScope is the instrumentation scope of the broker's metrics.
const MeterScope = "github.com/halfbackmq/halfback/broker"

// Metric attribute keys besides telemetry's messaging ones.
const (
	attrQueue    = attribute.Key("messaging.destination.partition.id")
	attrOutcome  = attribute.Key("halfback.txn.outcome")   // commit, rollback
	attrSource   = attribute.Key("halfback.txn.source")    // producer, check
	attrLevel    = attribute.Key("halfback.delay.level")   // 0: arbitrary time
	attrLateness = attribute.Key("halfback.delay.late_le") // bucket bound, s
)

// flushBuckets are the flush-latency histogram's bounds, in seconds.
var flushBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// brokerMetrics counts what the broker's request paths see, cheaply (an
// atomic add on a per-key counter), and reports it with the store's,
// the transaction service's and the scheduler's own stats through one
// observable callback. A nil *brokerMetrics (metrics off) does nothing.
type brokerMetrics struct {
	in      sync.Map // topic → *atomic.Int64: messages stored by sends
	out     sync.Map // topicGroup → *atomic.Int64: messages returned by pulls
	retries sync.Map // group → *atomic.Int64: send-backs stored for retry
	dlq     sync.Map // group → *atomic.Int64: messages moved to the DLQ

	obs   *telemetry.Observables
	flush metric.Float64Histogram
	reg   metric.Registration
}

type topicGroup struct{ topic, group string }

// newBrokerMetrics makes the broker's instruments on mp (nil: the global
// provider), or returns nil when mp is the no-op provider.
func newBrokerMetrics(mp metric.MeterProvider) *brokerMetrics {
	if !telemetry.MetricsEnabled(mp) {
		return nil
	}
	m := &brokerMetrics{obs: telemetry.NewObservables(mp, MeterScope)}
	m.flush, _ = m.obs.Meter().Float64Histogram("halfback.store.flush.duration", metric.WithUnit("s"),
		metric.WithDescription("Time one fsync of the commit log took (a SYNC_FLUSH group commit or an ASYNC_FLUSH interval flush)."),
		metric.WithExplicitBucketBoundaries(flushBuckets...))
	return m
}

// flushHook is the store's OnFlush: nil when metrics are off.
func (m *brokerMetrics) flushHook() func(time.Duration) {
	if m == nil || m.flush == nil {
		return nil
	}
	return func(d time.Duration) { m.flush.Record(context.Background(), d.Seconds()) }
}

// count adds n to the counter of key in table.
func count[K comparable](table *sync.Map, key K, n int) {
	c, ok := table.Load(key)
	if !ok {
		c, _ = table.LoadOrStore(key, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(int64(n))
}

// stored counts n messages a send to topic stored (also when their
// flush timed out, as the runtime counters).
func (m *brokerMetrics) stored(topic string, n int, err error) {
	if m != nil && written(err) && n > 0 {
		count(&m.in, topic, n)
	}
}

// pulled counts n messages a pull of group returned from topic.
func (m *brokerMetrics) pulled(topic, group string, n int) {
	if m != nil && n > 0 {
		count(&m.out, topicGroup{topic, group}, n)
	}
}

// sentBack counts a send-back of group stored for retry or in the DLQ
// (or a retry its consumer's client sent to the retry topic itself).
func (m *brokerMetrics) sentBack(group string, dlq bool) {
	switch {
	case m == nil:
	case dlq:
		count(&m.dlq, group, 1)
	default:
		count(&m.retries, group, 1)
	}
}

// forgetGroup drops the counters of a deleted consumer group.
func (m *brokerMetrics) forgetGroup(group string) {
	if m == nil {
		return
	}
	m.retries.Delete(group)
	m.dlq.Delete(group)
	m.out.Range(func(k, _ any) bool {
		if k.(topicGroup).group == group {
			m.out.Delete(k)
		}
		return true
	})
}

// forgetTopic drops the counters of a deleted topic, so that its series
// are no longer reported (a topic created again under the name starts a
// new series from 0, which Prometheus reads as a counter reset).
func (m *brokerMetrics) forgetTopic(topic string) {
	if m == nil {
		return
	}
	m.in.Delete(topic)
	m.out.Range(func(k, _ any) bool {
		if k.(topicGroup).topic == topic {
			m.out.Delete(k)
		}
		return true
	})
}

// register registers the observable instruments, read from b at each
// collection.
func (m *brokerMetrics) register(b *Broker) error {
	if m == nil {
		return nil
	}
	o := m.obs
	in := o.Counter("halfback.broker.messages.in", "{message}", "Messages stored by producers' sends (transactional ones count in halfback.txn.*), by topic.")
	out := o.Counter("halfback.broker.messages.out", "{message}", "Messages returned to consumers' pulls, by topic and consumer group.")
	lag := o.Gauge("halfback.broker.consumer.lag", "{message}", "Messages in a queue past the group's committed offset, by group, topic and queue.")
	retries := o.Counter("halfback.broker.retries", "{message}", "Failed consumptions sent back for a retry, by consumer group.")
	dlqIn := o.Counter("halfback.broker.dlq.messages", "{message}", "Messages moved to a group's dead-letter queue by a send-back or by a retry send past its limit, by consumer group.")
	dlqSize := o.Gauge("halfback.broker.dlq.size", "{message}", "Messages held in a dead-letter queue (%DLQ%<group>), by DLQ topic.")
	pending := o.UpDownCounter("halfback.txn.half.pending", "{message}", "Half messages waiting for their producer's commit or rollback.")
	parked := o.UpDownCounter("halfback.txn.half.parked", "{message}", "Half messages parked after the maximum check-backs (resumable).")
	halves := o.Counter("halfback.txn.halves", "{message}", "Half messages stored.")
	checks := o.Counter("halfback.txn.checks", "{check}", "Check-backs sent to a live producer.")
	unreached := o.Counter("halfback.txn.checks.unreached", "{check}", "Due check-backs that found no producer online.")
	outcomes := o.Counter("halfback.txn.outcomes", "{transaction}", "Transactions resolved, by outcome (commit, rollback) and source (producer, check).")
	parkedTotal := o.Counter("halfback.txn.parked", "{message}", "Half messages ever parked after the maximum check-backs.")
	scheduled := o.Counter("halfback.delay.scheduled", "{message}", "Messages accepted for delayed delivery, by delay level (0: an arbitrary time).")
	delivered := o.Counter("halfback.delay.delivered", "{message}", "Delayed messages delivered, by lateness bucket (halfback.delay.late_le, seconds; +Inf for the rest).")
	maxLate := o.FloatGauge("halfback.delay.lateness.max", "s", "Latest delayed delivery seen.")
	lifeDropped := o.Counter("halfback.lifecycle.events.dropped", "{event}", "Lifecycle events (halfback trace) dropped because the recorder's queue was full or the disk was (store.diskFullRatio).")
	diskUsage := o.FloatGauge("halfback.store.disk.usage", "1", "Used fraction of the disk holding the store, checked once a second; producers' sends are refused above store.diskFullRatio.")
	var err error
	m.reg, err = o.Register(func(_ context.Context, ob metric.Observer) error {
		m.observeCounters(ob, in, out, retries, dlqIn)
		b.observeQueues(ob, lag, dlqSize)
		st := b.txn.Stats()
		ob.ObserveInt64(pending, int64(st.Pending))
		ob.ObserveInt64(parked, int64(st.Parked))
		ob.ObserveInt64(halves, st.Halves)
		ob.ObserveInt64(checks, st.Checks)
		ob.ObserveInt64(unreached, st.Unreached)
		ob.ObserveInt64(parkedTotal, st.ParkedTotal)
		for _, oc := range []struct {
			outcome, source string
			n               int64
		}{{"commit", "producer", st.Commits}, {"rollback", "producer", st.Rollbacks},
			{"commit", "check", st.CheckCommits}, {"rollback", "check", st.CheckRollbacks},
			{"commit", "operator", st.AdminCommits}, {"rollback", "operator", st.AdminRollbacks}} {
			ob.ObserveInt64(outcomes, oc.n, metric.WithAttributes(attrOutcome.String(oc.outcome), attrSource.String(oc.source)))
		}
		ds := b.delay.Stats()
		for lvl, n := range ds.Scheduled {
			if n > 0 {
				ob.ObserveInt64(scheduled, int64(n), metric.WithAttributes(attrLevel.Int(lvl)))
			}
		}
		for i, n := range ds.Lateness {
			le := "+Inf"
			if i < len(delay.LatenessBuckets) {
				le = strconv.FormatFloat(delay.LatenessBuckets[i].Seconds(), 'g', -1, 64)
			}
			ob.ObserveInt64(delivered, int64(n), metric.WithAttributes(attrLateness.String(le)))
		}
		ob.ObserveFloat64(maxLate, ds.MaxLateness.Seconds())
		if b.life != nil {
			ob.ObserveInt64(lifeDropped, b.life.Dropped())
		}
		_, usage := b.store.DiskFull()
		ob.ObserveFloat64(diskUsage, usage)
		return nil
	})
	return err
}

// observeCounters reports the request paths' counters.
func (m *brokerMetrics) observeCounters(ob metric.Observer, in, out, retries, dlq metric.Int64ObservableCounter) {
	m.in.Range(func(k, v any) bool {
		ob.ObserveInt64(in, v.(*atomic.Int64).Load(), metric.WithAttributes(telemetry.KeyDestination.String(k.(string))))
		return true
	})
	m.out.Range(func(k, v any) bool {
		tg := k.(topicGroup)
		ob.ObserveInt64(out, v.(*atomic.Int64).Load(), metric.WithAttributes(
			telemetry.KeyDestination.String(tg.topic), telemetry.KeyConsumerGroup.String(tg.group)))
		return true
	})
	for _, g := range []struct {
		table *sync.Map
		inst  metric.Int64ObservableCounter
	}{{&m.retries, retries}, {&m.dlq, dlq}} {
		g.table.Range(func(k, v any) bool {
			ob.ObserveInt64(g.inst, v.(*atomic.Int64).Load(), metric.WithAttributes(telemetry.KeyConsumerGroup.String(k.(string))))
			return true
		})
	}
}

// observeQueues reports each group's lag on each queue it committed an
// offset for, and the size of every dead-letter queue.
func (b *Broker) observeQueues(ob metric.Observer, lag, dlqSize metric.Int64ObservableGauge) {
	bounds := map[queueRef][2]int64{}
	dlq := map[string]int64{}
	for _, q := range b.store.Queues() {
		bounds[queueRef{q.Topic, q.QueueID}] = [2]int64{q.MinOffset, q.MaxOffset}
		if strings.HasPrefix(q.Topic, DLQGroupTopicPrefix) {
			dlq[q.Topic] += q.MaxOffset - q.MinOffset
		}
	}
	for topic, n := range dlq {
		ob.ObserveInt64(dlqSize, n, metric.WithAttributes(telemetry.KeyDestination.String(topic)))
	}
	t := b.offsetTable()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, queues := range t.table {
		for qid, off := range queues {
			bd, ok := bounds[queueRef{k.topic, qid}]
			if !ok {
				continue
			}
			ob.ObserveInt64(lag, max(0, bd[1]-max(off, bd[0])), metric.WithAttributes(telemetry.KeyConsumerGroup.String(k.group),
				telemetry.KeyDestination.String(k.topic), attrQueue.String(strconv.Itoa(int(qid)))))
		}
	}
}

type queueRef struct {
	topic string
	qid   int32
}

// close unregisters the observable callback.
func (m *brokerMetrics) close() {
	if m != nil && m.reg != nil {
		m.reg.Unregister()
	}
}
