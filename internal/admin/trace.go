package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
)

// TraceEvent is one step of a message's life in the broker, as
// MESSAGE_TRACE answers it: the broker's own lifecycle event. Its Time is
// zero for a consumed event (derived from the group's committed offset,
// which has no time).
type TraceEvent = lifecycle.Event

// MessageTrace is one message's events, oldest first, then its derived
// consumed events.
type MessageTrace = lifecycle.Message

// Trace returns the lifecycle of the messages q names: a message id
// (UNIQ_KEY), a message key or a trace id. limit <= 0 means the broker's
// default (100). No match is an empty result, not an error.
func (c *Client) Trace(ctx context.Context, q string, limit int) ([]MessageTrace, error) {
	if q == "" {
		return nil, fmt.Errorf("%w: empty id", ErrInvalid)
	}
	ext := map[string]string{"id": q}
	if limit > 0 {
		ext["limit"] = strconv.Itoa(limit)
	}
	resp, err := c.call(ctx, "MESSAGE_TRACE", remoting.ReqHalfbackMessageTrace, ext, nil)
	var be *BrokerError
	if errors.As(err, &be) && be.Code == remoting.RespQueryNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []MessageTrace
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("MESSAGE_TRACE: bad answer: %w", err)
	}
	return out, nil
}
