package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Consumer-group administration: GET_CONSUME_STATS, which mqadmin's
// consumerProgress and halfback's `group offsets` ask for a group's
// progress. RocketMQ's AdminBrokerProcessor.getConsumeStats.

// consumeStatsQueue is one queue of a ConsumeStats answer: the key
// (RocketMQ's MessageQueue) and the value (OffsetWrapper).
type consumeStatsQueue struct {
	key   mqKey
	value struct {
		BrokerOffset   int64 `json:"brokerOffset"`
		ConsumerOffset int64 `json:"consumerOffset"`
		LastTimestamp  int64 `json:"lastTimestamp"`
		PullOffset     int64 `json:"pullOffset"`
	}
}

// registerAdmin handles GET_CONSUME_STATS, GET_TOPIC_STATS_INFO,
// GET_CONSUMER_CONNECTION_LIST, QUERY_TOPIC_CONSUME_BY_WHO,
// DELETE_SUBSCRIPTIONGROUP and
// INVOKE_BROKER_TO_RESET_OFFSET (reset.go).
func (b *Broker) registerAdmin(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqGetConsumeStats, b.handleGetConsumeStats)
	mux.HandleFunc(remoting.ReqGetTopicStatsInfo, b.handleGetTopicStats)
	mux.HandleFunc(remoting.ReqGetConsumerConnectionList, b.handleGetConsumerConnections)
	mux.HandleFunc(remoting.ReqQueryTopicConsumeByWho, b.handleTopicConsumers)
	mux.HandleFunc(remoting.ReqDeleteSubscriptionGroup, b.handleDeleteGroup)
	mux.HandleFunc(remoting.ReqInvokeBrokerToResetOffset, b.handleResetOffset)
}

// handleDeleteGroup is DELETE_SUBSCRIPTIONGROUP (mqadmin deleteSubGroup,
// `halfback group delete`): it forgets a consumer group that went away,
// its settings (subgroups.go; a group that comes back gets the defaults
// again, unless auto-creation is off), its metric series and, with cleanOffset=true, its committed offsets,
// which nothing else removes (a broker keeps the offsets of a group that
// left, as RocketMQ's does). Unlike RocketMQ's, it refuses while the group
// has consumers online: they would go on from offsets the broker no
// longer has. The group's %RETRY% and %DLQ% topics are topics like any
// other (DELETE_TOPIC_IN_BROKER).
func (b *Broker) handleDeleteGroup(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("groupName")
	if err := message.ValidateGroup(group); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the specified group is illegal: "+err.Error())
	}
	if v, online := b.consumerGroupInfo(group); online && len(v.Clients) > 0 {
		return remoting.NewResponse(req, remoting.RespSystemError,
			fmt.Sprintf("consumer group %s has %d consumers online; stop them first", group, len(v.Clients)))
	}
	if _, err := b.subGroups.remove(group); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if req.Ext("cleanOffset") == "true" {
		if err := b.offsetTable().removeGroup(group); err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
	}
	b.metrics.forgetGroup(group)
	b.opts.Logger.Info("consumer group deleted", "group", group, "cleanOffset", req.Ext("cleanOffset") == "true")
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// handleGetConsumeStats answers a group's progress on every queue of the
// topics it has committed offsets for, subscribes to while online, and its
// retry topic (or only the request's topic, if it names one); of a group
// online in BROADCASTING mode, only the first (see groupTopics). The body is
// RocketMQ's ConsumeStats as fastjson writes it, a map keyed by
// MessageQueue objects, which is not strict JSON but is what mqadmin reads:
//
//	{"consumeTps":0.0,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":5,...}}}
//
// consumerOffset is 0 where nothing is committed; pullOffset equals it (the
// broker does not track pull positions); consumeTps is always 0.
func (b *Broker) handleGetConsumeStats(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("consumerGroup")
	if group == "" {
		return remoting.NewResponse(req, remoting.RespSystemError, "the custom field <consumerGroup> is null")
	}
	committed := b.groupOffsets(group)
	var topics []string
	if t := req.Ext("topic"); t != "" {
		topics = []string{t}
	} else {
		topics = b.groupTopics(group, committed)
	}
	var queues []consumeStatsQueue
	for _, topic := range topics {
		tc, ok := b.topics.get(topic)
		if !ok {
			continue
		}
		for qid := int32(0); int(qid) < tc.ReadQueueNums; qid++ {
			var q consumeStatsQueue
			q.key.BrokerName, q.key.QueueID, q.key.Topic = b.opts.BrokerName, qid, topic
			_, q.value.BrokerOffset = b.store.QueueBounds(topic, qid)
			q.value.ConsumerOffset = committed[topic][qid]
			q.value.PullOffset = q.value.ConsumerOffset
			if off := q.value.ConsumerOffset; off > 0 {
				q.value.LastTimestamp = b.queueStoreTime(topic, qid, off-1)
			}
			queues = append(queues, q)
		}
	}
	body, err := encodeConsumeStats(queues)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// handleGetTopicStats answers every queue of a topic with its min and max
// offsets and the store time of its newest message (mqadmin topicStatus;
// `halfback topic status`), RocketMQ's TopicStatsTable as fastjson writes
// it (see handleGetConsumeStats). topicPutTps is always 0.
func (b *Broker) handleGetTopicStats(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext("topic")
	tc, ok := b.topics.get(topic)
	if !ok {
		return remoting.NewResponse(req, remoting.RespTopicNotExist, "topic["+topic+"] not exist")
	}
	type topicOffset struct {
		LastUpdateTimestamp int64 `json:"lastUpdateTimestamp"`
		MaxOffset           int64 `json:"maxOffset"`
		MinOffset           int64 `json:"minOffset"`
	}
	var entries []mqEntry
	for qid := int32(0); int(qid) < max(tc.ReadQueueNums, tc.WriteQueueNums); qid++ {
		var o topicOffset
		o.MinOffset, o.MaxOffset = b.store.QueueBounds(topic, qid)
		if o.MaxOffset > 0 {
			o.LastUpdateTimestamp = b.queueStoreTime(topic, qid, o.MaxOffset-1)
		}
		entries = append(entries, mqEntry{mqKey{BrokerName: b.opts.BrokerName, QueueID: qid, Topic: topic}, o})
	}
	body, err := encodeOffsetTable("{", entries, `,"topicPutTps":0.0`)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// handleGetConsumerConnections answers an online consumer group's members
// (client id, address, language, version), merged subscriptions and
// consume settings (mqadmin consumerConnection; `halfback group
// connections`), RocketMQ's ConsumerConnection, or CONSUMER_NOT_ONLINE.
func (b *Broker) handleGetConsumerConnections(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("consumerGroup")
	v, ok := b.consumerGroupInfo(group)
	if !ok || len(v.Clients) == 0 {
		return remoting.NewResponse(req, remoting.RespConsumerNotOnline, "the consumer group["+group+"] not online")
	}
	subs := make(map[string]subscription, len(v.Subscriptions))
	for _, s := range v.Subscriptions {
		subs[s.Topic] = s
	}
	body, err := json.Marshal(struct {
		ConnectionSet     []groupMember           `json:"connectionSet"`
		SubscriptionTable map[string]subscription `json:"subscriptionTable"`
		ConsumeType       string                  `json:"consumeType"`
		MessageModel      string                  `json:"messageModel"`
		ConsumeFromWhere  string                  `json:"consumeFromWhere"`
	}{v.Clients, subs, v.ConsumeType, v.MessageModel, v.ConsumeFromWhere})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// handleTopicConsumers answers the groups that consume a topic: those
// online that subscribe to it and those with offsets committed on it
// (mqadmin topicStatus's consumers; `halfback topic status`), RocketMQ's
// GroupList, sorted.
func (b *Broker) handleTopicConsumers(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext("topic")
	if err := message.ValidateTopic(topic); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "the topic is illegal: "+err.Error())
	}
	set := map[string]bool{}
	for g := range b.offsetTable().topic(topic) {
		set[g] = true
	}
	for _, g := range b.consumerGroups() {
		if _, ok := b.groupSubscription(g, topic); ok {
			set[g] = true
		}
	}
	groups := make([]string, 0, len(set))
	for g := range set {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	body, err := json.Marshal(struct {
		GroupList []string `json:"groupList"`
	}{groups})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// groupTopics returns, sorted, the topics a group has committed offsets
// for or subscribes to while online, plus its retry topic if it exists.
// A group online in BROADCASTING mode gets only the topics it has offsets
// for, as from RocketMQ's broker: its members keep their offsets
// themselves, so the broker's would be 0 for ever, and every message of
// the topic would show as lag however far the members have consumed.
func (b *Broker) groupTopics(group string, committed map[string]map[int32]int64) []string {
	set := map[string]bool{}
	for t := range committed {
		set[t] = true
	}
	info, online := b.consumerGroupInfo(group)
	if online && strings.EqualFold(info.MessageModel, Broadcasting) {
		return slices.Sorted(maps.Keys(set))
	}
	for _, s := range info.Subscriptions {
		set[s.Topic] = true
	}
	if _, ok := b.topics.get(RetryTopic(group)); ok {
		set[RetryTopic(group)] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// queueStoreTime returns the store timestamp of the message at a queue
// offset, or 0 if it cannot be read.
func (b *Broker) queueStoreTime(topic string, qid int32, off int64) int64 {
	r, err := b.store.GetMessages(topic, qid, off, store.GetOptions{MaxMessages: 1})
	if err != nil || r.Status != store.Found {
		return 0
	}
	ts, _ := recordStoreTimestamp(r.Records)
	return ts
}

// encodeConsumeStats writes the fastjson form of ConsumeStats.
func encodeConsumeStats(queues []consumeStatsQueue) ([]byte, error) {
	entries := make([]mqEntry, len(queues))
	for i, q := range queues {
		entries[i] = mqEntry{q.key, q.value}
	}
	return encodeOffsetTable(`{"consumeTps":0.0,`, entries, "")
}

// mqKey is RocketMQ's MessageQueue as a JSON object.
type mqKey struct {
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
	Topic      string `json:"topic"`
}

// mqEntry is one entry of a map keyed by MessageQueue.
type mqEntry struct {
	key   mqKey
	value any
}

// encodeOffsetTable writes head, then "offsetTable" as fastjson writes a
// map keyed by MessageQueue objects (ConsumeStats, ResetOffsetBody,
// TopicStatsTable), which is not strict JSON but is what RocketMQ's tools
// and clients read, then tail and the closing brace.
func encodeOffsetTable(head string, entries []mqEntry, tail string) ([]byte, error) {
	table, err := encodeQueueMap(entries)
	if err != nil {
		return nil, err
	}
	return []byte(head + `"offsetTable":` + string(table) + tail + "}"), nil
}

// encodeQueueMap writes entries as fastjson writes a map keyed by
// MessageQueue objects: {{"brokerName":..,"queueId":..,"topic":..}:value,...}.
func encodeQueueMap(entries []mqEntry) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(e.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.value)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
