package broker

import (
	"context"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// An administration tool's GET_CONSUMER_RUNNING_INFO and
// CONSUME_MESSAGE_DIRECTLY reach the consumer they name through the
// broker, and its answer comes back (RocketMQ's callConsumer); a consumer
// not online, a bad message id or a missing header field is SYSTEM_ERROR.
func TestCallConsumerForwardsToTheNamedClient(t *testing.T) {
	b := startBroker(t, testOptions(t))
	seen := make(chan *remoting.Command, 4)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerRunningInfo && req.Code != remoting.ReqConsumeMessageDirectly {
			return nil // NOTIFY_CONSUMER_IDS_CHANGED
		}
		seen <- req
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(`{"from":"C1","code":` + map[int16]string{remoting.ReqGetConsumerRunningInfo: "307", remoting.ReqConsumeMessageDirectly: "309"}[req.Code] + `}`)
		return resp
	})
	consumer, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { consumer.Close() })
	hbOK(t, consumer, consumerHeartbeat("C1", "orders", "cg"))
	admin := dial(t, b)

	resp := call(t, admin, remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "cg", "clientId": "C1", "jstackEnable": "false"}, nil)
	if resp.Code != remoting.RespSuccess || string(resp.Body) != `{"from":"C1","code":307}` {
		t.Fatalf("GET_CONSUMER_RUNNING_INFO: code %d %q body %s, want the consumer's answer", resp.Code, resp.Remark, resp.Body)
	}
	if req := <-seen; req.Code != remoting.ReqGetConsumerRunningInfo || req.Ext("clientId") != "C1" || req.Ext("consumerGroup") != "cg" {
		t.Fatalf("the consumer got %d %v", req.Code, req.ExtFields)
	}

	sent := mustSend(t, admin, "orders", 0, props("UNIQ_KEY", "u1"), "direct")
	waitQueue(t, b, "orders", 0, 1)
	resp = call(t, admin, remoting.ReqConsumeMessageDirectly, map[string]string{"consumerGroup": "cg", "clientId": "C1",
		"msgId": sent.Ext("msgId"), "brokerName": "broker-a"}, nil)
	if resp.Code != remoting.RespSuccess || string(resp.Body) != `{"from":"C1","code":309}` {
		t.Fatalf("CONSUME_MESSAGE_DIRECTLY: code %d %q body %s, want the consumer's answer", resp.Code, resp.Remark, resp.Body)
	}
	req := <-seen
	if msgs, err := message.DecodeAll(req.Body); err != nil || len(msgs) != 1 || string(msgs[0].Body) != "direct" {
		t.Fatalf("the consumer got body %v (%v), want the message", msgs, err)
	}

	for _, c := range []struct {
		code int16
		ext  map[string]string
		want string
	}{
		{remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "cg", "clientId": "C2"}, "not online"},
		{remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "other", "clientId": "C1"}, "not online"},
		{remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "cg"}, "clientId"},
		{remoting.ReqConsumeMessageDirectly, map[string]string{"consumerGroup": "cg", "clientId": "C1", "msgId": "nope"}, "not an offset message id"},
		{remoting.ReqConsumeMessageDirectly, map[string]string{"consumerGroup": "cg", "clientId": "C1", "msgId": "0A000001000027DB00000000DEADBEEF"}, "no message found"},
	} {
		resp := call(t, admin, c.code, c.ext, nil)
		if resp.Code != remoting.RespSystemError || !strings.Contains(resp.Remark, c.want) {
			t.Errorf("%d %v: code %d %q, want SYSTEM_ERROR saying %q", c.code, c.ext, resp.Code, resp.Remark, c.want)
		}
	}
}
