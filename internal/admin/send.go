package admin

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// producerGroup is the group administrative sends name (RocketMQ's
// MixAll.CLIENT_INNER_PRODUCER_GROUP).
const producerGroup = "CLIENT_INNER_PRODUCER"

// SendRequest is a message to send.
type SendRequest struct {
	Topic string
	// Tag is the message's tag (TAGS); empty for none.
	Tag string
	// Keys are its user keys (KEYS, space-separated on the wire); a key
	// may not contain a space.
	Keys []string
	Body []byte
	// DelayLevel delays delivery by the broker's level n (DELAY); 0 sends
	// at once.
	DelayLevel int
	// Properties are user properties (what a SQL92 selector reads); a
	// system property's name (message.IsReservedProperty) is refused.
	Properties map[string]string
}

// SendResult is the broker's answer to a send.
type SendResult struct {
	// MsgID is the message's UNIQ_KEY, the id clients show.
	MsgID string `json:"msgId"`
	// OffsetMsgID is the broker's offset message id (store host and
	// commit-log offset); ViewMessage takes it.
	OffsetMsgID string `json:"offsetMsgId"`
	Topic       string `json:"topic"`
	QueueID     int32  `json:"queueId"`
	QueueOffset int64  `json:"queueOffset"`
}

// Send sends one message with a fresh UNIQ_KEY and waits for it to be
// stored.
func (c *Client) Send(ctx context.Context, r SendRequest) (SendResult, error) {
	if err := message.ValidateTopic(r.Topic); err != nil {
		return SendResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(r.Body) == 0 {
		return SendResult{}, fmt.Errorf("%w: empty body (RocketMQ's clients refuse one too)", ErrInvalid)
	}
	if r.DelayLevel < 0 {
		return SendResult{}, fmt.Errorf("%w: delay level %d is negative", ErrInvalid, r.DelayLevel)
	}
	props := message.Properties{
		message.PropertyUniqKey:        c.newUniqKey(),
		message.PropertyWaitStoreMsgOK: "true",
	}
	for name, v := range r.Properties {
		switch {
		case strings.TrimSpace(name) == "" || strings.TrimSpace(v) == "":
			return SendResult{}, fmt.Errorf("%w: property %q: an empty or blank name or value (RocketMQ's putUserProperty refuses one)", ErrInvalid, name)
		case strings.ContainsAny(name, "\x01\x02") || strings.ContainsAny(v, "\x01\x02"):
			return SendResult{}, fmt.Errorf("%w: property %q contains a control separator", ErrInvalid, name)
		case message.IsReservedProperty(name):
			return SendResult{}, fmt.Errorf("%w: property %s is a system property", ErrInvalid, name)
		}
		props[name] = v
	}
	if r.Tag != "" {
		props[message.PropertyTags] = r.Tag
	}
	var keys []string
	for _, k := range r.Keys {
		if strings.ContainsAny(k, " \x01\x02") {
			return SendResult{}, fmt.Errorf("%w: key %q contains a space or a control separator", ErrInvalid, k)
		}
		if k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		props[message.PropertyKeys] = strings.Join(keys, message.KeySeparator)
	}
	if r.DelayLevel > 0 {
		props[message.PropertyDelayTimeLevel] = strconv.Itoa(r.DelayLevel)
	}
	return c.send(ctx, r.Topic, props.Encode(), 0, r.Body)
}

// send stores body with the given wire-form properties in topic.
func (c *Client) send(ctx context.Context, topic, props string, flag int32, body []byte) (SendResult, error) {
	// SendMessageRequestHeaderV2: a producerGroup, b topic, c defaultTopic,
	// d defaultTopicQueueNums, e queueId (-1: the broker picks), f sysFlag,
	// g bornTimestamp, h flag, i properties, j reconsumeTimes, k unitMode,
	// m batch.
	resp, err := c.call(ctx, "SEND_MESSAGE_V2", remoting.ReqSendMessageV2, map[string]string{
		"a": producerGroup, "b": topic, "c": "TBW102", "d": "4", "e": "-1", "f": "0",
		"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": strconv.Itoa(int(flag)), "i": props,
		"j": "0", "k": "false", "m": "false",
	}, body)
	if err != nil {
		return SendResult{}, err
	}
	res := SendResult{OffsetMsgID: resp.Ext("msgId"), Topic: topic}
	res.MsgID, _ = message.Property(props, message.PropertyUniqKey)
	qid, _ := strconv.ParseInt(resp.Ext("queueId"), 10, 32)
	res.QueueID = int32(qid)
	res.QueueOffset, _ = strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
	return res, nil
}

// newUniqKey returns a message id in the form of RocketMQ's
// MessageClientIDSetter, for the address this connection comes from.
func (c *Client) newUniqKey() string {
	var ip net.IP
	if ta, ok := c.conn.LocalAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	return message.NewUniqIDs(ip).Next()
}
