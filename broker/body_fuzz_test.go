package broker

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// FuzzDecodeBatch feeds SEND_BATCH_MESSAGE bodies to decodeBatch: it
// never panics, every message it returns lies within the body, and with no
// request properties to merge the messages encode back to the body.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(batchBody([]string{"a", "bc"}, []string{"", "TAGS\x01x\x02"}), "")
	f.Add(batchBody([]string{""}, []string{"KEYS\x01k\x02"}), "TAGS\x01t\x02KEYS\x01other\x02")
	f.Add(badBatchLength(), "")
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xf0, 0, 0}, "")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}, "")
	f.Fuzz(func(t *testing.T, body []byte, batchProps string) {
		base := message.Message{Topic: "T", Flag: 3}
		msgs, err := decodeBatch(base, body, batchProps)
		if err != nil {
			if msgs != nil {
				t.Fatalf("error %v with %d messages", err, len(msgs))
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no error and no message")
		}
		var out []byte
		for _, m := range msgs {
			if m.Topic != "T" || len(m.Body) > len(body) {
				t.Fatalf("message %+v out of a %d-byte body", m, len(body))
			}
			out = binary.BigEndian.AppendUint32(out, uint32(batchElemFixed+len(m.Body)+len(m.Properties)))
			out = binary.BigEndian.AppendUint32(out, 0)
			out = binary.BigEndian.AppendUint32(out, 0)
			out = binary.BigEndian.AppendUint32(out, uint32(m.Flag))
			out = binary.BigEndian.AppendUint32(out, uint32(len(m.Body)))
			out = append(out, m.Body...)
			out = binary.BigEndian.AppendUint16(out, uint16(len(m.Properties)))
			out = append(out, m.Properties...)
		}
		if batchProps == "" && len(out) == len(body) {
			// Magic and CRC are not kept: compare the rest.
			for pos := 0; pos < len(body); {
				total := int(binary.BigEndian.Uint32(body[pos:]))
				copy(out[pos+4:pos+12], body[pos+4:pos+12])
				pos += total
			}
		}
		if batchProps == "" && !bytes.Equal(out, body) {
			t.Fatalf("messages %v re-encode as %x, want %x", msgs, out, body)
		}
	})
}

// FuzzParseHeartbeat feeds HEART_BEAT bodies to parseHeartbeat: it never
// panics, and what it accepts has a client id and named groups, every
// consumer group a valid one.
func FuzzParseHeartbeat(f *testing.F) {
	f.Add(consumerHeartbeat("127.0.0.1@1", "orders", "g1", "g2"))
	f.Add(subscriptionHeartbeat("t", "a || b", `"a","b"`, `97,"98"`, 3))
	f.Add([]byte(`{"clientID":"c","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`))
	f.Add([]byte(`{"clientID":"c","consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"codeSet":[" 12 ",null,1e3]}]}]}`))
	f.Add([]byte(`{"clientID":"c","consumerDataSet":[{"groupName":"bad group"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, err := parseHeartbeat(body)
		if err != nil {
			return
		}
		if hb.ClientID == "" {
			t.Fatal("accepted a heartbeat with no clientID")
		}
		for _, p := range hb.ProducerDataSet {
			if p.GroupName == "" {
				t.Fatal("accepted a producer with no group")
			}
		}
		for _, c := range hb.ConsumerDataSet {
			if err := message.ValidateGroup(c.GroupName); err != nil {
				t.Fatalf("accepted consumer group %q: %v", c.GroupName, err)
			}
			for _, s := range c.SubscriptionDataSet {
				tagMatcher(s.SubString) // never panics
			}
		}
	})
}

// FuzzParseLockBody feeds LOCK_BATCH_MQ / UNLOCK_BATCH_MQ bodies to
// parseLockBody: it answers an error or a body naming a group and client,
// and the lock table takes and releases what it names.
func FuzzParseLockBody(f *testing.F) {
	f.Add([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","brokerName":"b","queueId":1}]}`))
	f.Add([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t","queueId":-1},{"topic":"t","queueId":-1}]}`))
	f.Add([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":null}`))
	f.Add([]byte(`{"consumerGroup":"g","clientId":"c","mqSet":[{"queueId":4294967296}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := remoting.NewRequest(remoting.ReqLockBatchMQ, nil)
		req.Body = body
		lb, resp := parseLockBody(req)
		if (lb == nil) == (resp == nil) {
			t.Fatalf("body %v, response %v: want exactly one", lb, resp)
		}
		if resp != nil {
			if resp.Code != remoting.RespSystemError || resp.Remark == "" {
				t.Fatalf("refusal without a reason: %v", resp)
			}
			return
		}
		if lb.ConsumerGroup == "" || lb.ClientID == "" {
			t.Fatalf("accepted %+v", lb)
		}
		lt := newLockTable()
		lt.lock(lb.ConsumerGroup, lb.ClientID, lb.MQSet)
		for _, mq := range lb.MQSet {
			if owner, ok := lt.owner(lb.ConsumerGroup, mq); !ok || owner != lb.ClientID {
				t.Fatalf("%v locked by %q (%v), want %q", mq, owner, ok, lb.ClientID)
			}
		}
		lt.unlock(lb.ConsumerGroup, lb.ClientID, lb.MQSet)
		if len(lt.groups) != 0 {
			t.Fatalf("unlock left %v", lt.groups)
		}
	})
}
