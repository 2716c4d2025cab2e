package broker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// blockTopicsFile makes every write of the broker's topic table fail
// (its temporary file's name is taken by a directory) until the returned
// func is called.
func blockTopicsFile(t *testing.T, dir string) (unblock func()) {
	t.Helper()
	tmp := filepath.Join(dir, "config", "topics.json.tmp")
	if err := os.MkdirAll(filepath.Join(tmp, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.RemoveAll(tmp); err != nil {
			t.Fatal(err)
		}
	}
}

// A topic created on first use whose config could not be written is not
// served from memory: no send to it is acknowledged until it is on disk,
// so a restart (or a SIGKILL) cannot find acknowledged messages in a
// topic the broker no longer has.
func TestAutoCreatedTopicNotWrittenRefusesSends(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	unblock := blockTopicsFile(t, o.Store.Dir)
	acked := 0
	for i := range 3 {
		r := call(t, c, remoting.ReqSendMessage, sendExt("fresh", 0, ""), []byte("m"))
		if r.Code == remoting.RespSuccess {
			acked++
			t.Errorf("send %d to a topic whose config was never written: acknowledged", i)
		}
	}
	if _, ok := b.topics.get("fresh"); ok {
		t.Error("the topic whose config could not be written is in the broker's table")
	}
	unblock()
	b.Close()
	b = startBroker(t, o)
	if _, ok := b.topics.get("fresh"); !ok && acked > 0 {
		t.Fatalf("%d sends to topic fresh were acknowledged, but after a restart the broker has no such topic", acked)
	}
	c = dial(t, b)
	if r := call(t, c, remoting.ReqSendMessage, sendExt("fresh", 0, ""), []byte("m")); r.Code != remoting.RespSuccess {
		t.Fatalf("send once the file is writable: %d %s", r.Code, r.Remark)
	}
	b.Close()
	b = startBroker(t, o)
	if _, ok := b.topics.get("fresh"); !ok {
		t.Fatal("topic fresh, created by an acknowledged send, is gone after a restart")
	}
}

// An administrative update of a topic that could not be written is
// answered with an error and leaves the topic as it was: the broker does
// not serve queues its file does not have.
func TestTopicUpdateNotWrittenLeavesTheTopic(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "2", "writeQueueNums": "2"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("create: %d %s", r.Code, r.Remark)
	}
	unblock := blockTopicsFile(t, o.Store.Dir)
	defer unblock()
	if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "8", "writeQueueNums": "8"}, nil); r.Code == remoting.RespSuccess {
		t.Fatal("an update that could not be written succeeded")
	}
	if tc, _ := b.topics.get("orders"); tc.WriteQueueNums != 2 {
		t.Fatalf("after a failed update orders has %d write queues, want the 2 its file has", tc.WriteQueueNums)
	}
	if r := call(t, c, remoting.ReqSendMessage, sendExt("orders", 5, ""), []byte("m")); r.Code == remoting.RespSuccess {
		t.Fatal("a send to queue 5, which only the update that failed made, was acknowledged")
	}
	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code == remoting.RespSuccess {
		t.Fatal("a deletion that could not be written succeeded")
	}
	if _, ok := b.topics.get("orders"); !ok {
		t.Fatal("after a deletion that could not be written, orders is gone from the broker's table but not from its file")
	}
}

// A consumer group's retry topic that could not be written (a full disk)
// does not keep the group's members out: the heartbeat is answered, they
// are members (a group with no retry topic is one, as one whose name makes
// no valid topic), and a later heartbeat creates the topic once the file
// can be written. Refusing the heartbeat left a new group with no member,
// consuming nothing, for as long as the file could not be written.
func TestHeartbeatWhileTopicsFileUnwritableStillAMember(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	unblock := blockTopicsFile(t, o.Store.Dir)
	if r := call(t, c, remoting.ReqHeartBeat, nil, consumerHeartbeat("127.0.0.1@1", "orders", "newgroup")); r.Code != remoting.RespSuccess {
		t.Fatalf("heartbeat of a new group while the topics file cannot be written: %d %s", r.Code, r.Remark)
	}
	if code, ids := listConsumers(t, c, "newgroup"); code != remoting.RespSuccess || len(ids) != 1 {
		t.Fatalf("consumer list: %d %v, want the member", code, ids)
	}
	if _, ok := b.topics.get(RetryTopic("newgroup")); ok {
		t.Fatal("a retry topic whose config could not be written is served")
	}
	unblock()
	hbOK(t, c, consumerHeartbeat("127.0.0.1@1", "orders", "newgroup"))
	if _, ok := b.topics.get(RetryTopic("newgroup")); !ok {
		t.Fatal("the retry topic was not created once the file could be written")
	}
}
