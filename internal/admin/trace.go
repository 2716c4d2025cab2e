package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// TraceEvent is one step of a message's life in the broker, as
// MESSAGE_TRACE answers it (broker/lifecycle.Event).
type TraceEvent struct {
	// MsgID is the message's id (UNIQ_KEY).
	MsgID string `json:"msgId"`
	// Time is when it happened; zero for a consumed event (derived from
	// the group's committed offset, which has no time).
	Time time.Time `json:"time"`
	// Event is what happened: stored, half-stored, committed, rolled-back,
	// checked-back, parked, scheduled, delivered, sent-back, dead-lettered,
	// consumed.
	Event string `json:"event"`
	// Topic, Queue and Offset say where the record went.
	Topic  string `json:"topic,omitempty"`
	Queue  int32  `json:"queue"`
	Offset int64  `json:"offset"`
	// OffsetMsgID is the record's offset message id.
	OffsetMsgID string `json:"offsetMsgId,omitempty"`
	// Flush is the flush mode a send was stored with.
	Flush string `json:"flush,omitempty"`
	// Level is a scheduled message's delay level (0: a delivery time).
	Level int `json:"level,omitempty"`
	// DueAt is when a scheduled message falls due.
	DueAt time.Time `json:"dueAt,omitzero"`
	// From is who decided a transaction outcome: client, check-back, admin.
	From string `json:"from,omitempty"`
	// Check numbers check-backs from 1.
	Check int `json:"check,omitempty"`
	// Group is the producer or consumer group.
	Group string `json:"group,omitempty"`
	// Reconsume is the reconsume count after a send-back.
	Reconsume int `json:"reconsumeTimes,omitempty"`
	// Keys, Tag and TraceID identify the message.
	Keys    string `json:"keys,omitempty"`
	Tag     string `json:"tag,omitempty"`
	TraceID string `json:"traceId,omitempty"`
	// Detail is free text.
	Detail string `json:"detail,omitempty"`
}

// MessageTrace is one message's events, oldest first, then its derived
// consumed events.
type MessageTrace struct {
	MsgID  string       `json:"msgId"`
	Events []TraceEvent `json:"events"`
}

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
