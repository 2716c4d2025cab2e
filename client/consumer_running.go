package client

import (
	"context"
	"encoding/json"
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

// runningInfo is the consumer's state in the shape of RocketMQ's
// ConsumerRunningInfo as its clients write it: properties (the consumer's
// settings), subscriptionSet, and mqTable, each queue it holds (keyed by
// the MessageQueue object, as fastjson writes such a map) with its
// committed offset and the messages pulled and not yet acknowledged.
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
	sortQueuesOf(qs)
	for i, q := range qs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, q.mq)
		b = append(b, ':')
		b = appendJSON(b, q.info())
	}
	return append(b, `}}`...)
}

// processQueueInfo is RocketMQ's ProcessQueueInfo, as far as this client
// keeps it.
type processQueueInfo struct {
	CommitOffset       int64 `json:"commitOffset"`
	CachedMsgMinOffset int64 `json:"cachedMsgMinOffset"`
	CachedMsgMaxOffset int64 `json:"cachedMsgMaxOffset"`
	CachedMsgCount     int   `json:"cachedMsgCount"`
	CachedMsgSizeInMiB int64 `json:"cachedMsgSizeInMiB"`
	Locked             bool  `json:"locked"`
	LastLockTimestamp  int64 `json:"lastLockTimestamp"`
	Droped             bool  `json:"droped"`
}

// info describes q: its last committed offset (-1 for none) and the
// messages pulled and not yet acknowledged.
func (q *processQueue) info() processQueueInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	in := processQueueInfo{CommitOffset: q.persisted, Locked: q.locked, Droped: q.dropped}
	if q.locked {
		in.LastLockTimestamp = q.lockedAt.UnixMilli()
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
	in.CachedMsgSizeInMiB = size >> 20
	return in
}

// sortQueuesOf orders process queues as sortQueues orders queues.
func sortQueuesOf(qs []*processQueue) {
	mqs := make([]MessageQueue, len(qs))
	byMQ := make(map[MessageQueue]*processQueue, len(qs))
	for i, q := range qs {
		mqs[i], byMQ[q.mq] = q.mq, q
	}
	sortQueues(mqs)
	for i, mq := range mqs {
		qs[i] = byMQ[mq]
	}
}

// appendJSON appends v as JSON; v is one of this file's plain types, which
// always encode.
func appendJSON(b []byte, v any) []byte {
	j, _ := json.Marshal(v)
	return append(b, j...)
}
