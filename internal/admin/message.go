package admin

import (
	"encoding/base64"
	"unicode/utf8"

	"github.com/halfbackmq/halfback/message"
)

// Message is a stored message as the admin commands show it.
type Message struct {
	// MsgID is the UNIQ_KEY the producer gave it ("" if none).
	MsgID string `json:"msgId"`
	// OffsetMsgID is the broker's id of this copy (ViewMessage takes it).
	OffsetMsgID    string   `json:"offsetMsgId"`
	Topic          string   `json:"topic"`
	QueueID        int32    `json:"queueId"`
	QueueOffset    int64    `json:"queueOffset"`
	Tags           string   `json:"tags,omitempty"`
	Keys           []string `json:"keys,omitempty"`
	ReconsumeTimes int32    `json:"reconsumeTimes"`
	BornTimestamp  int64    `json:"bornTimestamp"`
	StoreTimestamp int64    `json:"storeTimestamp"`
	// Body is the body as text when it is valid UTF-8; otherwise it is
	// empty and BodyBase64 holds it.
	Body       string            `json:"body"`
	BodyBase64 string            `json:"bodyBase64,omitempty"`
	Properties map[string]string `json:"properties"`

	raw message.Ext
}

// Ext returns the decoded record the message was made from.
func (m *Message) Ext() message.Ext { return m.raw }

// newMessage converts a decoded record.
func newMessage(e message.Ext) Message {
	m := Message{
		MsgID:          e.Property(message.PropertyUniqKey),
		OffsetMsgID:    e.MsgID(),
		Topic:          e.Topic,
		QueueID:        e.QueueID,
		QueueOffset:    e.QueueOffset,
		Tags:           e.Property(message.PropertyTags),
		Keys:           message.Keys(e.Properties),
		ReconsumeTimes: e.ReconsumeTimes,
		BornTimestamp:  e.BornTimestamp,
		StoreTimestamp: e.StoreTimestamp,
		Properties:     message.ParseProperties(e.Properties),
		raw:            e,
	}
	// A compressed body (FlagCompressed) is shown inflated; one that does
	// not inflate is shown as stored.
	body, _, err := message.Inflate(e.Body, e.SysFlag)
	if err != nil {
		body = e.Body
	}
	if utf8.Valid(body) {
		m.Body = string(body)
	} else {
		m.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return m
}

// decodeMessages decodes the records of a pull or query answer.
func decodeMessages(body []byte) ([]Message, error) {
	exts, err := message.DecodeAll(body)
	if err != nil {
		return nil, err
	}
	out := make([]Message, len(exts))
	for i, e := range exts {
		out[i] = newMessage(e)
	}
	return out, nil
}
