package admin

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// maxQuery is how many messages a key query asks for (the broker's cap).
const maxQuery = 64

// QueryByKey returns the messages of topic whose KEYS include key, newest
// first; none is not an error. The broker indexes keys shortly after it
// stores a message, so a message just sent may not be found yet.
func (c *Client) QueryByKey(ctx context.Context, topic, key string) ([]Message, error) {
	return c.query(ctx, topic, key, false)
}

// QueryByUniqKey returns the messages of topic whose UNIQ_KEY (the id a
// producer shows) is id: the original and any retry or resent copies.
func (c *Client) QueryByUniqKey(ctx context.Context, topic, id string) ([]Message, error) {
	return c.query(ctx, topic, id, true)
}

func (c *Client) query(ctx context.Context, topic, key string, unique bool) ([]Message, error) {
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", ErrInvalid)
	}
	ext := map[string]string{"topic": topic, "key": key, "maxNum": strconv.Itoa(maxQuery),
		"beginTimestamp": "0", "endTimestamp": strconv.FormatInt(math.MaxInt64, 10)}
	if unique {
		ext["_UNIQUE_KEY_QUERY"] = "true" // MixAll.UNIQUE_MSG_QUERY_FLAG
	}
	resp, err := c.invoke(ctx, "QUERY_MESSAGE", remoting.ReqQueryMessage, ext, nil)
	switch {
	case err != nil:
		return nil, err
	case resp.Code == remoting.RespQueryNotFound:
		return nil, nil
	case resp.Code != remoting.RespSuccess:
		return nil, brokerError("QUERY_MESSAGE", resp)
	}
	msgs, err := decodeMessages(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("QUERY_MESSAGE: bad answer: %w", err)
	}
	// Brokers list oldest first (RocketMQ's order); the newest is wanted.
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(b.raw.CommitLogOffset, a.raw.CommitLogOffset) })
	return msgs, nil
}

// ViewMessage returns the message with an offset message id (as
// SendResult.OffsetMsgID and Message.OffsetMsgID give it). The id's store
// host is not checked: the client asks the broker it is connected to.
func (c *Client) ViewMessage(ctx context.Context, offsetMsgID string) (Message, error) {
	_, off, err := message.ParseOffsetMsgID(offsetMsgID)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	resp, err := c.call(ctx, "VIEW_MESSAGE_BY_ID", remoting.ReqViewMessageByID,
		map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
	if err != nil {
		return Message{}, err
	}
	msgs, err := decodeMessages(resp.Body)
	if err != nil || len(msgs) != 1 {
		return Message{}, fmt.Errorf("VIEW_MESSAGE_BY_ID: bad answer (%d messages): %v", len(msgs), err)
	}
	return msgs[0], nil
}
