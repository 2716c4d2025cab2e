package client

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// Message is a message to send. Topic and Body are required.
type Message struct {
	// Topic is 1 to 127 characters from [%|a-zA-Z0-9_-].
	Topic string
	// Body is the payload: at least one byte, at most
	// Options.MaxMessageSize.
	Body []byte
	// Tags is the message's tag (TAGS), which consumers filter on. Empty
	// for none.
	Tags string
	// Keys are business keys (KEYS) the broker indexes for lookups. A key
	// may not contain a space; empty keys are dropped.
	Keys []string
	// ShardingKey, when set, makes the default selector pick the queue by
	// its hash, so messages with the same key keep their order. It is sent
	// as SHARDING_KEY.
	ShardingKey string
	// Properties are user properties. Names the client or broker reserve
	// (TAGS, KEYS, DELAY, UNIQ_KEY, PGROUP, ...) are refused; names and
	// values may not contain the separators \x01 and \x02.
	Properties map[string]string
	// DelayLevel delays delivery by the broker's delay level n (DELAY;
	// RocketMQ's levels are 1s 5s 10s 30s 1m ...). 0 delivers at once.
	DelayLevel int
	// DeliverAt delivers the message at this time (TIMER_DELIVER_MS, ms
	// precision) instead; the zero time delivers at once. At most one of
	// DelayLevel and DeliverAt may be set.
	DeliverAt time.Time
	// Flag is an application-defined number stored with the message.
	Flag int32
	// ID, when set, is the message's id (UNIQ_KEY) instead of a generated
	// one: at most 128 characters, no spaces or control separators. A
	// deterministic ID makes a half message idempotent: a broker that
	// already holds a live half message of the producer group with this id
	// answers SendHalf with that one instead of storing another.
	ID string
}

// MaxIDLength is the longest Message.ID.
const MaxIDLength = 128

// MessageExt is a message as a broker stored it: what a consumer receives
// and a check listener is asked about.
type MessageExt struct {
	// Message holds the topic, body, tags, keys, sharding key, user
	// properties and flag. DelayLevel and DeliverAt are zero: a stored
	// message's delay properties are in SystemProperties.
	Message
	// MsgID is the message id its producer assigned (UNIQ_KEY), or
	// OffsetMsgID when it has none.
	MsgID string
	// OffsetMsgID is the broker's id: store host and commit-log offset.
	OffsetMsgID string
	// QueueID and QueueOffset locate the message in its topic.
	QueueID     int32
	QueueOffset int64
	// CommitLogOffset is the record's offset in the broker's commit log.
	CommitLogOffset int64
	// BornTimestamp is when the producer sent it, StoreTimestamp when the
	// broker stored it.
	BornTimestamp, StoreTimestamp time.Time
	// BornHost is the producer's address, StoreHost the broker's.
	BornHost, StoreHost string
	// ReconsumeTimes counts redeliveries after failed consumption.
	ReconsumeTimes int32
	// SysFlag holds the record's system bits (transaction type, IPv6
	// hosts). A compressed body arrives inflated, without the compression
	// bit; the bit stays only on a body that did not inflate.
	SysFlag int32
	// SystemProperties are the properties the client or broker set
	// (UNIQ_KEY, PGROUP, TRAN_MSG, REAL_TOPIC, DELAY, ...).
	SystemProperties map[string]string
}

// forbiddenTopics are the system topics a producer may not send to
// (RocketMQ's auto-create key and NOT_ALLOWED_SEND_TOPIC_SET, and the
// broker's delay topics).
var forbiddenTopics = map[string]bool{
	autoCreateTopicKey: true, "SCHEDULE_TOPIC_XXXX": true, "SCHEDULE_TOPIC_XXXX_V2": true,
	"rmq_sys_wheel_timer": true, "RMQ_SYS_TRANS_HALF_TOPIC": true, "RMQ_SYS_TRANS_OP_HALF_TOPIC": true,
	"TRANS_CHECK_MAX_TIME_TOPIC": true, "SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

// maxUserProperties bounds a message's encoded properties, leaving room
// for the ones the broker adds (REAL_TOPIC, REAL_QID, ...) and its record
// checksum within RocketMQ's 32767-byte limit.
const maxUserProperties = message.MaxPropertiesLength - 1024

// invalid returns an ErrInvalidMessage error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// validateTopic checks a topic a message may be sent to.
func validateTopic(topic string) error {
	if err := message.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if forbiddenTopics[topic] {
		return invalid("topic %s is a system topic producers may not send to", topic)
	}
	return nil
}

// check validates m for sending, with bodies up to maxBody bytes.
func (m *Message) check(maxBody int) error {
	if m == nil {
		return invalid("nil message")
	}
	if err := validateTopic(m.Topic); err != nil {
		return err
	}
	switch {
	case len(m.Body) == 0:
		return invalid("empty body")
	case len(m.Body) > maxBody:
		return fmt.Errorf("%w: body of %d bytes, limit %d", ErrMessageTooLarge, len(m.Body), maxBody)
	case hasSeparator(m.Tags):
		return invalid("tags %q contain a control separator", m.Tags)
	case hasSeparator(m.ShardingKey):
		return invalid("sharding key %q contains a control separator", m.ShardingKey)
	case len(m.ID) > MaxIDLength || strings.ContainsAny(m.ID, " \x01\x02"):
		return invalid("id %q is longer than %d characters or contains a space or a control separator", m.ID, MaxIDLength)
	case m.DelayLevel < 0:
		return invalid("delay level %d is negative", m.DelayLevel)
	case m.DelayLevel > 0 && !m.DeliverAt.IsZero():
		return invalid("both DelayLevel and DeliverAt are set")
	case !m.DeliverAt.IsZero() && m.DeliverAt.UnixMilli() < 0:
		return invalid("DeliverAt %v is before 1970", m.DeliverAt)
	}
	for _, k := range m.Keys {
		if strings.ContainsAny(k, " \x01\x02") {
			return invalid("key %q contains a space or a control separator", k)
		}
	}
	for name, v := range m.Properties {
		switch {
		case name == "":
			return invalid("property with an empty name")
		case hasSeparator(name) || hasSeparator(v):
			return invalid("property %q contains a control separator", name)
		case message.IsReservedProperty(name):
			return invalid("property %s is reserved", name)
		}
	}
	return nil
}

func hasSeparator(s string) bool { return strings.ContainsAny(s, "\x01\x02") }

// delayed reports whether m asks for delayed delivery.
// id returns the message's UNIQ_KEY: its ID, or a fresh one from gen.
func (m *Message) id(gen *message.UniqIDs) string {
	if m.ID != "" {
		return m.ID
	}
	return gen.Next()
}

func (m *Message) delayed() bool { return m.DelayLevel > 0 || !m.DeliverAt.IsZero() }

// properties returns m's wire-form properties with UNIQ_KEY set to id, or
// an ErrInvalidMessage error if they are too long.
func (m *Message) properties(id string) (string, error) {
	p := make(message.Properties, len(m.Properties)+6)
	for k, v := range m.Properties {
		p[k] = v
	}
	p[message.PropertyUniqKey] = id
	if m.Tags != "" {
		p[message.PropertyTags] = m.Tags
	}
	var keys []string
	for _, k := range m.Keys {
		if k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		p[message.PropertyKeys] = strings.Join(keys, message.KeySeparator)
	}
	if m.ShardingKey != "" {
		p[message.PropertyShardingKey] = m.ShardingKey
	}
	if m.DelayLevel > 0 {
		p[message.PropertyDelayTimeLevel] = strconv.Itoa(m.DelayLevel)
	}
	if !m.DeliverAt.IsZero() {
		p[message.PropertyTimerDeliverMS] = strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)
	}
	s := p.Encode()
	if len(s) > maxUserProperties {
		return "", invalid("properties of %d bytes encoded, limit %d", len(s), maxUserProperties)
	}
	return s, nil
}

// newMessageExt converts a decoded record. Body aliases e's, unless it was
// compressed (FlagCompressed, which the Java and Go producers set on
// bodies over 4 KiB): then it is inflated and the flag cleared. A body
// that does not inflate is delivered as it is, flag set, and logged.
func newMessageExt(e *message.Ext, log *slog.Logger) *MessageExt {
	body, sysFlag, err := message.Inflate(e.Body, e.SysFlag)
	if err != nil {
		log.Error("client: compressed message body does not inflate; delivered as stored", "topic", e.Topic,
			"offsetMsgId", e.MsgID(), "err", err)
	}
	m := &MessageExt{
		Message:         Message{Topic: e.Topic, Body: body, Flag: e.Flag},
		OffsetMsgID:     e.MsgID(),
		QueueID:         e.QueueID,
		QueueOffset:     e.QueueOffset,
		CommitLogOffset: e.CommitLogOffset,
		BornTimestamp:   time.UnixMilli(e.BornTimestamp),
		StoreTimestamp:  time.UnixMilli(e.StoreTimestamp),
		BornHost:        e.BornHost.String(),
		StoreHost:       e.StoreHost.String(),
		ReconsumeTimes:  e.ReconsumeTimes,
		SysFlag:         sysFlag,
	}
	for name, v := range message.ParseProperties(e.Properties) {
		switch {
		case name == message.PropertyTags:
			m.Tags = v
		case name == message.PropertyKeys:
			m.Keys = strings.Fields(v)
		case name == message.PropertyShardingKey:
			m.ShardingKey = v
		case message.IsReservedProperty(name):
			if m.SystemProperties == nil {
				m.SystemProperties = map[string]string{}
			}
			m.SystemProperties[name] = v
		default:
			if m.Properties == nil {
				m.Properties = map[string]string{}
			}
			m.Properties[name] = v
		}
	}
	m.MsgID = m.SystemProperties[message.PropertyUniqKey]
	if m.MsgID == "" {
		m.MsgID = m.OffsetMsgID
	}
	return m
}

// clone returns a copy of m that shares no map or slice with it.
func (m *MessageExt) clone() *MessageExt {
	c := *m
	c.Body = bytes.Clone(m.Body)
	c.Keys = slices.Clone(m.Keys)
	c.Properties = maps.Clone(m.Properties)
	c.SystemProperties = maps.Clone(m.SystemProperties)
	return &c
}
