package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
)

// The broker's running figures: GET_BROKER_RUNTIME_INFO (mqadmin
// brokerStatus and clusterList; `halfback cluster list`).

// runtimeCounters count since the broker started, whether metrics are on
// or off.
type runtimeCounters struct {
	started time.Time
	put     atomic.Int64 // messages stored by sends
	got     atomic.Int64 // messages returned by pulls
	rates   rateSamples  // put and got, once a second
}

// tpsWindows are the spans of RocketMQ's putTps and getTransferredTps
// figures ("<10 s> <1 min> <10 min>", messages a second).
var tpsWindows = [...]time.Duration{10 * time.Second, time.Minute, 10 * time.Minute}

// rateSampleInterval is how often the counters are sampled.
const rateSampleInterval = time.Second

// rateSamples keeps a sample of the counters every rateSampleInterval,
// back over the longest tpsWindows.
type rateSamples struct {
	mu   sync.Mutex
	ring []rateSample // oldest first
}

type rateSample struct {
	at       time.Time
	put, got int64
}

// add records a sample and forgets those older than the longest window
// needs.
func (r *rateSamples) add(s rateSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring = append(r.ring, s)
	keep := int(tpsWindows[len(tpsWindows)-1]/rateSampleInterval) + 1
	if n := len(r.ring); n > keep {
		r.ring = append(r.ring[:0], r.ring[n-keep:]...)
	}
}

// tps returns RocketMQ's putTps and getTransferredTps figures at cur:
// for each window, the counters' rate since the newest sample at least
// that old (the oldest sample while the broker is younger than the
// window), two decimals, space separated.
func (r *rateSamples) tps(cur rateSample) (put, got string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps, gs []string
	for _, w := range tpsWindows {
		var from rateSample
		for i := len(r.ring) - 1; i >= 0; i-- {
			from = r.ring[i]
			if cur.at.Sub(from.at) >= w-rateSampleInterval/2 {
				break
			}
		}
		p, g := 0.0, 0.0
		if secs := cur.at.Sub(from.at).Seconds(); len(r.ring) > 0 && secs > 0 {
			p, g = float64(cur.put-from.put)/secs, float64(cur.got-from.got)/secs
		}
		ps = append(ps, strconv.FormatFloat(p, 'f', 2, 64))
		gs = append(gs, strconv.FormatFloat(g, 'f', 2, 64))
	}
	return strings.Join(ps, " "), strings.Join(gs, " ")
}

// sample is the counters now.
func (c *runtimeCounters) sample() rateSample {
	return rateSample{at: time.Now(), put: c.put.Load(), got: c.got.Load()}
}

// startRateSampling samples the counters every rateSampleInterval.
func (b *Broker) startRateSampling() {
	b.counts.rates.add(rateSample{at: b.counts.started})
	b.every(rateSampleInterval, func() { b.counts.rates.add(b.counts.sample()) })
}

// stored counts n messages a send (a plain or batch send, a half
// message, a reply, a send-back) stored: also when the store answered
// ErrFlushTimeout, since the records are written and become durable
// later (the producer takes FLUSH_DISK_TIMEOUT as sent), as RocketMQ
// counts a put before its flush.
func (c *runtimeCounters) stored(n int, err error) {
	if written(err) {
		c.put.Add(int64(n))
	}
}

// written reports whether an append that returned err stored its
// records: it succeeded, or its flush timed out (the records are written
// and become durable later; the producer takes FLUSH_DISK_TIMEOUT as sent).
func written(err error) bool {
	return err == nil || errors.Is(err, store.ErrFlushTimeout)
}

// registerRuntime handles GET_BROKER_RUNTIME_INFO.
func (b *Broker) registerRuntime(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqGetBrokerRuntimeInfo, b.handleRuntimeInfo)
}

// RuntimeInfo returns the broker's running figures by name: RocketMQ's
// keys where the figure means the same (brokerVersionDesc, bootTimestamp,
// runtime, putMessageTimesTotal, putTps, getTransferredTps,
// commitLogMinOffset, commitLogMaxOffset, dispatchBehindBytes,
// commitLogDiskRatio, earliestMessageTimeStamp, brokerActive: what
// mqadmin clusterList shows) and halfback's own, prefixed
// "halfback" (messages pulled, flush type, disk full, open transactions,
// delayed deliveries). putMessageTimesTotal counts the messages sends
// stored (halves and send-backs included); RocketMQ's also counts the
// broker's own writes (delayed deliveries, commits, op records).
func (b *Broker) RuntimeInfo() map[string]string {
	now := time.Now()
	up := now.Sub(b.counts.started)
	full, usage := b.store.DiskFull()
	behind := max(0, b.store.MaxPhysicalOffset()-b.store.DispatchedOffset())
	ts := b.txn.Stats()
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	putTps, getTps := b.counts.rates.tps(b.counts.sample())
	info := map[string]string{
		"brokerVersionDesc":            "halfback " + b.version(),
		"brokerVersion":                strconv.Itoa(int(remoting.DefaultVersion)),
		"bootTimestamp":                itoa(b.counts.started.UnixMilli()),
		"runtime":                      runtimeString(up),
		"putMessageTimesTotal":         itoa(b.counts.put.Load()),
		"putTps":                       putTps,
		"getTransferredTps":            getTps,
		"brokerActive":                 "true",
		"commitLogMinOffset":           itoa(b.store.MinPhysicalOffset()),
		"commitLogMaxOffset":           itoa(b.store.MaxPhysicalOffset()),
		"dispatchBehindBytes":          itoa(behind),
		"commitLogDiskRatio":           strconv.FormatFloat(usage, 'f', 4, 64),
		"halfbackGetMessageTotal":      itoa(b.counts.got.Load()),
		"halfbackFlushType":            b.store.FlushType().String(),
		"halfbackDiskFull":             strconv.FormatBool(full),
		"halfbackTransactionsPending":  itoa(int64(ts.Pending)),
		"halfbackTransactionsParked":   itoa(int64(ts.Parked)),
		"halfbackDelayedDelivered":     strconv.FormatUint(b.delay.Stats().Delivered, 10),
		"halfbackConsumerGroupsOnline": strconv.Itoa(len(b.consumerGroups())),
	}
	if t, ok := b.earliestMessageTime(); ok {
		info["earliestMessageTimeStamp"] = itoa(t)
	}
	return info
}

// version is Options.Version, "(devel)" when unset.
func (b *Broker) version() string {
	if b.opts.Version == "" {
		return "(devel)"
	}
	return b.opts.Version
}

// earliestMessageTime returns the store timestamp (ms) of the oldest
// message the commit log holds, or false if it holds none.
func (b *Broker) earliestMessageTime() (int64, bool) {
	first := b.store.MinPhysicalOffset()
	if first >= b.store.MaxPhysicalOffset() {
		return 0, false
	}
	m, err := b.store.ReadMessage(first)
	if err != nil {
		return 0, false
	}
	return m.StoreTimestamp, true
}

// runtimeString is RocketMQ's "runtime" figure: "[ 0 days, 1 hours, 2
// minutes, 3 seconds ]".
func runtimeString(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("[ %d days, %d hours, %d minutes, %d seconds ]", s/86400, s%86400/3600, s%3600/60, s%60)
}

// handleRuntimeInfo answers RuntimeInfo as RocketMQ's KVTable,
// {"table":{...}}.
func (b *Broker) handleRuntimeInfo(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, err := json.Marshal(struct {
		Table map[string]string `json:"table"`
	}{b.RuntimeInfo()})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}
