package client

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// handleRunningInfo answers GET_CONSUMER_RUNNING_INFO (an administration
// tool's, forwarded by the broker: mqadmin consumerRunningInfo, `halfback
// group running`) with the named group's consumer's running state.
func (s *consumerSet) handleRunningInfo(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("consumerGroup")
	pc := s.get(group)
	if pc == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "The Consumer Group <"+group+"> not exist in this consumer")
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = pc.runningInfo()
	return resp
}

// handleConsumerStatus answers GET_CONSUMER_STATUS_FROM_CLIENT (the
// broker's, for an administration tool's INVOKE_BROKER_TO_GET_CONSUMER_STATUS:
// mqadmin getConsumerStatus, `halfback group status`) with the offset the
// named group's consumer would commit now for each queue of the topic it
// holds, as RocketMQ's GetConsumerStatusBody.messageQueueTable (keyed by
// MessageQueue objects, as fastjson writes such a map).
func (s *consumerSet) handleConsumerStatus(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group, topic := req.Ext("group"), req.Ext("topic")
	pc := s.get(group)
	if pc == nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "The Consumer Group <"+group+"> not exist in this consumer")
	}
	qs := pc.processQueues()
	slices.SortFunc(qs, func(a, b *processQueue) int { return compareQueues(a.mq, b.mq) })
	b := []byte(`{"messageQueueTable":{`)
	n := 0
	for _, q := range qs {
		off, ok := q.ackOffset()
		if q.mq.Topic != topic || !ok {
			continue
		}
		if n++; n > 1 {
			b = append(b, ',')
		}
		b = appendJSON(b, q.mq)
		b = append(b, ':')
		b = strconv.AppendInt(b, off, 10)
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = append(b, `}}`...)
	return resp
}

// runningInfo is the consumer's state in the shape of RocketMQ's
// ConsumerRunningInfo as its clients write it: properties (the consumer's
// settings), subscriptionSet, and mqTable, each queue it holds (keyed by
// the MessageQueue object, as fastjson writes such a map) with the offset
// it would commit now, the messages pulled and not yet acknowledged, and
// when it was last pulled and consumed (see processQueue.info).
func (pc *PushConsumer) runningInfo() []byte {
	o := pc.opts
	props := map[string]string{
		"PROP_CONSUME_TYPE":             "CONSUME_PASSIVELY",
		"PROP_CONSUMEORDERLY":           strconv.FormatBool(o.Orderly),
		"PROP_CLIENT_VERSION":           "halfback",
		"PROP_CONSUMER_START_TIMESTAMP": strconv.FormatInt(pc.started.UnixMilli(), 10),
		"PROP_NAMESERVER_ADDR":          strings.Join(pc.c.opts.NamesrvAddrs, ";"),
		"messageModel":                  o.Model.String(),
		"consumeFromWhere":              o.FromWhere.String(),
		"maxReconsumeTimes":             strconv.Itoa(o.MaxReconsumeTimes),
		"pullBatchSize":                 strconv.Itoa(o.PullBatchSize),
		"consumeMessageBatchMaxSize":    strconv.Itoa(o.ConsumeBatchSize),
		"consumeThreadMax":              strconv.Itoa(o.Concurrency),
	}
	var subs []subscriptionData
	for _, s := range pc.subscriptions() {
		subs = append(subs, s.data)
	}
	b := []byte(`{"properties":`)
	b = appendJSON(b, props)
	b = append(b, `,"subscriptionSet":`...)
	b = appendJSON(b, subs)
	b = append(b, `,"mqTable":{`...)
	qs := pc.processQueues()
	slices.SortFunc(qs, func(a, b *processQueue) int { return compareQueues(a.mq, b.mq) })
	locking := o.Orderly && o.Model == Clustering
	for i, q := range qs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, q.mq)
		b = append(b, ':')
		b = appendJSON(b, q.info(locking))
	}
	return append(b, `}}`...)
}

// processQueueInfo is RocketMQ's ProcessQueueInfo, as far as this client
// keeps it.
type processQueueInfo struct {
	CommitOffset         int64 `json:"commitOffset"`
	CachedMsgMinOffset   int64 `json:"cachedMsgMinOffset"`
	CachedMsgMaxOffset   int64 `json:"cachedMsgMaxOffset"`
	CachedMsgCount       int   `json:"cachedMsgCount"`
	CachedMsgSizeInMiB   int64 `json:"cachedMsgSizeInMiB"`
	Locked               bool  `json:"locked"`
	LastLockTimestamp    int64 `json:"lastLockTimestamp"`
	Droped               bool  `json:"droped"`
	LastPullTimestamp    int64 `json:"lastPullTimestamp"`
	LastConsumeTimestamp int64 `json:"lastConsumeTimestamp"`
}

// info describes q: the offset it would commit now (-1 before it is
// known; RocketMQ's clients report their offset store's in-memory offset,
// not the last one the broker stored), the messages pulled and not yet
// acknowledged, when it was last pulled and consumed, and, for a queue
// consumed under a lock (locking: orderly clustering), the lock.
func (q *processQueue) info(locking bool) processQueueInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	in := processQueueInfo{CommitOffset: q.persisted, Droped: q.dropped,
		LastPullTimestamp: q.lastPull.UnixMilli(), LastConsumeTimestamp: q.lastConsume.UnixMilli()}
	if locking && q.locked {
		in.Locked, in.LastLockTimestamp = true, q.lockedAt.UnixMilli()
	}
	var size int64
	for off, d := range q.inflight {
		if in.CachedMsgCount == 0 || off < in.CachedMsgMinOffset {
			in.CachedMsgMinOffset = off
		}
		in.CachedMsgMaxOffset = max(in.CachedMsgMaxOffset, off)
		in.CachedMsgCount++
		size += int64(len(d.m.Body))
	}
	if off, ok := q.ackOffsetLocked(); ok {
		in.CommitOffset = off
	}
	in.CachedMsgSizeInMiB = size >> 20
	return in
}

// appendJSON appends v as JSON; v is one of this file's plain types, which
// always encode.
func appendJSON(b []byte, v any) []byte {
	j, _ := json.Marshal(v)
	return append(b, j...)
}
