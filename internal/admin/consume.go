package admin

import (
	"context"
	"fmt"
	"strconv"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// pullSubscriptionFlag is PullSysFlag's FLAG_SUBSCRIPTION: the request
// carries its own subscription expression.
const pullSubscriptionFlag = 1 << 2

// PullResult is the answer to one pull.
type PullResult struct {
	// Messages are the messages found, in queue order (none when the
	// queue holds nothing at or after the offset).
	Messages []Message
	// NextBeginOffset is where the next pull should start.
	NextBeginOffset int64
	// MinOffset and MaxOffset are the queue's bounds.
	MinOffset, MaxOffset int64
	// Moved reports that the offset was outside the queue
	// (PULL_OFFSET_MOVED); NextBeginOffset is the broker's suggestion.
	Moved bool
}

// Selector chooses the messages a pull returns: a tag expression ("*",
// "a || b"), or a SQL92 expression over their properties (the broker
// needs broker.enablePropertyFilter). The zero Selector takes every
// message.
type Selector struct {
	// SQL92 makes Expression a SQL92 expression; else it is a tag one.
	SQL92 bool
	// Expression is the selector; "" is "*" for a tag selector.
	Expression string
}

// Pull reads up to max messages (the broker caps it at 32) of every tag
// from one queue, starting at offset, without waiting for new ones. It
// commits no offset: see CommitOffset.
func (c *Client) Pull(ctx context.Context, group, topic string, qid int32, offset int64, max int) (PullResult, error) {
	return c.PullSelect(ctx, group, topic, qid, offset, max, Selector{})
}

// PullSelect is Pull of the messages sel chooses. A pull whose scan found
// none of them moves NextBeginOffset past the scan: pull again from there.
func (c *Client) PullSelect(ctx context.Context, group, topic string, qid int32, offset int64, max int, sel Selector) (PullResult, error) {
	if group == "" {
		group = toolsGroup
	}
	expr, typ := sel.Expression, "TAG"
	if sel.SQL92 {
		typ = "SQL92"
	} else if expr == "" {
		expr = "*"
	}
	resp, err := c.invoke(ctx, "PULL_MESSAGE", remoting.ReqPullMessage, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(qid)),
		"queueOffset": strconv.FormatInt(offset, 10), "maxMsgNums": strconv.Itoa(max),
		"sysFlag": strconv.Itoa(pullSubscriptionFlag), "commitOffset": "0", "suspendTimeoutMillis": "0",
		"subscription": expr, "subVersion": "0", "expressionType": typ,
	}, nil)
	if err != nil {
		return PullResult{}, err
	}
	var r PullResult
	switch resp.Code {
	case remoting.RespSuccess:
		if r.Messages, err = decodeMessages(resp.Body); err != nil {
			return PullResult{}, fmt.Errorf("PULL_MESSAGE: bad answer: %w", err)
		}
	case remoting.RespPullNotFound, remoting.RespPullRetryImmediately:
	case remoting.RespPullOffsetMoved:
		r.Moved = true
	default:
		return PullResult{}, brokerError("PULL_MESSAGE", resp)
	}
	r.NextBeginOffset, _ = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
	r.MinOffset, _ = strconv.ParseInt(resp.Ext("minOffset"), 10, 64)
	r.MaxOffset, _ = strconv.ParseInt(resp.Ext("maxOffset"), 10, 64)
	return r, nil
}

// QueryOffset returns a group's committed offset for a queue; ok is false
// when the group has committed none there.
func (c *Client) QueryOffset(ctx context.Context, group, topic string, qid int32) (offset int64, ok bool, err error) {
	return c.queryOffset(ctx, group, topic, qid, false)
}

// StartOffset returns where a RocketMQ consumer of group starts on a
// queue: its committed offset, or 0 when the group has none and the
// broker says a new group reads the queue from its start (a queue that
// lost nothing to retention, its first message still in memory); ok is
// false otherwise, and the consumer's consumeFromWhere decides.
func (c *Client) StartOffset(ctx context.Context, group, topic string, qid int32) (offset int64, ok bool, err error) {
	return c.queryOffset(ctx, group, topic, qid, true)
}

func (c *Client) queryOffset(ctx context.Context, group, topic string, qid int32, zeroIfNotFound bool) (offset int64, ok bool, err error) {
	resp, err := c.invoke(ctx, "QUERY_CONSUMER_OFFSET", remoting.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(qid)),
		"setZeroIfNotFound": strconv.FormatBool(zeroIfNotFound),
	}, nil)
	switch {
	case err != nil:
		return 0, false, err
	case resp.Code == remoting.RespQueryNotFound:
		return 0, false, nil
	case resp.Code != remoting.RespSuccess:
		return 0, false, brokerError("QUERY_CONSUMER_OFFSET", resp)
	}
	offset, err = strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("QUERY_CONSUMER_OFFSET: bad offset %q", resp.Ext("offset"))
	}
	return offset, true, nil
}

// CommitOffset stores a group's offset for a queue (the offset of the next
// message it will consume).
func (c *Client) CommitOffset(ctx context.Context, group, topic string, qid int32, offset int64) error {
	_, err := c.call(ctx, "UPDATE_CONSUMER_OFFSET", remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(qid)), "commitOffset": strconv.FormatInt(offset, 10),
	}, nil)
	return err
}

// QueueBounds returns a queue's min offset (its oldest message) and max
// offset (one past its newest).
func (c *Client) QueueBounds(ctx context.Context, topic string, qid int32) (minOff, maxOff int64, err error) {
	ext := func() map[string]string { return map[string]string{"topic": topic, "queueId": strconv.Itoa(int(qid))} }
	resp, err := c.call(ctx, "GET_MIN_OFFSET", remoting.ReqGetMinOffset, ext(), nil)
	if err != nil {
		return 0, 0, err
	}
	minOff, _ = strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if resp, err = c.call(ctx, "GET_MAX_OFFSET", remoting.ReqGetMaxOffset, ext(), nil); err != nil {
		return 0, 0, err
	}
	maxOff, _ = strconv.ParseInt(resp.Ext("offset"), 10, 64)
	return minOff, maxOff, nil
}
