package broker

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Resetting a group's offsets (INVOKE_BROKER_TO_RESET_OFFSET: mqadmin
// resetOffsetByTime, `halfback group reset`), as RocketMQ 5 does it on the
// broker (useServerSideResetOffset, its default): the new offsets are
// committed at once, and each queue's is also kept as pending until a
// pull of that queue comes. That pull is answered PULL_OFFSET_MOVED with
// the new offset as nextBeginOffset, which every client follows; until
// then the group's commits of that queue are ignored, so a consumer that
// is online does not overwrite the reset with where it was. A group
// with no consumer online starts from the new offsets.

// assignReset commits offs (queue id to offset) for group on topic and
// keeps them pending, then writes the offsets file.
func (t *offsetTable) assignReset(group, topic string, offs map[int32]int64) error {
	t.mu.Lock()
	if t.broken != nil {
		t.mu.Unlock()
		return fmt.Errorf("%w: %v", errOffsetsUnavailable, t.broken)
	}
	k := offsetKey{topic, group}
	if t.table[k] == nil {
		t.table[k] = make(map[int32]int64, len(offs))
	}
	if t.reset[k] == nil {
		t.reset[k] = make(map[int32]int64, len(offs))
	}
	maps.Copy(t.table[k], offs)
	maps.Copy(t.reset[k], offs)
	t.dirty = true
	t.mu.Unlock()
	return t.persist()
}

// takeReset removes and returns the pending reset of a queue. It writes
// the offsets file when there was one, so that a restart does not move
// the queue back a second time.
func (t *offsetTable) takeReset(group, topic string, qid int32) (int64, bool, error) {
	t.mu.Lock()
	k := offsetKey{topic, group}
	off, ok := t.reset[k][qid]
	if ok {
		delete(t.reset[k], qid)
		if len(t.reset[k]) == 0 {
			delete(t.reset, k)
		}
		t.dirty = true
	}
	t.mu.Unlock()
	if !ok {
		return 0, false, nil
	}
	return off, true, t.persist()
}

// resetPending reports whether a queue's reset waits for a pull.
func (t *offsetTable) resetPending(group, topic string, qid int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.reset[offsetKey{topic, group}][qid]
	return ok
}

// handleResetOffset is INVOKE_BROKER_TO_RESET_OFFSET (ResetOffsetRequestHeader:
// topic, group, timestamp in ms, isForce, and RocketMQ 5's queueId and
// offset). Every readable queue of topic, or only queueId when it is set,
// goes to the first offset stored at or after timestamp (-1: the queue's
// end), or to offset for one queue; isForce is ignored, as RocketMQ 5
// does. The group must be known to the broker: consumers online, or
// offsets committed. The answer's body is ResetOffsetBody (the new
// offsets, fastjson).
func (b *Broker) handleResetOffset(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	r := reqHeader{req: req}
	topic := r.str("topic", true)
	group := r.str("group", true)
	ts := r.i64("timestamp", true)
	qid := int32(-1)
	if req.Ext("queueId") != "" {
		qid = r.i32("queueId", false)
	}
	offset := int64(-1)
	if req.Ext("offset") != "" {
		offset = r.i64("offset", false)
	}
	if r.err != nil {
		return headerError(req, r.err)
	}
	if err := message.ValidateGroup(group); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the specified group is illegal: "+err.Error())
	}
	if err := message.ValidateTopic(topic); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the specified topic is illegal: "+err.Error())
	}
	tc, ok := b.topics.get(topic)
	if !ok {
		return remoting.NewResponse(req, remoting.RespTopicNotExist, "Topic "+topic+" does not exist")
	}
	if !b.groupKnown(group) {
		return remoting.NewResponse(req, remoting.RespSubscriptionGroupNotExist, "Group "+group+" does not exist")
	}
	if v, online := b.consumerGroupInfo(group); online && strings.EqualFold(v.MessageModel, "BROADCASTING") {
		// A pending reset would move whichever member pulls a queue first.
		return remoting.NewResponse(req, remoting.RespSystemError, "Group "+group+
			" consumes in BROADCASTING mode: its members keep their own offsets")
	}
	queues := make([]int32, 0, tc.ReadQueueNums)
	switch {
	case qid >= int32(tc.ReadQueueNums):
		return remoting.NewResponse(req, remoting.RespSystemError,
			fmt.Sprintf("queueId %d is past topic %s's %d queues", qid, topic, tc.ReadQueueNums))
	case qid >= 0:
		queues = append(queues, qid)
	case qid == -1:
		for q := range int32(tc.ReadQueueNums) {
			queues = append(queues, q)
		}
	default:
		return remoting.NewResponse(req, remoting.RespSystemError, fmt.Sprintf("queueId %d is not a queue id", qid))
	}
	if offset != -1 && qid < 0 {
		return remoting.NewResponse(req, remoting.RespSystemError, "an offset resets one queue: set queueId")
	}
	if ts < -1 {
		return remoting.NewResponse(req, remoting.RespSystemError, fmt.Sprintf("timestamp %d is not a time (ms) or -1", ts))
	}
	if b.opts.ClientSideResetOffset && (qid >= 0 || offset != -1) {
		return remoting.NewResponse(req, remoting.RespSystemError,
			"a reset of one queue to an offset is a server-side reset; this broker resets through its clients (broker.useServerSideResetOffset is false)")
	}
	offs := make(map[int32]int64, len(queues))
	for _, q := range queues {
		minOff, maxOff := b.store.QueueBounds(topic, q)
		switch {
		case offset != -1:
			if offset < minOff || offset > maxOff {
				return remoting.NewResponse(req, remoting.RespSystemError,
					fmt.Sprintf("Target offset %d not in consume queue range [%d-%d]", offset, minOff, maxOff))
			}
			offs[q] = offset
		case ts == -1:
			offs[q] = maxOff
		default:
			off, err := b.store.OffsetForTimestamp(topic, q, ts)
			if err != nil {
				return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
			}
			offs[q] = off
		}
	}
	if b.opts.ClientSideResetOffset {
		return b.resetThroughClients(req, conn, group, topic, ts, offs)
	}
	if err := b.offsetTable().assignReset(group, topic, offs); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	b.pulls.wakeGroup(topic, group) // long polls learn of it now, not at their timeout
	b.opts.Logger.Info("consumer offsets reset", "remote", conn.RemoteAddr(), "group", group, "topic", topic,
		"timestamp", ts, "offsets", offs)
	body, err := b.resetOffsetBody(topic, offs)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// resetOffsetBody is ResetOffsetBody: offs (queue id to offset) of topic
// as fastjson writes a map keyed by MessageQueue.
func (b *Broker) resetOffsetBody(topic string, offs map[int32]int64) ([]byte, error) {
	entries := make([]mqEntry, 0, len(offs))
	for _, q := range slices.Sorted(maps.Keys(offs)) {
		entries = append(entries, mqEntry{mqKey{BrokerName: b.opts.BrokerName, QueueID: q, Topic: topic}, offs[q]})
	}
	return encodeOffsetTable("{", entries, "")
}

// resetThroughClients is the reset of Options.ClientSideResetOffset, as
// RocketMQ's Broker2Client.resetOffset: without isForce a queue whose
// committed offset is below its target keeps it (a reset only moves
// back); the new offsets go to every online consumer of the group
// (RESET_CONSUMER_CLIENT_OFFSET, oneway, ext topic, group, timestamp,
// isForce; body ResetOffsetBody), each of which moves the queues it owns
// and commits them. The broker commits nothing. No consumer online:
// CONSUMER_NOT_ONLINE.
func (b *Broker) resetThroughClients(req *remoting.Command, conn *remoting.Conn, group, topic string, ts int64, offs map[int32]int64) *remoting.Command {
	force, err := strconv.ParseBool(cmp.Or(req.Ext("isForce"), "false"))
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "isForce "+strconv.Quote(req.Ext("isForce"))+" is not true or false")
	}
	if !force {
		committed := b.groupOffsets(group)[topic]
		for q, off := range offs {
			if c, ok := committed[q]; ok && c < off {
				offs[q] = c
			}
		}
	}
	var conns []*remoting.Conn
	for _, m := range b.groupTable().consumerMembers(group) {
		conns = append(conns, m.conn)
	}
	if len(conns) == 0 {
		return remoting.NewResponse(req, remoting.RespConsumerNotOnline,
			fmt.Sprintf("Consumer not online, so can not reset offset, Group: %s Topic: %s Timestamp: %d", group, topic, ts))
	}
	body, err := b.resetOffsetBody(topic, offs)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	b.groupTable().sendOneway(conns, func() *remoting.Command {
		// isForce too: a Java consumer's ResetOffsetRequestHeader requires
		// it (@CFNotNull), and drops a push without it.
		r := remoting.NewRequest(remoting.ReqResetConsumerClientOffset, map[string]string{"topic": topic, "group": group,
			"timestamp": strconv.FormatInt(ts, 10), "isForce": strconv.FormatBool(force)})
		r.Body = body
		return r
	}, "reset consumer client offset", group, b.opts.Logger.Warn)
	b.opts.Logger.Info("consumer offsets reset through the group's consumers", "remote", conn.RemoteAddr(), "group", group,
		"topic", topic, "timestamp", ts, "offsets", offs, "consumers", len(conns))
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// groupKnown reports whether group has consumers online or has committed
// offsets.
func (b *Broker) groupKnown(group string) bool {
	if v, online := b.consumerGroupInfo(group); online && len(v.ClientIDs) > 0 {
		return true
	}
	return len(b.groupOffsets(group)) > 0
}

// resetPull answers a pull of a queue whose offsets were reset and that
// no pull has been told yet: PULL_OFFSET_MOVED to the reset offset
// (RocketMQ's OFFSET_RESET status), unless the pull asks from there and
// holds nothing below it (its commitOffset, which clients send with or
// without the commit flag, is there too: a consumer that started after
// the reset, from the committed offset): that one goes on, the reset
// told. A consumer whose pulls are at the reset offset but whose handler
// is behind (its buffer, reset to the end) is moved, so that it drops
// what the reset skips. took reports a reset taken either way (the
// pull's commitOffset predates it); resp is nil but to move it.
func (b *Broker) resetPull(req *remoting.Command, pr pullRequest) (resp *remoting.Command, took bool) {
	off, ok, err := b.offsetTable().takeReset(pr.group, pr.topic, pr.queueID)
	if !ok {
		return nil, false
	}
	if err != nil {
		b.opts.Logger.Warn("offsets file not written after a reset reached its queue; a restart may move it back again",
			"group", pr.group, "topic", pr.topic, "queue", pr.queueID, "err", err)
	}
	if pr.offset == off && pr.commitOffset >= off {
		return nil, true
	}
	minOff, maxOff := b.store.QueueBounds(pr.topic, pr.queueID)
	resp = remoting.NewResponse(req, remoting.RespPullOffsetMoved, "OFFSET_RESET")
	setPullOffsets(resp, off, minOff, maxOff)
	b.opts.Logger.Info("pull told of an offset reset", "group", pr.group, "topic", pr.topic, "queue", pr.queueID,
		"from", pr.offset, "to", off)
	return resp, true
}
