package message

import (
	"sort"
	"strings"
)

// Property names used by RocketMQ clients and brokers.
const (
	PropertyKeys                    = "KEYS"
	PropertyTags                    = "TAGS"
	PropertyWaitStoreMsgOK          = "WAIT"
	PropertyDelayTimeLevel          = "DELAY"
	PropertyRetryTopic              = "RETRY_TOPIC"
	PropertyRealTopic               = "REAL_TOPIC"
	PropertyRealQueueID             = "REAL_QID"
	PropertyTransactionPrepared     = "TRAN_MSG"
	PropertyProducerGroup           = "PGROUP"
	PropertyMinOffset               = "MIN_OFFSET"
	PropertyMaxOffset               = "MAX_OFFSET"
	PropertyOriginMessageID         = "ORIGIN_MESSAGE_ID"
	PropertyReconsumeTime           = "RECONSUME_TIME"
	PropertyUniqKey                 = "UNIQ_KEY"
	PropertyMaxReconsumeTimes       = "MAX_RECONSUME_TIMES"
	PropertyConsumeStartTime        = "CONSUME_START_TIME"
	PropertyTransactionCheckTimes   = "TRANSACTION_CHECK_TIMES"
	PropertyCheckImmunityTimeInSecs = "CHECK_IMMUNITY_TIME_IN_SECONDS"
	PropertyShardingKey             = "SHARDING_KEY"
	PropertyTransactionID           = "__transactionId__"
	PropertyTimerDeliverMS          = "TIMER_DELIVER_MS"
	PropertyTimerDelayMS            = "TIMER_DELAY_MS"
	PropertyTimerDelaySec           = "TIMER_DELAY_SEC"
	PropertyTraceparent             = "traceparent"
	PropertyTracestate              = "tracestate"
	// The broker's cluster, stamped on every stored message, and the
	// request-reply properties (RocketMQ 4.6's RPC messages).
	PropertyCluster       = "CLUSTER"
	PropertyReplyToClient = "REPLY_TO_CLIENT"
	PropertyCorrelationID = "CORRELATION_ID"
	PropertyPushReplyTime = "PUSH_REPLY_TIME"
)

// KeySeparator separates the keys inside the KEYS property.
const KeySeparator = " "

const (
	nameValueSeparator = '\x01'
	propertySeparator  = '\x02'
)

// Properties is a decoded property set. The wire form is
// name\x01value\x02 repeated; Encode writes names in sorted order so equal
// sets encode to equal bytes.
type Properties map[string]string

// ParseProperties decodes the wire form. Malformed pairs (no separator) are
// skipped, as RocketMQ clients do.
func ParseProperties(s string) Properties {
	p := make(Properties)
	for s != "" {
		var item string
		if i := strings.IndexByte(s, propertySeparator); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			item, s = s, ""
		}
		if k, v, ok := strings.Cut(item, string(nameValueSeparator)); ok && k != "" {
			p[k] = v
		}
	}
	return p
}

// Encode returns the wire form of p.
func (p Properties) Encode() string {
	if len(p) == 0 {
		return ""
	}
	names := make([]string, 0, len(p))
	n := 0
	for k, v := range p {
		names = append(names, k)
		n += len(k) + len(v) + 2
	}
	sort.Strings(names)
	var b strings.Builder
	b.Grow(n)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(nameValueSeparator)
		b.WriteString(p[k])
		b.WriteByte(propertySeparator)
	}
	return b.String()
}

// Property returns the value of name in the wire-form properties s without
// decoding the whole set. A name given twice has its last value, as
// ParseProperties and the RocketMQ clients (which decode into a map) read
// it: the broker then files and filters a message by the tags, keys and
// delay its consumers see.
func Property(s, name string) (string, bool) {
	for s != "" {
		end := len(s)
		if s[end-1] == propertySeparator {
			end--
		}
		start := strings.LastIndexByte(s[:end], propertySeparator) + 1
		if item := s[start:end]; len(item) > len(name) && item[len(name)] == nameValueSeparator && item[:len(name)] == name {
			return item[len(name)+1:], true
		}
		s = s[:start]
	}
	return "", false
}

// Keys returns the user keys of the wire-form properties s (the KEYS
// property split on spaces), skipping empty ones.
func Keys(s string) []string {
	v, ok := Property(s, PropertyKeys)
	if !ok {
		return nil
	}
	return strings.Fields(v)
}

// RemoveProperties returns the wire-form properties s without the named
// pairs, keeping every other pair byte for byte and in order.
func RemoveProperties(s string, names ...string) string {
	var b strings.Builder
	b.Grow(len(s))
	for rest := s; rest != ""; {
		var item string
		if i := strings.IndexByte(rest, propertySeparator); i >= 0 {
			item, rest = rest[:i+1], rest[i+1:]
		} else {
			item, rest = rest, ""
		}
		k, _, _ := strings.Cut(item, string(nameValueSeparator))
		drop := false
		for _, n := range names {
			if k == n {
				drop = true
				break
			}
		}
		if !drop {
			b.WriteString(item)
		}
	}
	return b.String()
}

// SetProperty returns s with name set to value: an existing pair is
// removed and the new one appended; other pairs keep their bytes and order.
func SetProperty(s, name, value string) string {
	s = RemoveProperties(s, name)
	if s != "" && s[len(s)-1] != propertySeparator {
		s += string(propertySeparator)
	}
	return s + name + string(nameValueSeparator) + value + string(propertySeparator)
}

// reservedProperties are the property names a producer's user properties
// may not set: the ones clients give fields of their own (KEYS, TAGS,
// DELAY, ...) and those the clients and the broker set.
var reservedProperties = map[string]bool{
	PropertyKeys: true, PropertyTags: true, PropertyShardingKey: true,
	PropertyDelayTimeLevel: true, PropertyTimerDeliverMS: true,
	PropertyTimerDelayMS: true, PropertyTimerDelaySec: true,
	PropertyUniqKey: true, PropertyWaitStoreMsgOK: true,
	PropertyTransactionPrepared: true, PropertyProducerGroup: true,
	PropertyTransactionID: true, PropertyTransactionCheckTimes: true,
	PropertyRealTopic: true, PropertyRealQueueID: true, PropertyRetryTopic: true,
	PropertyOriginMessageID: true, PropertyReconsumeTime: true,
	PropertyMaxReconsumeTimes: true, PropertyConsumeStartTime: true,
	PropertyMinOffset: true, PropertyMaxOffset: true, PropertyCRC32: true,
	PropertyCluster: true, PropertyPushReplyTime: true, "TIMER_OUT_MS": true,
}

// IsReservedProperty reports whether name is a system property a
// message's user properties may not set (RocketMQ's
// MessageConst.STRING_HASH_SET, as its Message.putUserProperty refuses
// them).
func IsReservedProperty(name string) bool { return reservedProperties[name] }
