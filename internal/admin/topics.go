package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
	"github.com/halfbackmq/halfback/message"
)

// Topic permission bits (RocketMQ's PermName).
const (
	PermWrite = 2
	PermRead  = 4
)

// maxQueues is the most queues a topic may have (the broker's limit).
const maxQueues = 1024

// Topic is one topic of a broker, in RocketMQ's TopicConfig JSON shape.
type Topic struct {
	Name           string `json:"topicName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSysFlag"`
	Order          bool   `json:"order"`
}

// CreateTopic creates (or updates) a read-write topic with queues read
// and write queues.
func (c *Client) CreateTopic(ctx context.Context, name string, queues int) error {
	if err := message.ValidateTopic(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if queues < 1 || queues > maxQueues {
		return fmt.Errorf("%w: %d queues, want 1..%d", ErrInvalid, queues, maxQueues)
	}
	n := strconv.Itoa(queues)
	_, err := c.call(ctx, "UPDATE_AND_CREATE_TOPIC", remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": name, "defaultTopic": "TBW102", "readQueueNums": n, "writeQueueNums": n,
		"perm": strconv.Itoa(PermRead | PermWrite), "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
	}, nil)
	return err
}

// ListTopics returns the broker's topics, system topics included, sorted
// by name.
func (c *Client) ListTopics(ctx context.Context) ([]Topic, error) {
	resp, err := c.call(ctx, "GET_ALL_TOPIC_CONFIG", remoting.ReqGetAllTopicConfig, nil, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		TopicConfigTable map[string]Topic `json:"topicConfigTable"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("GET_ALL_TOPIC_CONFIG: bad answer: %w", err)
	}
	out := make([]Topic, 0, len(body.TopicConfigTable))
	for name, t := range body.TopicConfigTable {
		if t.Name == "" {
			t.Name = name
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetTopic returns one topic, or a *BrokerError with code TOPIC_NOT_EXIST.
func (c *Client) GetTopic(ctx context.Context, name string) (Topic, error) {
	topics, err := c.ListTopics(ctx)
	if err != nil {
		return Topic{}, err
	}
	for _, t := range topics {
		if t.Name == name {
			return t, nil
		}
	}
	return Topic{}, &BrokerError{Op: "GET_ALL_TOPIC_CONFIG", Code: remoting.RespTopicNotExist, Remark: "topic " + name + " does not exist"}
}

// DeleteTopic removes a topic from the broker (its messages age out with
// retention).
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	if err := message.ValidateTopic(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	_, err := c.call(ctx, "DELETE_TOPIC_IN_BROKER", remoting.ReqDeleteTopicInBroker, map[string]string{"topic": name}, nil)
	return err
}

// QueueStatus is one queue of a topic: its offsets and newest message.
type QueueStatus struct {
	Topic   string `json:"topic"`
	Broker  string `json:"brokerName"`
	QueueID int32  `json:"queueId"`
	// MinOffset is the oldest message kept, MaxOffset one past the newest.
	MinOffset int64 `json:"minOffset"`
	MaxOffset int64 `json:"maxOffset"`
	// LastUpdated is the store time (ms) of the newest message, 0 if none.
	LastUpdated int64 `json:"lastUpdateTimestamp"`
}

// TopicStatus returns every queue of a topic, by queue id
// (GET_TOPIC_STATS_INFO, mqadmin topicStatus).
func (c *Client) TopicStatus(ctx context.Context, topic string) ([]QueueStatus, error) {
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	resp, err := c.call(ctx, "GET_TOPIC_STATS_INFO", remoting.ReqGetTopicStatsInfo, map[string]string{"topic": topic}, nil)
	if err != nil {
		return nil, err
	}
	var out []QueueStatus
	err = fastjson.EachQueueEntry(resp.Body, "offsetTable", func(key fastjson.Queue, value func(any) error) error {
		var q QueueStatus
		if err := value(&q); err != nil {
			return err
		}
		q.Topic, q.Broker, q.QueueID = key.Topic, key.BrokerName, key.QueueID
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("GET_TOPIC_STATS_INFO: bad answer: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueueID < out[j].QueueID })
	return out, nil
}

// TopicConsumers returns, sorted, the consumer groups of a topic: those
// online that subscribe to it and those with offsets committed on it
// (QUERY_TOPIC_CONSUME_BY_WHO).
func (c *Client) TopicConsumers(ctx context.Context, topic string) ([]string, error) {
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	resp, err := c.call(ctx, "QUERY_TOPIC_CONSUME_BY_WHO", remoting.ReqQueryTopicConsumeByWho, map[string]string{"topic": topic}, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		GroupList []string `json:"groupList"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("QUERY_TOPIC_CONSUME_BY_WHO: bad answer: %w", err)
	}
	if body.GroupList == nil {
		body.GroupList = []string{}
	}
	sort.Strings(body.GroupList)
	return body.GroupList, nil
}
