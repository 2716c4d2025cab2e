package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
)

// group running asks each online consumer of a group, through the broker,
// for its running state and prints each report.
func TestAdminGroupRunning(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerRunningInfo {
			return nil
		}
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(`{"properties":{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"},"client":"` + req.Ext("clientId") + `"}`)
		return resp
	})
	fakeConsumer(t, addr, h)

	var got []admin.RunningInfo
	runAdmin(t, addr, &got, "group", "running", "cg")
	if len(got) != 1 || got[0].ClientID != "C1" || got[0].Err != "" || !strings.Contains(got[0].Info, `"client":"C1"`) {
		t.Fatalf("group running cg: %+v, want C1's report", got)
	}
	table, err := run(t, "group", "running", "cg", "--broker", addr)
	if err != nil || !strings.Contains(table, "== C1") || !strings.Contains(table, "PROP_CONSUME_TYPE") {
		t.Fatalf("group running table: %v\n%s", err, table)
	}
	if err := runAdminErr(t, addr, "group", "running", "cg", "--client", "C9"); !strings.Contains(err.Error(), "no consumer of cg answered") {
		t.Fatalf("group running --client C9: %v", err)
	}
}

// group status asks a group's online consumers, through the broker, how
// far each has consumed the queues of a topic and prints a row per queue.
func TestAdminGroupStatus(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code != remoting.ReqGetConsumerStatusFromClient {
			return nil
		}
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(`{"messageQueueTable":{{"brokerName":"broker-a","queueId":1,"topic":"` + req.Ext("topic") + `"}:9,` +
			`{"brokerName":"broker-a","queueId":0,"topic":"` + req.Ext("topic") + `"}:4}}`)
		return resp
	})
	fakeConsumer(t, addr, h)

	var rows []admin.ClientQueueOffset
	runAdmin(t, addr, &rows, "group", "status", "cg", "--topic", "orders")
	if len(rows) != 2 || rows[0] != (admin.ClientQueueOffset{ClientID: "C1", Topic: "orders", BrokerName: "broker-a", QueueID: 0, Offset: 4}) ||
		rows[1].QueueID != 1 || rows[1].Offset != 9 {
		t.Fatalf("group status cg --topic orders: %+v", rows)
	}
	table, err := run(t, "group", "status", "cg", "--topic", "orders", "--broker", addr)
	if err != nil || !strings.Contains(table, "CLIENT") || !strings.Contains(table, "C1") {
		t.Fatalf("group status table: %v\n%s", err, table)
	}
	if err := runAdminErr(t, addr, "group", "status", "nobody", "--topic", "orders"); !strings.Contains(err.Error(), "No Any Consumer online") {
		t.Fatalf("group status of a group with no consumer online: %v", err)
	}
	if err := runAdminErr(t, addr, "group", "status", "cg", "--topic", "bad topic"); !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("group status with a bad topic: %v", err)
	}
}

// fakeConsumer connects to the broker at addr as consumer C1 of group cg
// (one heartbeat), answering the broker's calls with h, until the test
// ends.
func fakeConsumer(t *testing.T, addr string, h remoting.Handler) {
	t.Helper()
	conn, err := remoting.Dial(t.Context(), addr, remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := remoting.NewRequest(remoting.ReqHeartBeat, nil)
	req.Body = []byte(`{"clientID":"C1","producerDataSet":[],"consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY",` +
		`"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,"subscriptionDataSet":[]}]}`)
	if resp, err := conn.Invoke(ctx, req); err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat: %v, %v", resp, err)
	}
}
