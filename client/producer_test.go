package client

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

func TestSendRoundTrip(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("orders")
	m := &Message{Topic: topic, Body: []byte("order 42 created"), Tags: "created",
		Keys: []string{"order-42", "", "user-7"}, Flag: 7,
		Properties: map[string]string{"traceparent": "00-abc-def-01", "tenant": "acme"}}
	res, err := p.Send(ctxT(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.MsgID) != 32 || res.Topic != topic || res.BrokerName != cl.name || res.QueueOffset != 0 {
		t.Fatalf("result %+v", res)
	}
	e := cl.waitStored(t, topic, 1)[0]
	if !bytes.Equal(e.Body, m.Body) || e.Tags != "created" || !slices.Equal(e.Keys, []string{"order-42", "user-7"}) ||
		e.Flag != 7 || !maps.Equal(e.Properties, m.Properties) {
		t.Fatalf("stored %+v, sent %+v", e.Message, *m)
	}
	if e.MsgID != res.MsgID || e.OffsetMsgID != res.OffsetMsgID || e.QueueID != res.QueueID || e.QueueOffset != res.QueueOffset {
		t.Fatalf("stored ids %s %s %d/%d, result %+v", e.MsgID, e.OffsetMsgID, e.QueueID, e.QueueOffset, res)
	}
	if e.SystemProperties[message.PropertyTransactionPrepared] != "" || message.TransactionType(e.SysFlag) != 0 {
		t.Fatalf("plain message stored as transactional: %v %b", e.SystemProperties, e.SysFlag)
	}
}

func TestSendBatch(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	topic := uniq("batch")
	var msgs []*Message
	for i, tag := range []string{"a", "b", "c"} {
		msgs = append(msgs, &Message{Topic: topic, Body: []byte("body-" + tag), Tags: tag, Keys: []string{"k-" + tag},
			Flag: int32(i), Properties: map[string]string{"n": tag}})
	}
	res, err := p.SendBatch(ctxT(t, 10*time.Second), msgs)
	if err != nil {
		t.Fatal(err)
	}
	got := cl.waitStored(t, topic, 3)
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	for i, e := range got {
		r, m := res[i], msgs[i]
		if r.QueueID != res[0].QueueID || r.QueueOffset != int64(i) || e.QueueOffset != r.QueueOffset ||
			e.MsgID != r.MsgID || e.OffsetMsgID != r.OffsetMsgID {
			t.Fatalf("message %d: result %+v, stored %s %s %d", i, r, e.MsgID, e.OffsetMsgID, e.QueueOffset)
		}
		if !bytes.Equal(e.Body, m.Body) || e.Tags != m.Tags || !slices.Equal(e.Keys, m.Keys) ||
			e.Flag != m.Flag || !maps.Equal(e.Properties, m.Properties) {
			t.Fatalf("message %d stored as %+v", i, e.Message)
		}
	}
	if res[0].MsgID == res[1].MsgID {
		t.Fatal("batch messages share a MsgID")
	}
}

// A delayed message reaches its topic only once due.
func TestSendDelayed(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	levels := strings.Fields(testLevels)
	level2, _ := time.ParseDuration(levels[1])
	cases := []struct {
		name string
		m    func(topic string, now time.Time) *Message
		due  func(sent time.Time) time.Time
	}{
		{"level", func(topic string, _ time.Time) *Message {
			return &Message{Topic: topic, Body: []byte("later"), DelayLevel: 2}
		}, func(sent time.Time) time.Time { return sent.Add(level2) }},
		{"deliver at", func(topic string, now time.Time) *Message {
			return &Message{Topic: topic, Body: []byte("later"), DeliverAt: now.Add(700 * time.Millisecond)}
		}, func(sent time.Time) time.Time { return sent.Add(700 * time.Millisecond) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := uniq("delayed")
			before := time.Now().Truncate(time.Millisecond)
			res, err := p.Send(ctxT(t, 10*time.Second), tc.m(topic, before))
			if err != nil {
				t.Fatal(err)
			}
			var got []*MessageExt
			waitFor(t, "the delayed message", func() bool { got = cl.stored(t, topic); return len(got) == 1 })
			e := got[0]
			if due := tc.due(before); e.StoreTimestamp.Before(due) {
				t.Fatalf("delivered at %v, due at %v", e.StoreTimestamp, due)
			}
			if e.MsgID != res.MsgID || string(e.Body) != "later" {
				t.Fatalf("delivered %s %q, sent %s", e.MsgID, e.Body, res.MsgID)
			}
		})
	}
}

func TestSendSelectsQueues(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 20*time.Second)
	topic := uniq("spread")
	perQueue := map[int32]int{}
	for range 8 {
		res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		perQueue[res.QueueID]++
	}
	if len(perQueue) != 4 || perQueue[0] != 2 {
		t.Fatalf("round-robin spread %v over 4 queues", perQueue)
	}
	// Messages with one sharding key go to one queue, in order.
	ordered := uniq("ordered")
	var queue int32 = -1
	for i := range 5 {
		res, err := p.Send(ctx, &Message{Topic: ordered, Body: []byte{byte('0' + i)}, ShardingKey: "order-42"})
		if err != nil {
			t.Fatal(err)
		}
		if queue >= 0 && res.QueueID != queue {
			t.Fatalf("sharding key moved from queue %d to %d", queue, res.QueueID)
		}
		queue = res.QueueID
	}
	if want := int32(message.TagsCode("order-42") % 4); queue != want && queue != -want {
		t.Fatalf("queue %d, Java's hash selector says %d", queue, want)
	}
	for i, e := range cl.waitStored(t, ordered, 5) {
		if e.Body[0] != byte('0'+i) || e.ShardingKey != "order-42" {
			t.Fatalf("message %d is %q (key %q)", i, e.Body, e.ShardingKey)
		}
	}
}

// Bad input fails with a clear error before anything is sent.
func TestSendRefusesBadInput(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.MaxMessageSize = 1024 })
	p := newProducer(t, c, ProducerOptions{})
	ctx := ctxT(t, 10*time.Second)
	body := []byte("x")
	cases := []struct {
		name string
		m    *Message
		want error
	}{
		{"nil", nil, ErrInvalidMessage},
		{"empty topic", &Message{Body: body}, ErrInvalidMessage},
		{"illegal topic", &Message{Topic: "a b", Body: body}, ErrInvalidMessage},
		{"long topic", &Message{Topic: strings.Repeat("t", 128), Body: body}, ErrInvalidMessage},
		{"system topic", &Message{Topic: "TBW102", Body: body}, ErrInvalidMessage},
		{"empty body", &Message{Topic: "t"}, ErrInvalidMessage},
		{"oversized body", &Message{Topic: "t", Body: make([]byte, 1025)}, ErrMessageTooLarge},
		{"key with space", &Message{Topic: "t", Body: body, Keys: []string{"a b"}}, ErrInvalidMessage},
		{"reserved property", &Message{Topic: "t", Body: body, Properties: map[string]string{"DELAY": "3"}}, ErrInvalidMessage},
		{"separator in property", &Message{Topic: "t", Body: body, Properties: map[string]string{"a": "x\x02y"}}, ErrInvalidMessage},
		{"negative delay", &Message{Topic: "t", Body: body, DelayLevel: -1}, ErrInvalidMessage},
		{"two delays", &Message{Topic: "t", Body: body, DelayLevel: 1, DeliverAt: time.Now()}, ErrInvalidMessage},
	}
	before := cl.b.Store().MaxPhysicalOffset()
	for _, tc := range cases {
		if _, err := p.Send(ctx, tc.m); !errors.Is(err, tc.want) || IsRetryable(err) {
			t.Errorf("%s: Send = %v, want %v", tc.name, err, tc.want)
		}
	}
	batches := []struct {
		name string
		msgs []*Message
		want error
	}{
		{"empty batch", nil, ErrInvalidMessage},
		{"two topics", []*Message{{Topic: "a", Body: body}, {Topic: "b", Body: body}}, ErrInvalidMessage},
		{"delayed", []*Message{{Topic: "a", Body: body, DelayLevel: 1}}, ErrInvalidMessage},
		{"too large together", []*Message{{Topic: "a", Body: make([]byte, 600)}, {Topic: "a", Body: make([]byte, 600)}}, ErrMessageTooLarge},
	}
	for _, tc := range batches {
		if _, err := p.SendBatch(ctx, tc.msgs); !errors.Is(err, tc.want) {
			t.Errorf("%s: SendBatch = %v, want %v", tc.name, err, tc.want)
		}
	}
	if after := cl.b.Store().MaxPhysicalOffset(); after != before {
		t.Fatalf("refused messages were stored: commit log grew from %d to %d", before, after)
	}
}

// A broker limit below the client's is a permanent refusal, not retried.
func TestSendRefusedByBroker(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) { o.Store.MaxMessageSize = 1024 })
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	before := cl.b.Store().MaxPhysicalOffset()
	_, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: uniq("big"), Body: make([]byte, 2048)})
	var be *BrokerError
	if !errors.As(err, &be) || be.Code != remoting.RespMessageIllegal || IsRetryable(err) {
		t.Fatalf("Send = %v, want a permanent MESSAGE_ILLEGAL", err)
	}
	if after := cl.b.Store().MaxPhysicalOffset(); after != before {
		t.Fatalf("refused message stored: commit log grew from %d to %d", before, after)
	}
}
