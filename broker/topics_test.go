package broker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
)

func TestTopicAdministration(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "8", "writeQueueNums": "8", "perm": "6"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("create: %d %s", r.Code, r.Remark)
	}
	for _, bad := range []map[string]string{{"topic": "bad topic"}, {"topic": "t", "readQueueNums": "x"}, {"topic": "t", "writeQueueNums": "0"}} {
		if r := call(t, c, remoting.ReqUpdateAndCreateTopic, bad, nil); r.Code == remoting.RespSuccess {
			t.Errorf("create %v succeeded", bad)
		}
	}
	r := call(t, c, remoting.ReqGetAllTopicConfig, nil, nil)
	var got struct {
		TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if tc := got.TopicConfigTable["orders"]; tc.WriteQueueNums != 8 || tc.Perm != PermRW {
		t.Fatalf("orders = %+v", tc)
	}
	if tc := got.TopicConfigTable[delay.ScheduleTopic]; tc.ReadQueueNums != 5 {
		t.Fatalf("schedule topic has %d queues, want one per delay level (5)", tc.ReadQueueNums)
	}
	// Topics survive a restart.
	b.Close()
	b = startBroker(t, o)
	if tc, ok := b.topics.get("orders"); !ok || tc.WriteQueueNums != 8 {
		t.Fatalf("after restart orders = %+v %v", tc, ok)
	}
	c = dial(t, b)
	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", r.Code, r.Remark)
	}
	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code != remoting.RespTopicNotExist {
		t.Fatalf("second delete: %d", r.Code)
	}
	if r := call(t, c, 9999, nil, nil); r.Code != remoting.RespRequestCodeNotSupported {
		t.Fatalf("unknown code answered %d", r.Code)
	}
}

// The broker's own topics cannot be created, changed or deleted by
// administration: a created half-message topic would let anyone pull
// uncommitted transactional messages.
func TestSystemTopicsRefuseAdministration(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	ext := sendExt("orders", 0, props("TRAN_MSG", "true", "PGROUP", "pg", "UNIQ_KEY", "U1"))
	ext["sysFlag"] = "4" // prepared
	if r := call(t, c, remoting.ReqSendMessage, ext, []byte("uncommitted")); r.Code != remoting.RespSuccess {
		t.Fatalf("half send: %d %s", r.Code, r.Remark)
	}
	for _, topic := range []string{txn.HalfTopic, txn.OpTopic, delay.ScheduleTopic, delay.TimerTopic, "TBW102", "rmq_sys_anything"} {
		r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": topic, "readQueueNums": "1", "writeQueueNums": "1", "perm": "6"}, nil)
		if r.Code != remoting.RespSystemError || !strings.Contains(r.Remark, "conflict with system topic") {
			t.Errorf("create %s: %d %q, want refused as a system topic", topic, r.Code, r.Remark)
		}
		if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil); r.Code != remoting.RespSystemError {
			t.Errorf("delete %s: %d %q, want refused", topic, r.Code, r.Remark)
		}
	}
	if _, ok := b.topics.get(txn.HalfTopic); ok {
		t.Fatalf("%s is in the topic table", txn.HalfTopic)
	}
	if r := pull(t, c, txn.HalfTopic, 0, 0, 0, "*", 0); r.Code == remoting.RespSuccess {
		t.Fatalf("pulled %d uncommitted half messages", len(decodeAll(t, r.Body)))
	}
	// The delay topic the broker made for itself is still there.
	if _, ok := b.topics.get(delay.ScheduleTopic); !ok {
		t.Fatalf("%s was removed", delay.ScheduleTopic)
	}
}

// A system topic an older broker let administration create is dropped
// from the topic table when it is loaded: it could expose uncommitted half
// messages, and it can no longer be deleted.
func TestLoadedTopicTableDropsSystemTopics(t *testing.T) {
	o := testOptions(t)
	seed := []TopicConfig{
		{TopicName: txn.HalfTopic, ReadQueueNums: 1, WriteQueueNums: 1, Perm: PermRW},
		{TopicName: "orders", ReadQueueNums: 2, WriteQueueNums: 2, Perm: PermRW},
	}
	b, err := json.Marshal(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(o.Store.Dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.Store.Dir, "config", "topics.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	br := startBroker(t, o)
	c := dial(t, br)
	ext := sendExt("orders", 0, props("TRAN_MSG", "true", "PGROUP", "pg", "UNIQ_KEY", "U1"))
	ext["sysFlag"] = "4" // prepared
	if r := call(t, c, remoting.ReqSendMessage, ext, []byte("uncommitted")); r.Code != remoting.RespSuccess {
		t.Fatalf("half send: %d %s", r.Code, r.Remark)
	}
	if _, ok := br.topics.get(txn.HalfTopic); ok {
		t.Fatalf("%s loaded into the topic table", txn.HalfTopic)
	}
	if r := pull(t, c, txn.HalfTopic, 0, 0, 0, "*", 0); r.Code == remoting.RespSuccess {
		t.Fatalf("pulled %d uncommitted half messages", len(decodeAll(t, r.Body)))
	}
	if tc, ok := br.topics.get("orders"); !ok || tc.WriteQueueNums != 2 {
		t.Fatalf("orders = %+v, %v; want it loaded with 2 queues", tc, ok)
	}
	if _, ok := br.topics.get(delay.ScheduleTopic); !ok {
		t.Fatalf("%s missing", delay.ScheduleTopic)
	}
}
