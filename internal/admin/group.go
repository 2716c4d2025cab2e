package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
	"github.com/halfbackmq/halfback/message"
)

// QueueProgress is a consumer group's position in one queue.
type QueueProgress struct {
	Topic   string `json:"topic"`
	Broker  string `json:"brokerName"`
	QueueID int32  `json:"queueId"`
	// BrokerOffset is the queue's max offset (one past its newest message).
	BrokerOffset int64 `json:"brokerOffset"`
	// MinOffset is the queue's oldest kept message: retention removed
	// those before it.
	MinOffset int64 `json:"minOffset"`
	// ConsumerOffset is the group's committed offset (0 if none).
	ConsumerOffset int64 `json:"consumerOffset"`
	// Lag is what the group has yet to consume there: BrokerOffset minus
	// the greater of ConsumerOffset and MinOffset (a pull below MinOffset
	// starts at MinOffset, so removed messages are not behind), at least 0.
	Lag int64 `json:"lag"`
	// LastTimestamp is the store time (ms) of the last message the group
	// consumed there, 0 if unknown.
	LastTimestamp int64 `json:"lastTimestamp"`
}

// GroupOffsets returns a group's progress on every queue of the topics it
// has committed offsets for or subscribes to, and of its retry topic
// (GET_CONSUME_STATS), sorted by topic and queue. Each topic's oldest kept
// offsets come from GET_TOPIC_STATS_INFO, as mqadmin's consumerProgress
// does not: its lag counts messages retention removed.
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
	if err := c.addMinOffsets(ctx, out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].QueueID < out[j].QueueID
	})
	return out, nil
}

// addMinOffsets sets each queue's MinOffset from its topic's status and
// takes the messages before it out of the lag. A topic deleted since
// GET_CONSUME_STATS keeps its lag as it was.
func (c *Client) addMinOffsets(ctx context.Context, qs []QueueProgress) error {
	mins := map[string]map[int32]int64{}
	for i := range qs {
		q := &qs[i]
		m, ok := mins[q.Topic]
		if !ok {
			st, err := c.TopicStatus(ctx, q.Topic)
			if be := (*BrokerError)(nil); err != nil && !(errors.As(err, &be) && be.Code == remoting.RespTopicNotExist) {
				return err
			}
			m = make(map[int32]int64, len(st))
			for _, s := range st {
				m[s.QueueID] = s.MinOffset
			}
			mins[q.Topic] = m
		}
		q.MinOffset = m[q.QueueID]
		q.Lag = max(0, q.BrokerOffset-max(q.ConsumerOffset, q.MinOffset))
	}
	return nil
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

// decodeConsumeStats reads ConsumeStats as fastjson writes it (see
// fastjson.EachQueueEntry).
func decodeConsumeStats(b []byte) ([]QueueProgress, error) {
	var out []QueueProgress
	err := fastjson.EachQueueEntry(b, "offsetTable", func(key fastjson.Queue, value func(any) error) error {
		var val struct {
			BrokerOffset   int64 `json:"brokerOffset"`
			ConsumerOffset int64 `json:"consumerOffset"`
			LastTimestamp  int64 `json:"lastTimestamp"`
		}
		if err := value(&val); err != nil {
			return err
		}
		out = append(out, QueueProgress{Topic: key.Topic, Broker: key.BrokerName, QueueID: key.QueueID,
			BrokerOffset: val.BrokerOffset, ConsumerOffset: val.ConsumerOffset,
			Lag: max(0, val.BrokerOffset-val.ConsumerOffset), LastTimestamp: val.LastTimestamp})
		return nil
	})
	return out, err
}

// ResetTo says where ResetOffsets moves a group: Timestamp (ms) sends every
// queue of the topic to its first message stored at or after it (0: the
// oldest kept, -1: the end, skipping everything stored); or, with QueueID
// set (>= 0) and Offset set (>= 0), one queue to that offset. Make one
// with ResetToTime or ResetQueueTo (the zero value moves queue 0 to 0).
type ResetTo struct {
	Timestamp int64
	QueueID   int32
	Offset    int64
}

// ResetToTime moves every queue to its first message stored at or after
// ms (0: the oldest kept, -1: the end).
func ResetToTime(ms int64) ResetTo { return ResetTo{Timestamp: ms, QueueID: -1, Offset: -1} }

// ResetQueueTo moves one queue to offset.
func ResetQueueTo(qid int32, offset int64) ResetTo { return ResetTo{QueueID: qid, Offset: offset} }

// QueueOffset is one queue's offset after a reset.
type QueueOffset struct {
	Topic   string `json:"topic"`
	Broker  string `json:"brokerName"`
	QueueID int32  `json:"queueId"`
	Offset  int64  `json:"offset"`
}

// ResetOffsets moves a consumer group's committed offsets on topic
// (INVOKE_BROKER_TO_RESET_OFFSET, as mqadmin resetOffsetByTime): the
// broker commits them and sends each online consumer's next pull of a
// queue there. It returns the new offsets, sorted by queue.
func (c *Client) ResetOffsets(ctx context.Context, group, topic string, to ResetTo) ([]QueueOffset, error) {
	if err := message.ValidateGroup(group); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ext := map[string]string{"group": group, "topic": topic, "timestamp": strconv.FormatInt(to.Timestamp, 10), "isForce": "true"}
	switch {
	case to.QueueID >= 0 && to.Offset >= 0:
		ext["queueId"], ext["offset"] = strconv.Itoa(int(to.QueueID)), strconv.FormatInt(to.Offset, 10)
	case to.QueueID >= 0 || to.Offset >= 0:
		return nil, fmt.Errorf("%w: a queue and an offset go together", ErrInvalid)
	case to.Timestamp < -1:
		return nil, fmt.Errorf("%w: timestamp %d is not a time (ms) or -1", ErrInvalid, to.Timestamp)
	}
	resp, err := c.call(ctx, "INVOKE_BROKER_TO_RESET_OFFSET", remoting.ReqInvokeBrokerToResetOffset, ext, nil)
	if err != nil {
		return nil, err
	}
	var out []QueueOffset
	err = fastjson.EachQueueEntry(resp.Body, "offsetTable", func(key fastjson.Queue, value func(any) error) error {
		var off int64
		if err := value(&off); err != nil {
			return err
		}
		out = append(out, QueueOffset{Topic: key.Topic, Broker: key.BrokerName, QueueID: key.QueueID, Offset: off})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("INVOKE_BROKER_TO_RESET_OFFSET: bad answer: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueueID < out[j].QueueID })
	return out, nil
}

// GroupConfig is a consumer group's settings on the broker, RocketMQ's
// SubscriptionGroupConfig (broker/subgroups.go says what each does).
type GroupConfig struct {
	Group                  string `json:"groupName"`
	ConsumeEnable          bool   `json:"consumeEnable"`
	ConsumeFromMinEnable   bool   `json:"consumeFromMinEnable"`
	ConsumeBroadcastEnable bool   `json:"consumeBroadcastEnable"`
	RetryQueueNums         int    `json:"retryQueueNums"`
	RetryMaxTimes          int    `json:"retryMaxTimes"`
	BrokerID               int64  `json:"brokerId"`
	WhichBrokerWhenSlow    int64  `json:"whichBrokerWhenConsumeSlowly"`
	NotifyIDsChanged       bool   `json:"notifyConsumerIdsChangedEnable"`
}

// GroupConfigs returns every consumer group's settings
// (GET_ALL_SUBSCRIPTIONGROUP_CONFIG), sorted by group.
func (c *Client) GroupConfigs(ctx context.Context) ([]GroupConfig, error) {
	resp, err := c.call(ctx, "GET_ALL_SUBSCRIPTIONGROUP_CONFIG", remoting.ReqGetAllSubscriptionGroupConfig, nil, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		Table map[string]GroupConfig `json:"subscriptionGroupTable"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("GET_ALL_SUBSCRIPTIONGROUP_CONFIG: bad answer: %w", err)
	}
	out := make([]GroupConfig, 0, len(body.Table))
	for _, g := range body.Table {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// UpdateGroupConfig creates or changes a consumer group's settings
// (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP). fields are the JSON fields of
// GroupConfig to set ("consumeEnable": false, ...); those left out keep
// the group's current value, or the broker's default for a new group.
func (c *Client) UpdateGroupConfig(ctx context.Context, group string, fields map[string]any) (GroupConfig, error) {
	if err := message.ValidateGroup(group); err != nil {
		return GroupConfig{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	all, err := c.GroupConfigs(ctx)
	if err != nil {
		return GroupConfig{}, err
	}
	body := map[string]any{}
	for _, g := range all {
		if g.Group == group {
			b, _ := json.Marshal(g)
			_ = json.Unmarshal(b, &body)
		}
	}
	for k, v := range fields {
		body[k] = v
	}
	body["groupName"] = group
	b, err := json.Marshal(body)
	if err != nil {
		return GroupConfig{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := c.call(ctx, "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP", remoting.ReqUpdateAndCreateSubscriptionGroup, nil, b); err != nil {
		return GroupConfig{}, err
	}
	if all, err = c.GroupConfigs(ctx); err != nil {
		return GroupConfig{}, err
	}
	for _, g := range all {
		if g.Group == group {
			return g, nil
		}
	}
	return GroupConfig{}, fmt.Errorf("UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: group %s not in the broker's table afterwards", group)
}

// GroupConnections is an online consumer group: its members and how they
// consume (GET_CONSUMER_CONNECTION_LIST, RocketMQ's ConsumerConnection).
type GroupConnections struct {
	Group   string        `json:"group"`
	Clients []GroupClient `json:"clients"`
	// Subscriptions are the members' subscriptions, expression by topic.
	Subscriptions    map[string]string `json:"subscriptions"`
	ConsumeType      string            `json:"consumeType"`
	MessageModel     string            `json:"messageModel"`
	ConsumeFromWhere string            `json:"consumeFromWhere"`
}

// GroupClient is one online member of a consumer group.
type GroupClient struct {
	ClientID string `json:"clientId"`
	Addr     string `json:"clientAddr"`
	Language string `json:"language"`
	Version  int    `json:"version"`
}

// GroupConnections returns an online consumer group's members
// (GET_CONSUMER_CONNECTION_LIST, mqadmin consumerConnection); the broker
// answers CONSUMER_NOT_ONLINE for a group with none.
func (c *Client) GroupConnections(ctx context.Context, group string) (GroupConnections, error) {
	if err := message.ValidateGroup(group); err != nil {
		return GroupConnections{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	resp, err := c.call(ctx, "GET_CONSUMER_CONNECTION_LIST", remoting.ReqGetConsumerConnectionList, map[string]string{"consumerGroup": group}, nil)
	if err != nil {
		return GroupConnections{}, err
	}
	var body struct {
		ConnectionSet     []GroupClient `json:"connectionSet"`
		SubscriptionTable map[string]struct {
			SubString string `json:"subString"`
		} `json:"subscriptionTable"`
		ConsumeType      string `json:"consumeType"`
		MessageModel     string `json:"messageModel"`
		ConsumeFromWhere string `json:"consumeFromWhere"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return GroupConnections{}, fmt.Errorf("GET_CONSUMER_CONNECTION_LIST: bad answer: %w", err)
	}
	out := GroupConnections{Group: group, Clients: body.ConnectionSet, Subscriptions: map[string]string{},
		ConsumeType: body.ConsumeType, MessageModel: body.MessageModel, ConsumeFromWhere: body.ConsumeFromWhere}
	for topic, s := range body.SubscriptionTable {
		out.Subscriptions[topic] = s.SubString
	}
	if out.Clients == nil {
		out.Clients = []GroupClient{}
	}
	sort.Slice(out.Clients, func(i, j int) bool { return out.Clients[i].ClientID < out.Clients[j].ClientID })
	return out, nil
}

// RunningInfo is one consumer's answer to GET_CONSUMER_RUNNING_INFO.
type RunningInfo struct {
	ClientID string `json:"clientId"`
	// Info is the consumer's own report, as its client writes it (the
	// official clients: properties, subscriptions, and per queue what it
	// has pulled, cached, locked and consumed; Java's fastjson keys its
	// queue table by MessageQueue objects, which is not strict JSON).
	Info string `json:"info"`
	// Err is why the consumer did not answer, if it did not.
	Err string `json:"error,omitempty"`
}

// ConsumerRunningInfo asks the online consumer clientID of group, through
// the broker, for its running state (GET_CONSUMER_RUNNING_INFO, as mqadmin
// consumerRunningInfo).
func (c *Client) ConsumerRunningInfo(ctx context.Context, group, clientID string) (string, error) {
	if err := message.ValidateGroup(group); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ctx, cancel := consumerCallContext(ctx)
	defer cancel()
	resp, err := c.call(ctx, "GET_CONSUMER_RUNNING_INFO", remoting.ReqGetConsumerRunningInfo,
		map[string]string{"consumerGroup": group, "clientId": clientID, "jstackEnable": "false"}, nil)
	if err != nil {
		return "", err
	}
	return string(resp.Body), nil
}

// DirectResult is a consumer's answer to CONSUME_MESSAGE_DIRECTLY: what
// its handler made of the message (RocketMQ's ConsumeMessageDirectlyResult).
type DirectResult struct {
	ClientID string `json:"clientId"`
	// Order says the consumer is orderly; AutoCommit that its client
	// commits offsets itself.
	Order      bool `json:"order"`
	AutoCommit bool `json:"autoCommit"`
	// ConsumeResult is one of RocketMQ's CMResult names: CR_SUCCESS,
	// CR_LATER, CR_ROLLBACK, CR_COMMIT, CR_THROW_EXCEPTION (the handler
	// failed with an error or a panic; Remark says which), CR_RETURN_NULL.
	ConsumeResult string `json:"consumeResult"`
	Remark        string `json:"remark,omitempty"`
	// SpentMillis is how long the handler took.
	SpentMillis int64 `json:"spentMillis"`
}

// cmResults are RocketMQ's CMResult names in the order of its enum: the
// official Go client writes consumeResult as the ordinal, the Java client
// and halfback's as the name.
var cmResults = []string{"CR_SUCCESS", "CR_LATER", "CR_ROLLBACK", "CR_COMMIT", "CR_THROW_EXCEPTION", "CR_RETURN_NULL"}

// ConsumeMessageDirectly hands the message with offset message id
// offsetMsgID to the online consumer clientID of group, through the broker
// (CONSUME_MESSAGE_DIRECTLY, as mqadmin queryMsgById -g -d): its client
// runs the handler of the message's topic on it and reports the result.
// No offset moves and nothing is retried, whatever the result.
func (c *Client) ConsumeMessageDirectly(ctx context.Context, group, clientID, offsetMsgID string) (DirectResult, error) {
	if err := message.ValidateGroup(group); err != nil {
		return DirectResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, _, err := message.ParseOffsetMsgID(offsetMsgID); err != nil {
		return DirectResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ctx, cancel := consumerCallContext(ctx)
	defer cancel()
	resp, err := c.call(ctx, "CONSUME_MESSAGE_DIRECTLY", remoting.ReqConsumeMessageDirectly,
		map[string]string{"consumerGroup": group, "clientId": clientID, "msgId": offsetMsgID}, nil)
	if err != nil {
		return DirectResult{}, err
	}
	var body struct {
		Order          bool            `json:"order"`
		AutoCommit     bool            `json:"autoCommit"`
		ConsumeResult  json.RawMessage `json:"consumeResult"`
		Remark         string          `json:"remark"`
		SpentTimeMills int64           `json:"spentTimeMills"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return DirectResult{}, fmt.Errorf("CONSUME_MESSAGE_DIRECTLY: bad answer: %w", err)
	}
	out := DirectResult{ClientID: clientID, Order: body.Order, AutoCommit: body.AutoCommit, Remark: body.Remark, SpentMillis: body.SpentTimeMills}
	var ordinal int
	if err := json.Unmarshal(body.ConsumeResult, &out.ConsumeResult); err != nil {
		if err := json.Unmarshal(body.ConsumeResult, &ordinal); err != nil || ordinal < 0 || ordinal >= len(cmResults) {
			return DirectResult{}, fmt.Errorf("CONSUME_MESSAGE_DIRECTLY: bad answer: consumeResult %s", body.ConsumeResult)
		}
		out.ConsumeResult = cmResults[ordinal]
	}
	return out, nil
}

// ClientQueueOffset is one queue's offset in one consumer's memory, as
// INVOKE_BROKER_TO_GET_CONSUMER_STATUS reports it.
type ClientQueueOffset struct {
	ClientID   string `json:"clientId"`
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
	// Offset is what the consumer has consumed the queue up to (the
	// offset it would commit next), which may be ahead of the committed
	// offset `group offsets` shows.
	Offset int64 `json:"offset"`
}

// ConsumerStatus asks the online consumers of group (only clientID, if not
// empty), through the broker, how far each has consumed the queues of
// topic it holds (INVOKE_BROKER_TO_GET_CONSUMER_STATUS, as mqadmin
// getConsumerStatus). The rows come by client id, topic, broker and queue.
// A consumer that does not answer is left out by the broker.
func (c *Client) ConsumerStatus(ctx context.Context, group, topic, clientID string) ([]ClientQueueOffset, error) {
	if err := message.ValidateGroup(group); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := message.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ext := map[string]string{"topic": topic, "group": group}
	if clientID != "" {
		ext["clientAddr"] = clientID // RocketMQ's name for the client id it compares
	}
	resp, err := c.call(ctx, "INVOKE_BROKER_TO_GET_CONSUMER_STATUS", remoting.ReqInvokeBrokerToGetConsumerStatus, ext, nil)
	if err != nil {
		return nil, err
	}
	out := []ClientQueueOffset{}
	err = fastjson.EachObjectEntry(resp.Body, "consumerTable", func(id string, table []byte) error {
		return fastjson.EachQueueEntryOf(table, func(q fastjson.Queue, value func(any) error) error {
			row := ClientQueueOffset{ClientID: id, Topic: q.Topic, BrokerName: q.BrokerName, QueueID: q.QueueID}
			out = append(out, row)
			return value(&out[len(out)-1].Offset)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("INVOKE_BROKER_TO_GET_CONSUMER_STATUS: bad answer: %w", err)
	}
	slices.SortFunc(out, func(a, b ClientQueueOffset) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.BrokerName, b.BrokerName), cmp.Compare(a.QueueID, b.QueueID))
	})
	return out, nil
}

// consumerCallContext gives a call the broker forwards to a consumer a
// deadline when ctx has none: longer than the broker's own 10 s wait for
// the consumer, so that a consumer that does not answer is reported by the
// broker (CONSUME_MSG_TIMEOUT), not as this call's deadline.
func consumerCallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout+5*time.Second)
}
