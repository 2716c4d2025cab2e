package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// replyHeader is a SEND_REPLY_MESSAGE request's SendMessageRequestHeader
// (V1 names) for topic with props.
func replyHeader(topic, props string) map[string]string {
	return map[string]string{"producerGroup": "responders", "topic": topic, "defaultTopic": "TBW102",
		"defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": "0", "bornTimestamp": "1700000000000",
		"flag": "0", "properties": props, "reconsumeTimes": "0", "unitMode": "false"}
}

// dialRequester connects a raw client that heartbeats as producer client
// id and answers PUSH_REPLY_MESSAGE_TO_CLIENT with code, sending each push
// to the returned channel.
func dialRequester(t *testing.T, b *Broker, id string, code int16) <-chan *remoting.Command {
	t.Helper()
	pushes := make(chan *remoting.Command, 8)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqPushReplyMessageToClient {
			return nil
		}
		pushes <- req
		return remoting.NewResponse(req, code, "")
	})
	c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hbOK(t, c, []byte(`{"clientID":"`+id+`","producerDataSet":[{"groupName":"requesters"}],"consumerDataSet":[]}`))
	return pushes
}

func TestReplyIsPushedToTheRequesterAndStored(t *testing.T) {
	o := testOptions(t)
	o.ClusterName = "payments"
	b := startBroker(t, o)
	pushes := dialRequester(t, b, "requester-1", remoting.RespSuccess)
	replyTopic := ReplyTopic("payments")
	if tc, ok := b.topics.get(replyTopic); !ok || tc.WriteQueueNums != 1 || tc.Perm != PermRW {
		t.Fatalf("reply topic %s: %+v %v", replyTopic, tc, ok)
	}

	c := dial(t, b)
	p := props("MSG_TYPE", "reply", "CORRELATION_ID", "corr-7", "REPLY_TO_CLIENT", "requester-1", "TTL", "3")
	for _, code := range []int16{remoting.ReqSendReplyMessage, remoting.ReqSendReplyMessageV2} {
		ext := replyHeader(replyTopic, p)
		if code == remoting.ReqSendReplyMessageV2 {
			ext = map[string]string{"a": "responders", "b": replyTopic, "c": "TBW102", "d": "4", "e": "0", "f": "0",
				"g": "1700000000000", "h": "0", "i": p, "j": "0", "k": "false"}
		}
		resp := call(t, c, code, ext, []byte("pong"))
		if resp.Code != remoting.RespSuccess || resp.Ext("msgId") == "" || resp.Ext("msgId") == "0" {
			t.Fatalf("code %d: reply answered %d %q %v", code, resp.Code, resp.Remark, resp.ExtFields)
		}
		var push *remoting.Command
		select {
		case push = <-pushes:
		case <-time.After(10 * time.Second):
			t.Fatalf("code %d: no PUSH_REPLY_MESSAGE_TO_CLIENT", code)
		}
		if string(push.Body) != "pong" || push.Ext("topic") != replyTopic || push.Ext("producerGroup") != "responders" ||
			push.Ext("bornTimestamp") != "1700000000000" || push.Ext("storeHost") == "" || push.Ext("bornHost") == "" {
			t.Fatalf("code %d: push %q %v", code, push.Body, push.ExtFields)
		}
		props := push.Ext("properties")
		if v, _ := message.Property(props, "CORRELATION_ID"); v != "corr-7" {
			t.Fatalf("code %d: pushed properties %q", code, props)
		}
		if v, _ := message.Property(props, message.PropertyPushReplyTime); v == "" {
			t.Fatalf("code %d: no PUSH_REPLY_TIME in %q", code, props)
		}
	}
	// Both replies are stored in the reply topic, as RocketMQ stores them.
	waitQueue(t, b, replyTopic, 0, 2)
}

func TestReplyRefusals(t *testing.T) {
	b := startBroker(t, testOptions(t))
	dialRequester(t, b, "refusing", remoting.RespSystemError)
	c := dial(t, b)
	replyTopic := ReplyTopic(DefaultClusterName)
	for _, tc := range []struct {
		name, topic, props, remark string
		code                       int16
	}{
		{"no REPLY_TO_CLIENT", replyTopic, props("CORRELATION_ID", "c1"), "REPLY_TO_CLIENT", remoting.RespSystemError},
		{"unknown requester", replyTopic, props("REPLY_TO_CLIENT", "nobody"), "channel of <nobody> not found", remoting.RespSystemError},
		{"requester refuses", replyTopic, props("REPLY_TO_CLIENT", "refusing"), "push reply message to refusing fail", remoting.RespSystemError},
		{"system topic", "RMQ_SYS_TRANS_HALF_TOPIC", props("REPLY_TO_CLIENT", "refusing"), "forbidden", remoting.RespNoPermission},
		{"bad topic", "bad topic", props("REPLY_TO_CLIENT", "refusing"), "illegal", remoting.RespSystemError},
	} {
		resp := call(t, c, remoting.ReqSendReplyMessage, replyHeader(tc.topic, tc.props), []byte("pong"))
		if resp.Code != tc.code || !strings.Contains(resp.Remark, tc.remark) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, resp.Code, resp.Remark, tc.code, tc.remark)
		}
	}
	// A reply that could not be pushed is still stored, for the record.
	waitQueue(t, b, replyTopic, 0, 3)
	// Administration cannot delete or recreate the reply topic.
	for _, code := range []int16{remoting.ReqDeleteTopicInBroker, remoting.ReqUpdateAndCreateTopic} {
		if resp := call(t, c, code, map[string]string{"topic": replyTopic}, nil); resp.Code == remoting.RespSuccess {
			t.Errorf("code %d on the reply topic succeeded", code)
		}
	}
}
