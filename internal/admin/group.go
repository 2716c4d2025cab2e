package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// QueueProgress is a consumer group's position in one queue.
type QueueProgress struct {
	Topic   string `json:"topic"`
	Broker  string `json:"brokerName"`
	QueueID int32  `json:"queueId"`
	// BrokerOffset is the queue's max offset (one past its newest message).
	BrokerOffset int64 `json:"brokerOffset"`
	// ConsumerOffset is the group's committed offset (0 if none).
	ConsumerOffset int64 `json:"consumerOffset"`
	// Lag is BrokerOffset - ConsumerOffset, at least 0.
	Lag int64 `json:"lag"`
	// LastTimestamp is the store time (ms) of the last message the group
	// consumed there, 0 if unknown.
	LastTimestamp int64 `json:"lastTimestamp"`
}

// GroupOffsets returns a group's progress on every queue of the topics it
// has committed offsets for or subscribes to, and of its retry topic
// (GET_CONSUME_STATS), sorted by topic and queue.
func (c *Client) GroupOffsets(ctx context.Context, group string) ([]QueueProgress, error) {
	if group == "" {
		return nil, fmt.Errorf("%w: empty group", ErrInvalid)
	}
	resp, err := c.call(ctx, "GET_CONSUME_STATS", remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": group}, nil)
	if err != nil {
		return nil, err
	}
	out, err := decodeConsumeStats(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET_CONSUME_STATS: bad answer: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].QueueID < out[j].QueueID
	})
	return out, nil
}

// DeleteGroup forgets a consumer group that went away
// (DELETE_SUBSCRIPTIONGROUP): with cleanOffsets, its committed offsets
// too. The broker refuses while the group has consumers online.
func (c *Client) DeleteGroup(ctx context.Context, group string, cleanOffsets bool) error {
	if err := message.ValidateGroup(group); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	_, err := c.call(ctx, "DELETE_SUBSCRIPTIONGROUP", remoting.ReqDeleteSubscriptionGroup,
		map[string]string{"groupName": group, "cleanOffset": strconv.FormatBool(cleanOffsets)}, nil)
	return err
}

// decodeConsumeStats reads ConsumeStats as fastjson writes it: offsetTable
// is a map keyed by MessageQueue objects
// ({{"brokerName":..,"queueId":..,"topic":..}:{"brokerOffset":..,...},...}),
// which encoding/json cannot read in one go.
func decodeConsumeStats(b []byte) ([]QueueProgress, error) {
	const field = `"offsetTable":`
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return nil, nil // no table: nothing to report
	}
	p := &scanner{b: b, pos: i + len(field)}
	if !p.expect('{') {
		return nil, errors.New("offsetTable is not an object")
	}
	var out []QueueProgress
	for !p.expect('}') {
		if len(out) > 0 && !p.expect(',') {
			return nil, fmt.Errorf("offsetTable: want ',' at byte %d", p.pos)
		}
		var key struct {
			BrokerName string `json:"brokerName"`
			QueueID    int32  `json:"queueId"`
			Topic      string `json:"topic"`
		}
		var val struct {
			BrokerOffset   int64 `json:"brokerOffset"`
			ConsumerOffset int64 `json:"consumerOffset"`
			LastTimestamp  int64 `json:"lastTimestamp"`
		}
		if err := p.value(&key); err != nil {
			return nil, err
		}
		if !p.expect(':') {
			return nil, fmt.Errorf("offsetTable: want ':' at byte %d", p.pos)
		}
		if err := p.value(&val); err != nil {
			return nil, err
		}
		out = append(out, QueueProgress{Topic: key.Topic, Broker: key.BrokerName, QueueID: key.QueueID,
			BrokerOffset: val.BrokerOffset, ConsumerOffset: val.ConsumerOffset,
			Lag: max(0, val.BrokerOffset-val.ConsumerOffset), LastTimestamp: val.LastTimestamp})
	}
	return out, nil
}

// scanner walks a fastjson document one JSON value at a time.
type scanner struct {
	b   []byte
	pos int
}

// expect skips white space and consumes c if it comes next.
func (s *scanner) expect(c byte) bool {
	for s.pos < len(s.b) && (s.b[s.pos] == ' ' || s.b[s.pos] == '\t' || s.b[s.pos] == '\n' || s.b[s.pos] == '\r') {
		s.pos++
	}
	if s.pos < len(s.b) && s.b[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// value decodes the JSON value at the current position into v.
func (s *scanner) value(v any) error {
	dec := json.NewDecoder(bytes.NewReader(s.b[s.pos:]))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("offsetTable at byte %d: %w", s.pos, err)
	}
	s.pos += int(dec.InputOffset())
	return nil
}
