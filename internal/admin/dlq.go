package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Topic prefixes of a group's retry and dead-letter topics (RocketMQ's
// MixAll.RETRY_GROUP_TOPIC_PREFIX and DLQ_GROUP_TOPIC_PREFIX).
const (
	RetryTopicPrefix = "%RETRY%"
	DLQTopicPrefix   = "%DLQ%"
)

// brokerProperties are the properties a broker adds on the way to the
// dead-letter queue (or a delayed or transactional detour); a resent
// message goes without them.
var brokerProperties = []string{
	message.PropertyRetryTopic, message.PropertyDelayTimeLevel, message.PropertyRealTopic,
	message.PropertyRealQueueID, message.PropertyMinOffset, message.PropertyMaxOffset,
	message.PropertyConsumeStartTime, message.PropertyTransactionPrepared, message.PropertyTimerDeliverMS,
	message.PropertyTimerDelayMS, message.PropertyTimerDelaySec, message.PropertyCRC32,
}

// DLQMessages returns up to max messages of a group's dead-letter queue
// (%DLQ%<group>, queue 0), oldest first. A group with no dead-letter
// topic has none.
func (c *Client) DLQMessages(ctx context.Context, group string, max int) ([]Message, error) {
	topic := DLQTopicPrefix + group
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: group %q: %w", ErrInvalid, group, err)
	}
	minOff, _, err := c.QueueBounds(ctx, topic, 0)
	if err != nil {
		return nil, err
	}
	var out []Message
	for off := minOff; len(out) < max; {
		r, err := c.Pull(ctx, toolsGroup, topic, 0, off, max-len(out))
		var be *BrokerError
		if errors.As(err, &be) && be.Code == remoting.RespTopicNotExist {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.Messages...)
		if r.NextBeginOffset <= off || (len(r.Messages) == 0 && !r.Moved) {
			break
		}
		off = r.NextBeginOffset
	}
	return out, nil
}

// ResendDLQ sends a message of a group's dead-letter queue, named by its
// offset message id, back to the topic it was first sent to (its
// RETRY_TOPIC property). The copy keeps body, flag, tags, keys, UNIQ_KEY
// and every user property; it loses what the broker added on the way
// (RETRY_TOPIC, DELAY, ...) and starts again with no reconsume. The
// dead-letter message stays where it is. Every consumer group of that
// topic gets the copy, not only group (consumers that drop a message id
// they have seen drop it).
//
// Unless force, a dead letter already resent (a copy with its UNIQ_KEY
// stored in the topic after it) is refused with ErrAlreadyResent, so that
// an operator retrying after a timeout does not send it twice. The key
// index follows a store by a moment, so two resends within it both go.
func (c *Client) ResendDLQ(ctx context.Context, group, offsetMsgID string, force bool) (SendResult, error) {
	m, err := c.ViewMessage(ctx, offsetMsgID)
	if err != nil {
		return SendResult{}, err
	}
	if m.Topic != DLQTopicPrefix+group {
		return SendResult{}, fmt.Errorf("%w: %s is in topic %s, not %s", ErrNotDLQ, offsetMsgID, m.Topic, DLQTopicPrefix+group)
	}
	target := OriginalTopic(m)
	if target == "" {
		return SendResult{}, fmt.Errorf("%w: message %s has no RETRY_TOPIC property naming its original topic", ErrInvalid, offsetMsgID)
	}
	if id := m.MsgID; id != "" && !force {
		copies, err := c.QueryByUniqKey(ctx, target, id)
		if err != nil {
			return SendResult{}, err
		}
		for _, cp := range copies {
			if cp.StoreTimestamp >= m.StoreTimestamp && cp.Properties[message.PropertyRetryTopic] == "" {
				return SendResult{}, fmt.Errorf("%w: %s (message id %s) is already in %s as %s, stored after it",
					ErrAlreadyResent, offsetMsgID, id, target, cp.OffsetMsgID)
			}
		}
	}
	e := m.Ext()
	props := message.RemoveProperties(e.Properties, brokerProperties...)
	// Sent uncompressed (sysFlag 0): a body its producer compressed is
	// inflated first, so the copy reads the same.
	body, _, err := message.Inflate(e.Body, e.SysFlag)
	if err != nil {
		return SendResult{}, fmt.Errorf("%w: message %s: %v", ErrInvalid, offsetMsgID, err)
	}
	return c.send(ctx, target, props, e.Flag, body)
}

// OriginalTopic is the topic a dead-letter or retry message was first sent
// to (its RETRY_TOPIC property), or "" if it does not say.
func OriginalTopic(m Message) string {
	t := m.Properties[message.PropertyRetryTopic]
	if t == "" && !strings.HasPrefix(m.Topic, RetryTopicPrefix) && !strings.HasPrefix(m.Topic, DLQTopicPrefix) {
		t = m.Topic
	}
	return t
}
