package broker

import (
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

func TestGetConsumeStats(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	if resp := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "T", "readQueueNums": "2", "writeQueueNums": "2"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("create: %v", resp)
	}
	if resp := call(t, c, remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "T", "queueId": "1", "commitOffset": "0"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %v", resp)
	}
	resp := call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "g"}, nil)
	want := `{"consumeTps":0.0,"offsetTable":{` +
		`{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0},` +
		`{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0}}}`
	if resp.Code != remoting.RespSuccess || string(resp.Body) != want {
		t.Fatalf("GET_CONSUME_STATS: code %d %q\n got %s\nwant %s", resp.Code, resp.Remark, resp.Body, want)
	}
	resp = call(t, c, remoting.ReqGetConsumeStats, map[string]string{"consumerGroup": "nobody"}, nil)
	if resp.Code != remoting.RespSuccess || !strings.HasSuffix(string(resp.Body), `"offsetTable":{}}`) {
		t.Errorf("unknown group: code %d body %s", resp.Code, resp.Body)
	}
	if resp = call(t, c, remoting.ReqGetConsumeStats, nil, nil); resp.Code != remoting.RespSystemError {
		t.Errorf("no group: code %d, want SYSTEM_ERROR", resp.Code)
	}
}
