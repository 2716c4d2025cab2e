package client

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Pulling (PULL_MESSAGE with long polling). The broker holds a pull that
// finds nothing new for LongPollTimeout and answers as soon as a message
// arrives, so the request's own timeout is LongPollTimeout plus
// RequestTimeout. The answer's nextBeginOffset is where the next pull
// starts, whatever the code: SUCCESS carries messages; PULL_NOT_FOUND (no
// new message) and PULL_RETRY_IMMEDIATELY (none matched the tags) carry
// none; PULL_OFFSET_MOVED means the offset was out of the queue's range
// (retention removed messages, or the queue is shorter than the offset)
// and nextBeginOffset is the nearest valid one, or that the group's
// offsets were reset and nextBeginOffset is the new one. Other answers and
// transport failures are retried after pullErrorDelay.

// Pull request sysFlag bits (RocketMQ's PullSysFlag).
const (
	pullFlagCommitOffset = 1 << 0
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2
)

// pullErrorDelay is the pause after a failed pull (RocketMQ waits 3 s).
const pullErrorDelay = time.Second

// pullResult is a pull's answer.
type pullResult struct {
	code int16
	next int64
	msgs []message.Ext
	// minOff and maxOff are the queue's bounds (-1 when not answered).
	minOff, maxOff int64
}

// inRange reports whether offset was a position of the queue: a pull from
// there answered PULL_OFFSET_MOVED was moved by a reset, not because the
// queue lacks it (retention, or a queue shorter than the offset).
func (r *pullResult) inRange(offset int64) bool {
	return r.minOff >= 0 && r.maxOff >= 0 && offset >= r.minOff && offset <= r.maxOff
}

// pullLoop pulls q until it is dropped or the consumer closes, and hands
// the messages on: to handler goroutines (concurrent) or to q's buffer
// (orderly).
//
// A failed pull is logged as a warning when the queue's pulls start to
// fail, as a debug record while they go on failing (one a second, for as
// long as a broker is down), and once more when a pull works again.
func (pc *PushConsumer) pullLoop(q *processQueue) {
	failing := false
	for q.ctx.Err() == nil {
		if !q.waitRoom(pc.flowLimits()) {
			return
		}
		offset := q.nextOffset()
		res, err := pc.pull(q, offset)
		if err != nil {
			if q.ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			if failing {
				pc.log.Debug("client: pull still failing", "queue", q.mq, "offset", offset, "err", err)
			} else {
				pc.log.Warn("client: pull failed", "queue", q.mq, "offset", offset, "err", err)
				failing = true
			}
			if !sleepCtx(q.ctx, pullErrorDelay) {
				return
			}
			continue
		}
		if failing {
			pc.log.Info("client: pull works again", "queue", q.mq, "offset", offset)
			failing = false
		}
		if res.code == remoting.RespPullOffsetMoved {
			pc.log.Warn("client: pull offset moved", "queue", q.mq, "from", offset, "to", res.next)
			if res.inRange(offset) {
				// Moved from a position the queue has: the group's
				// offsets were reset (RocketMQ's OFFSET_RESET). What an
				// orderly queue buffered and has not handed over is from
				// before the reset: skipped reset forward, pulled again
				// from the new position otherwise (in order).
				q.dropBuffered()
			}
		}
		ds := pc.accept(q, res.msgs)
		q.add(ds, res.next, pc.opts.Orderly)
		if !pc.opts.Orderly && !pc.dispatch(q, ds) {
			return
		}
	}
}

// pull sends one PULL_MESSAGE for q at offset. A response code other than
// SUCCESS, PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY and PULL_OFFSET_MOVED is
// a *BrokerError.
func (pc *PushConsumer) pull(q *processQueue, offset int64) (*pullResult, error) {
	const op = "PULL_MESSAGE"
	addr, err := pc.c.brokerAddr(q.ctx, q.mq.BrokerName, q.mq.Topic)
	if err != nil {
		return nil, err
	}
	sysFlag := pullFlagSuspend | pullFlagSubscription
	commit, _ := q.ackOffset()
	// Orderly consumers commit only through persist, serialized with the
	// commit made when a queue is handed over, so that a late pull cannot
	// move the next owner's start back. SyncCommit consumers likewise
	// (commitQueues orders a queue's commits): this offset is read now,
	// and the call in flight may commit a later one, durably, before the
	// pull arrives; the broker would then take the older one back.
	if pc.opts.Model == Clustering && !pc.opts.Orderly && !pc.opts.SyncCommit && commit > 0 {
		sysFlag |= pullFlagCommitOffset
	}
	req := newRequest(remoting.ReqPullMessage, map[string]string{
		"consumerGroup": pc.opts.Group, "topic": q.mq.Topic, "queueId": strconv.Itoa(int(q.mq.QueueID)),
		"queueOffset": strconv.FormatInt(offset, 10), "maxMsgNums": strconv.Itoa(pc.opts.PullBatchSize),
		"sysFlag": strconv.Itoa(sysFlag), "commitOffset": strconv.FormatInt(commit, 10),
		"suspendTimeoutMillis": strconv.FormatInt(pc.opts.LongPollTimeout.Milliseconds(), 10),
		"subscription":         q.sub.expr, "subVersion": strconv.FormatInt(q.sub.version, 10), "expressionType": q.sub.data.ExpressionType,
	})
	resp, err := pc.c.invokeFor(q.ctx, addr, op, req, pc.opts.LongPollTimeout+pc.c.opts.RequestTimeout)
	if err != nil {
		return nil, err
	}
	switch resp.Code {
	case remoting.RespSuccess, remoting.RespPullNotFound, remoting.RespPullRetryImmediately, remoting.RespPullOffsetMoved:
	default:
		return nil, &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	res := &pullResult{code: resp.Code, minOff: -1, maxOff: -1}
	if v, err := strconv.ParseInt(resp.Ext("minOffset"), 10, 64); err == nil {
		res.minOff = v
	}
	if v, err := strconv.ParseInt(resp.Ext("maxOffset"), 10, 64); err == nil {
		res.maxOff = v
	}
	if res.next, err = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64); err != nil || res.next < 0 {
		return nil, fmt.Errorf("client: %s from %s: bad nextBeginOffset %q", op, addr, resp.Ext("nextBeginOffset"))
	}
	if resp.Code == remoting.RespSuccess {
		if res.msgs, err = message.DecodeAll(resp.Body); err != nil {
			return nil, fmt.Errorf("client: %s from %s: %w", op, addr, err)
		}
	}
	return res, nil
}

// accept converts pulled records into deliveries, dropping those whose tag
// the subscription does not match (the broker filters by tag hash code
// only). A message of the retry topic gets its original topic back.
func (pc *PushConsumer) accept(q *processQueue, exts []message.Ext) []*delivered {
	out := make([]*delivered, 0, len(exts))
	for i := range exts {
		m := newMessageExt(&exts[i], pc.log)
		if !q.sub.matches(m.Tags) {
			continue
		}
		d := &delivered{m: m, queueOffset: m.QueueOffset, commitLogOffset: m.CommitLogOffset,
			msgID: m.MsgID, originTopic: m.Topic, reconsumeTimes: m.ReconsumeTimes,
			props: exts[i].Properties}
		if q.sub.retry {
			if t := m.SystemProperties[message.PropertyRetryTopic]; t != "" {
				d.originTopic, m.Topic = t, t
			}
		}
		out = append(out, d)
	}
	return out
}
