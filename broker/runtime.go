package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
// runtime, putMessageTimesTotal, commitLogMinOffset, commitLogMaxOffset,
// dispatchBehindBytes, commitLogDiskRatio) and halfback's own, prefixed
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
	version := b.opts.Version
	if version == "" {
		version = "(devel)"
	}
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	return map[string]string{
		"brokerVersionDesc":            "halfback " + version,
		"brokerVersion":                strconv.Itoa(int(remoting.DefaultVersion)),
		"bootTimestamp":                itoa(b.counts.started.UnixMilli()),
		"runtime":                      runtimeString(up),
		"putMessageTimesTotal":         itoa(b.counts.put.Load()),
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
