package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
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
	dialConsumer(t, b, "C1", "cg", h, nil)
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

// startSilentConsumer registers clientID as a consumer of group whose
// connection reads the broker's forwarded calls and never answers them
// (until the test ends); got receives each call.
func startSilentConsumer(t *testing.T, b *Broker, clientID, group string) <-chan *remoting.Command {
	t.Helper()
	got := make(chan *remoting.Command, 1024)
	release := make(chan struct{})
	h := remoting.HandlerFunc(func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerRunningInfo && req.Code != remoting.ReqConsumeMessageDirectly {
			return nil
		}
		got <- req
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	dialConsumer(t, b, clientID, group, h, func() { close(release) })
	return got
}

// The consumer is handed the broker's own name with CONSUME_MESSAGE_DIRECTLY
// (RocketMQ's consumeMessageDirectly sets brokerName before forwarding:
// mqadmin consumeMessage sends none, and the clients build the message's
// queue from it), not whatever the administration tool sent.
func TestConsumeMessageDirectlyCarriesTheBrokersName(t *testing.T) {
	o := testOptions(t)
	o.BrokerName = "broker-x"
	b := startBroker(t, o)
	seen := make(chan *remoting.Command, 2)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqConsumeMessageDirectly {
			return nil
		}
		seen <- req
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	dialConsumer(t, b, "C1", "cg", h, nil)
	admin := dial(t, b)
	sent := mustSend(t, admin, "orders", 0, props("UNIQ_KEY", "u1"), "direct")
	waitQueue(t, b, "orders", 0, 1)
	for _, ext := range []map[string]string{
		{"consumerGroup": "cg", "clientId": "C1", "msgId": sent.Ext("msgId"), "topic": "orders"}, // as mqadmin sends it
		{"consumerGroup": "cg", "clientId": "C1", "msgId": sent.Ext("msgId"), "brokerName": "elsewhere"},
	} {
		if resp := call(t, admin, remoting.ReqConsumeMessageDirectly, ext, nil); resp.Code != remoting.RespSuccess {
			t.Fatalf("CONSUME_MESSAGE_DIRECTLY %v: code %d %q", ext, resp.Code, resp.Remark)
		}
		if req := <-seen; req.Ext("brokerName") != "broker-x" {
			t.Fatalf("admin sent %v: the consumer got brokerName %q, want the broker's, broker-x", ext, req.Ext("brokerName"))
		}
	}
}

// A consumer that does not answer in time is CONSUME_MSG_TIMEOUT, as
// RocketMQ's callConsumer answers a RemotingTimeoutException.
func TestCallConsumerTimeoutIsConsumeMsgTimeout(t *testing.T) {
	defer func(d time.Duration) { callConsumerTimeout = d }(callConsumerTimeout)
	callConsumerTimeout = 200 * time.Millisecond
	b := startBroker(t, testOptions(t))
	startSilentConsumer(t, b, "C1", "cg")
	admin := dial(t, b)
	resp := call(t, admin, remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "cg", "clientId": "C1"}, nil)
	if resp.Code != remoting.RespConsumeMsgTimeout || !strings.Contains(resp.Remark, "Timeout") {
		t.Fatalf("a consumer that does not answer: code %d %q, want CONSUME_MSG_TIMEOUT (%d)", resp.Code, resp.Remark, remoting.RespConsumeMsgTimeout)
	}
}

// The calls the broker forwards to consumers are bounded in all (as
// RocketMQ's admin thread pool bounds them): an administration tool that
// sends many, to a consumer that does not answer, gets SYSTEM_BUSY for
// those past the bound at once, rather than have the broker hold each
// (with CONSUME_MESSAGE_DIRECTLY, a whole message read from the log) for
// callConsumerTimeout.
func TestCallConsumerBoundsCallsInFlight(t *testing.T) {
	b := startBroker(t, testOptions(t))
	got := startSilentConsumer(t, b, "C1", "cg")
	admin := dial(t, b)
	sent := mustSend(t, admin, "orders", 0, props("UNIQ_KEY", "u1"), strings.Repeat("x", 64<<10))
	waitQueue(t, b, "orders", 0, 1)

	n := maxConsumerCalls + 8
	answers := make(chan *remoting.Command, n)
	for range n {
		go func() {
			req := remoting.NewRequest(remoting.ReqConsumeMessageDirectly, map[string]string{
				"consumerGroup": "cg", "clientId": "C1", "msgId": sent.Ext("msgId")})
			resp, err := admin.Invoke(context.Background(), req)
			if err != nil {
				resp = remoting.NewResponse(req, -1, err.Error())
			}
			answers <- resp
		}()
	}
	deadline := time.After(5 * time.Second)
	for busy := 0; busy < n-maxConsumerCalls; {
		select {
		case resp := <-answers:
			if resp.Code != remoting.RespSystemBusy {
				t.Fatalf("a call past the bound: code %d %q, want SYSTEM_BUSY", resp.Code, resp.Remark)
			}
			busy++
		case <-deadline:
			t.Fatalf("%d of %d calls to a consumer that does not answer refused within 5 s, want %d SYSTEM_BUSY (at most %d held)",
				busy, n, n-maxConsumerCalls, maxConsumerCalls)
		}
	}
	if len(got) > maxConsumerCalls {
		t.Fatalf("the consumer was sent %d calls, want at most %d", len(got), maxConsumerCalls)
	}
}

// Of two connections with one client id (a client that reconnected while
// its old connection, dead without a FIN, is still open on the broker's
// side), the call goes to the one that heartbeated last: each call, not
// whichever the member table yields first.
func TestCallConsumerPrefersTheConnectionHeardFromLast(t *testing.T) {
	defer func(d time.Duration) { callConsumerTimeout = d }(callConsumerTimeout)
	callConsumerTimeout = 100 * time.Millisecond
	b := startBroker(t, testOptions(t))
	startSilentConsumer(t, b, "C1", "cg") // the stale connection
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerRunningInfo {
			return nil
		}
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	dialConsumer(t, b, "C1", "cg", h, nil) // the live connection
	admin := dial(t, b)
	for i := range 10 {
		resp := call(t, admin, remoting.ReqGetConsumerRunningInfo, map[string]string{"consumerGroup": "cg", "clientId": "C1"}, nil)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("call %d: code %d %q, want the live connection's answer", i, resp.Code, resp.Remark)
		}
	}
}

// dialConsumer connects to b as member clientID of group (subscribed to
// orders) whose requests from the broker h serves; the connection closes
// when the test ends, after onClose.
func dialConsumer(t *testing.T, b *Broker, clientID, group string, h remoting.Handler, onClose func()) *remoting.Conn {
	t.Helper()
	c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if onClose != nil {
			onClose()
		}
		c.Close()
	})
	hbOK(t, c, consumerHeartbeat(clientID, "orders", group))
	return c
}

// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (mqadmin getConsumerStatus) asks
// every online consumer of the group for its offsets of the topic
// (GET_CONSUMER_STATUS_FROM_CLIENT) and answers them by client id, as
// RocketMQ's Broker2Client.getConsumeStatus; one that refuses or does not
// answer in time is left out, clientAddr names one consumer, and a group
// with none online or a request without its topic is SYSTEM_ERROR.
func TestGetConsumerStatusAsksEveryConsumer(t *testing.T) {
	old := consumerStatusTimeout
	consumerStatusTimeout = 300 * time.Millisecond
	t.Cleanup(func() { consumerStatusTimeout = old })
	b := startBroker(t, testOptions(t))
	asked := make(chan string, 16)
	answering := func(id string, answer func(req *remoting.Command) *remoting.Command) remoting.Handler {
		return remoting.HandlerFunc(func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
			if req.Code != remoting.ReqGetConsumerStatusFromClient {
				return nil
			}
			asked <- id + " " + req.Ext("group") + " " + req.Ext("topic")
			return answer(req)
		})
	}
	dialConsumer(t, b, "C1", "cg", answering("C1", func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(`{"messageQueueTable":{{"brokerName":"broker-a","queueId":1,"topic":"orders"}:7,` +
			`{"brokerName":"broker-a","queueId":0,"topic":"orders"}:5}}`)
		return resp
	}), nil)
	dialConsumer(t, b, "C2", "cg", answering("C2", func(req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.RespSystemError, "no such group here")
	}), nil)
	release := make(chan struct{})
	dialConsumer(t, b, "C3", "cg", answering("C3", func(*remoting.Command) *remoting.Command {
		<-release
		return nil
	}), func() { close(release) })
	admin := dial(t, b)

	resp := call(t, admin, remoting.ReqInvokeBrokerToGetConsumerStatus, map[string]string{"topic": "orders", "group": "cg"}, nil)
	want := `{"consumerTable":{"C1":{{"brokerName":"broker-a","queueId":1,"topic":"orders"}:7,` +
		`{"brokerName":"broker-a","queueId":0,"topic":"orders"}:5}},"messageQueueTable":{}}`
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Fatalf("INVOKE_BROKER_TO_GET_CONSUMER_STATUS: code %d %q body %s, want %s", resp.Code, resp.Remark, resp.Body, want)
	}
	got := map[string]bool{}
	for range 3 {
		got[<-asked] = true
	}
	if !got["C1 cg orders"] || !got["C2 cg orders"] || !got["C3 cg orders"] {
		t.Fatalf("asked %v, want every consumer of cg about orders", got)
	}
	resp = call(t, admin, remoting.ReqInvokeBrokerToGetConsumerStatus, map[string]string{"topic": "orders", "group": "cg", "clientAddr": "C2"}, nil)
	if resp.Code != remoting.RespSuccess || string(resp.Body) != `{"consumerTable":{},"messageQueueTable":{}}` || <-asked != "C2 cg orders" {
		t.Fatalf("clientAddr C2: code %d %q body %s", resp.Code, resp.Remark, resp.Body)
	}
	// A client id no member has: an empty table, as RocketMQ's (its
	// consumers are online, so "no consumer online" would be wrong).
	resp = call(t, admin, remoting.ReqInvokeBrokerToGetConsumerStatus, map[string]string{"topic": "orders", "group": "cg", "clientAddr": "C9"}, nil)
	if resp.Code != remoting.RespSuccess || string(resp.Body) != `{"consumerTable":{},"messageQueueTable":{}}` {
		t.Fatalf("clientAddr C9: code %d %q body %s, want an empty table", resp.Code, resp.Remark, resp.Body)
	}
	for _, ext := range []map[string]string{{"topic": "orders", "group": "nobody"}, {"group": "cg"}} {
		if resp := call(t, admin, remoting.ReqInvokeBrokerToGetConsumerStatus, ext, nil); resp.Code != remoting.RespSystemError {
			t.Errorf("%v: code %d %q, want SYSTEM_ERROR", ext, resp.Code, resp.Remark)
		}
	}
}

// Two consumers sharing a client id both answer; the answer holds one
// table under that id (RocketMQ keys the table by client id), not the
// two run together with every queue twice.
func TestGetConsumerStatusOneTablePerClientID(t *testing.T) {
	b := startBroker(t, testOptions(t))
	for _, q := range []string{"0", "1"} {
		dialConsumer(t, b, "C1", "cg", remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
			if req.Code != remoting.ReqGetConsumerStatusFromClient {
				return nil
			}
			resp := remoting.NewResponse(req, remoting.RespSuccess, "")
			resp.Body = []byte(`{"messageQueueTable":{{"brokerName":"broker-a","queueId":` + q + `,"topic":"orders"}:3}}`)
			return resp
		}), nil)
	}
	waitFor(t, "both connections members", func() bool { return len(b.groupTable().consumerMembers("cg")) == 2 })
	resp := call(t, dial(t, b), remoting.ReqInvokeBrokerToGetConsumerStatus, map[string]string{"topic": "orders", "group": "cg"}, nil)
	if resp.Code != remoting.RespSuccess || strings.Count(string(resp.Body), `"C1"`) != 1 || strings.Count(string(resp.Body), `"queueId"`) != 1 {
		t.Fatalf("code %d %q body %s, want one table of one queue under C1", resp.Code, resp.Remark, resp.Body)
	}
}

// mqadmin getConsumerStatus waits 5 s for the broker's answer
// (DefaultMQAdminExt's timeoutMillis): a consumer that hangs is left out
// soon enough for the tool still to get the others' offsets, not a
// timeout. The real per-consumer bound is used.
func TestGetConsumerStatusHungConsumerWithinToolTimeout(t *testing.T) {
	const mqadminTimeout = 5 * time.Second
	b := startBroker(t, testOptions(t))
	dialConsumer(t, b, "C1", "cg", remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerStatusFromClient {
			return nil
		}
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(`{"messageQueueTable":{{"brokerName":"broker-a","queueId":0,"topic":"orders"}:5}}`)
		return resp
	}), nil)
	release := make(chan struct{})
	dialConsumer(t, b, "C2", "cg", remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code == remoting.ReqGetConsumerStatusFromClient {
			<-release
		}
		return nil
	}), func() { close(release) })
	ac, err := admin.Dial(t.Context(), b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ctx, cancel := context.WithTimeout(t.Context(), mqadminTimeout)
	defer cancel()
	rows, err := ac.ConsumerStatus(ctx, "cg", "orders", "")
	if err != nil || len(rows) != 1 || rows[0].ClientID != "C1" || rows[0].Offset != 5 {
		t.Fatalf("consumer status with C2 hung, within mqadmin's %v: %+v, %v; want C1's offset", mqadminTimeout, rows, err)
	}
}
