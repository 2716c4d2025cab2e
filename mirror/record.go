package mirror

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/IBM/sarama"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/telemetry"
)

// Header names the mirror adds to every record, besides the message's
// properties under their own names.
const (
	HeaderTopic         = "rocketmq.topic"
	HeaderTags          = "rocketmq.tags"
	HeaderMsgID         = "rocketmq.msgId"
	HeaderOffsetMsgID   = "rocketmq.offsetMsgId"
	HeaderQueueID       = "rocketmq.queueId"
	HeaderQueueOffset   = "rocketmq.queueOffset"
	HeaderBornTimestamp = "rocketmq.bornTimestamp"
	// HeaderStoreTimestamp carries the store time (ms) of a record that
	// Kafka refused with that timestamp (outside the topic's
	// message.timestamp window, after a long outage) and that was sent
	// again stamped with the time of sending.
	HeaderStoreTimestamp = "rocketmq.storeTimestamp"
	HeaderTraceparent    = message.PropertyTraceparent
	headerTracestate     = message.PropertyTracestate
	maxHeaderPropertyLen = 1 << 15
)

// Key returns the Kafka key of a message: its sharding key, which picked
// its RocketMQ queue and so orders it among the messages of that key, or
// else its first key (KEYS), or nil.
func Key(m *client.MessageExt) []byte {
	if m.ShardingKey != "" {
		return []byte(m.ShardingKey)
	}
	for _, k := range m.Keys {
		if k != "" {
			return []byte(k)
		}
	}
	return nil
}

// record builds the Kafka record of m for topic, with the trace context
// of ctx (the publish span) as its traceparent.
func record(ctx context.Context, topic string, m *client.MessageExt) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{
		Topic:     topic,
		Value:     sarama.ByteEncoder(m.Body),
		Timestamp: m.StoreTimestamp,
		Headers:   headers(ctx, m),
	}
	if k := Key(m); k != nil {
		pm.Key = sarama.ByteEncoder(k)
	}
	return pm
}

// headers are the message's properties (user ones, then system ones, each
// sorted by name), the rocketmq.* headers, and the trace context of ctx in
// place of the message's own.
func headers(ctx context.Context, m *client.MessageExt) []sarama.RecordHeader {
	h := make([]sarama.RecordHeader, 0, len(m.Properties)+len(m.SystemProperties)+10)
	add := func(k, v string) { h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}) }
	add(HeaderTopic, m.Topic)
	add(HeaderMsgID, m.MsgID)
	add(HeaderOffsetMsgID, m.OffsetMsgID)
	add(HeaderQueueID, strconv.Itoa(int(m.QueueID)))
	add(HeaderQueueOffset, strconv.FormatInt(m.QueueOffset, 10))
	add(HeaderBornTimestamp, strconv.FormatInt(m.BornTimestamp.UnixMilli(), 10))
	if m.Tags != "" {
		add(HeaderTags, m.Tags)
		add(message.PropertyTags, m.Tags)
	}
	if len(m.Keys) > 0 {
		add(message.PropertyKeys, strings.Join(m.Keys, " "))
	}
	if m.ShardingKey != "" {
		add(message.PropertyShardingKey, m.ShardingKey)
	}
	for _, props := range []map[string]string{m.Properties, m.SystemProperties} {
		for _, k := range slices.Sorted(maps.Keys(props)) {
			if k == HeaderTraceparent || k == headerTracestate || len(props[k]) > maxHeaderPropertyLen {
				continue
			}
			add(k, props[k])
		}
	}
	carrier := telemetry.MapCarrier{}
	telemetry.Inject(ctx, carrier)
	for _, k := range []string{HeaderTraceparent, headerTracestate} {
		if v, ok := carrier[k]; ok {
			add(k, v)
		}
	}
	return h
}

// Header returns the value of the record header named key, and whether
// there is one.
func Header(hs []*sarama.RecordHeader, key string) (string, bool) {
	for _, h := range hs {
		if h != nil && string(h.Key) == key {
			return string(h.Value), true
		}
	}
	return "", false
}
