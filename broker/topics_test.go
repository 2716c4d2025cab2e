package broker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
)

func TestTopicAdministration(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "8", "writeQueueNums": "8", "perm": "6"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("create: %d %s", r.Code, r.Remark)
	}
	for _, bad := range []map[string]string{{"topic": "bad topic"}, {"topic": "t", "readQueueNums": "x"}, {"topic": "t", "writeQueueNums": "0"},
		{"topic": "t", "perm": "8"}, {"topic": "t", "perm": "-1"}} {
		if r := call(t, c, remoting.ReqUpdateAndCreateTopic, bad, nil); r.Code == remoting.RespSuccess {
			t.Errorf("create %v succeeded", bad)
		}
	}
	if _, ok := b.topics.get("t"); ok {
		t.Fatal("a refused creation made topic t")
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

// queueOffsetExt reads a GET_MIN_OFFSET or GET_MAX_OFFSET answer.
func queueOffsetExt(t *testing.T, c *remoting.Conn, code int16, topic string, qid int) string {
	t.Helper()
	r := call(t, c, code, queueExt(topic, qid), nil)
	if r.Code != remoting.RespSuccess {
		t.Fatalf("offset request %d for %s/%d: %d %s", code, topic, qid, r.Code, r.Remark)
	}
	return r.Ext("offset")
}

// TestDeleteTopicDropsQueuesAndOffsets deletes a topic that has messages
// and a group's committed offsets, and creates it again: it starts empty,
// its first message is at queue offset 0, and the group has no offset on
// it, also after a restart (RocketMQ's deleteTopic drops the consume
// queues and cleanOffsetByTopic the offsets).
func TestDeleteTopicDropsQueuesAndOffsets(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	create := func() {
		t.Helper()
		if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6"}, nil); r.Code != remoting.RespSuccess {
			t.Fatalf("create: %d %s", r.Code, r.Remark)
		}
	}
	create()
	for i := range 3 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	mustSend(t, c, "orders", 1, "", "old-q1")
	waitQueue(t, b, "orders", 0, 3)
	waitQueue(t, b, "orders", 1, 1)
	if r := pull(t, c, "orders", 0, 0, 0, "*", 0); r.Code != remoting.RespSuccess || len(decodeAll(t, r.Body)) != 3 {
		t.Fatalf("pull before the deletion: %d %s", r.Code, r.Remark)
	}
	for _, group := range []string{"cg", "other"} {
		if r := syncCommit(t, c, group, "orders", 0, 3); r.Code != remoting.RespSuccess {
			t.Fatalf("commit: %d %s", r.Code, r.Remark)
		}
	}
	haveTopic(t, b, "kept", 0)
	if r := syncCommit(t, c, "cg", "kept", 0, 0); r.Code != remoting.RespSuccess { // another topic's offset stays
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}

	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", r.Code, r.Remark)
	}
	create()
	check := func(wantMax string) {
		t.Helper()
		for qid, max := range []string{wantMax, "0"} {
			if got := queueOffsetExt(t, c, remoting.ReqGetMinOffset, "orders", qid); got != "0" {
				t.Errorf("orders/%d min offset %s, want 0", qid, got)
			}
			if got := queueOffsetExt(t, c, remoting.ReqGetMaxOffset, "orders", qid); got != max {
				t.Errorf("orders/%d max offset %s, want %s", qid, got, max)
			}
		}
		for _, group := range []string{"cg", "other"} {
			ext := offsetExt(group, "orders", 0)
			ext["setZeroIfNotFound"] = "false"
			if code, off := queryOffset(t, c, ext); code != remoting.RespQueryNotFound {
				t.Errorf("group %s's offset on the deleted topic: code %d offset %d, want QUERY_NOT_FOUND", group, code, off)
			}
			if code, off := queryOffset(t, c, offsetExt(group, "orders", 0)); code != remoting.RespSuccess || off != 0 {
				t.Errorf("group %s's offset with setZeroIfNotFound: code %d offset %d, want 0", group, code, off)
			}
			if _, ok, err := offsetOnDisk(o.Store.Dir, group, "orders", 0); ok || err != nil {
				t.Errorf("group %s's offset on the deleted topic is still on disk (%v)", group, err)
			}
		}
		if code, off := queryOffset(t, c, offsetExt("cg", "kept", 0)); code != remoting.RespSuccess || off != 0 {
			t.Errorf("offset on another topic: code %d offset %d", code, off)
		}
	}
	check("0")
	if r := pull(t, c, "orders", 0, 0, 0, "*", 0); r.Code == remoting.RespSuccess {
		t.Fatalf("pull of the recreated topic returned %d old messages", len(decodeAll(t, r.Body)))
	}
	resp := mustSend(t, c, "orders", 0, "", "new-0")
	if got := resp.Ext("queueOffset"); got != "0" {
		t.Fatalf("first message of the recreated topic at queue offset %s, want 0", got)
	}
	waitQueue(t, b, "orders", 0, 1)
	readNew := func() {
		t.Helper()
		r := pull(t, c, "orders", 0, 0, 0, "*", 0)
		if r.Code != remoting.RespSuccess {
			t.Fatalf("pull from 0: %d %s", r.Code, r.Remark)
		}
		if msgs := decodeAll(t, r.Body); len(msgs) != 1 || string(msgs[0].Body) != "new-0" || msgs[0].QueueOffset != 0 {
			t.Fatalf("pull from 0 of the recreated topic: %+v, want new-0 alone at offset 0", msgs)
		}
	}
	readNew()
	check("1")

	b.Close()
	b = startBroker(t, o)
	c = dial(t, b)
	readNew()
	check("1")
}

// TestDeleteTopicAnswersHeldPull checks that a pull held on a topic is
// answered when the topic is deleted, not when its long poll times out.
func TestDeleteTopicAnswersHeldPull(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = time.Minute
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lp", 0, "", "first")
	waitQueue(t, b, "lp", 0, 1)
	done := asyncPull(c, pullExt("lp", 0, 1, pullFlagSuspend, "*", 60000))
	waitFor(t, "the pull to be held", func() bool { return b.pulls.held() == 1 })
	a := dial(t, b)
	if r := call(t, a, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "lp"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", r.Code, r.Remark)
	}
	resp := <-done // asyncPull gives up after 10 s
	if resp == nil || resp.Code != remoting.RespTopicNotExist {
		t.Fatalf("held pull answered %v after the deletion, want TOPIC_NOT_EXIST", resp)
	}
	if n := b.pulls.held(); n != 0 {
		t.Fatalf("%d pulls still held", n)
	}
}

// TestDeleteTopicKeepsOpenTransactions deletes a topic while a
// transaction on it is open: the transaction still commits, and its
// message is the first of the topic created again (at queue offset 0).
func TestDeleteTopicKeepsOpenTransactions(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 3 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	ref := sendHalfRaw(t, c, "orders", "T1")
	waitQueue(t, b, "orders", 0, 3)
	if r := call(t, c, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("delete: %d %s", r.Code, r.Remark)
	}
	if r := call(t, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "orders", "readQueueNums": "4", "writeQueueNums": "4", "perm": "6"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("create: %d %s", r.Code, r.Remark)
	}
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit after the deletion: %d %s", r.Code, r.Remark)
	}
	waitQueue(t, b, "orders", 0, 1)
	r := pull(t, c, "orders", 0, 0, 0, "*", 0)
	if r.Code != remoting.RespSuccess {
		t.Fatalf("pull: %d %s", r.Code, r.Remark)
	}
	if msgs := decodeAll(t, r.Body); len(msgs) != 1 || string(msgs[0].Body) != "body-T1" || msgs[0].QueueOffset != 0 {
		t.Fatalf("the recreated topic holds %+v, want only the committed message, at offset 0", msgs)
	}
}

// deleteTopicNow runs a DELETE_TOPIC_IN_BROKER in the test's goroutine
// (so that the broker's test hooks run there too).
func deleteTopicNow(t *testing.T, b *Broker, topic string) {
	t.Helper()
	req := remoting.NewRequest(remoting.ReqDeleteTopicInBroker, map[string]string{"topic": topic})
	if r := b.handleDeleteTopic(context.Background(), nil, req); r.Code != remoting.RespSuccess {
		t.Fatalf("delete %s: %d %s", topic, r.Code, r.Remark)
	}
}

// TestDeleteTopicKeepsASendBetweenItsSteps sends to a topic, with
// auto-creation on, between the two steps of its deletion (the store's
// cut and the removal of its config). The send is acknowledged, so it
// must be delivered: as the first message of the topic created again,
// at queue offset 0.
func TestDeleteTopicKeepsASendBetweenItsSteps(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 3 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	waitQueue(t, b, "orders", 0, 3)
	var during *remoting.Command
	b.midDeleteTopic = func(string) { during = mustSend(t, c, "orders", 0, "", "during") }
	deleteTopicNow(t, b, "orders")
	b.midDeleteTopic = nil
	if during == nil {
		t.Fatal("the hook between the deletion's steps did not run")
	}
	if got := during.Ext("queueOffset"); got != "0" {
		t.Errorf("the send during the deletion got queue offset %s, want 0 (the topic created again)", got)
	}
	mustSend(t, c, "orders", 0, "", "after") // creates the topic again if the deletion removed it
	waitQueue(t, b, "orders", 0, 2)
	r := pull(t, c, "orders", 0, 0, 0, "*", 0)
	if r.Code != remoting.RespSuccess {
		t.Fatalf("pull from 0: %d %s", r.Code, r.Remark)
	}
	var got []string
	for _, m := range decodeAll(t, r.Body) {
		got = append(got, string(m.Body)+"@"+strconv.FormatInt(m.QueueOffset, 10))
	}
	if strings.Join(got, " ") != "during@0 after@1" {
		t.Fatalf("the topic created again holds %v, want [during@0 after@1]", got)
	}
}

// TestRecreatedTopicSendsRunningConsumerToZero deletes a topic that a
// consumer has read to offset 4 and creates it again with two messages.
// The consumer's next pull, at 4, is past the new queue's max: it is told
// PULL_OFFSET_MOVED to 0, not to the max (which would skip both
// messages), and the stale offset the pull carries is not committed.
func TestRecreatedTopicSendsRunningConsumerToZero(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 4 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	waitQueue(t, b, "orders", 0, 4)
	if r := pull(t, c, "orders", 0, 0, 0, "*", 0); len(decodeAll(t, r.Body)) != 4 {
		t.Fatalf("pull before the deletion: %d %s", r.Code, r.Remark)
	}
	deleteTopicNow(t, b, "orders")
	mustSend(t, c, "orders", 0, "", "new-0") // auto-created again
	mustSend(t, c, "orders", 0, "", "new-1")
	waitQueue(t, b, "orders", 0, 2)

	ext := pullExt("orders", 0, 4, pullFlagCommitOffset, "*", 0)
	ext["commitOffset"] = "4"
	r := call(t, c, remoting.ReqPullMessage, ext, nil)
	if r.Code != remoting.RespPullOffsetMoved || r.Ext("nextBeginOffset") != "0" {
		t.Fatalf("pull at the old offset 4: code %d %q next %s, want PULL_OFFSET_MOVED next 0", r.Code, r.Remark, r.Ext("nextBeginOffset"))
	}
	q := offsetExt("cg", "orders", 0)
	q["setZeroIfNotFound"] = "false"
	if code, off := queryOffset(t, c, q); code != remoting.RespQueryNotFound {
		t.Fatalf("the pull committed the old offset: code %d offset %d, want QUERY_NOT_FOUND", code, off)
	}
	r = pull(t, c, "orders", 0, 0, 0, "*", 0)
	if msgs := decodeAll(t, r.Body); len(msgs) != 2 || string(msgs[0].Body) != "new-0" || string(msgs[1].Body) != "new-1" {
		t.Fatalf("pull from 0 of the topic created again: code %d, %d messages", r.Code, len(msgs))
	}
}

// TestCommitRacingDeleteTopic deletes a topic after a commit on it has
// started but before it writes the offset: the commit must not put the
// old topic's offset back.
func TestCommitRacingDeleteTopic(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 3 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	waitQueue(t, b, "orders", 0, 3)
	tbl := b.offsetTable()
	tbl.beforeCommit = func() {
		tbl.beforeCommit = nil
		deleteTopicNow(t, b, "orders")
	}
	err := b.commitOffset("cg", "orders", 0, 3)
	if tbl.beforeCommit != nil {
		t.Fatal("the hook before the commit's write did not run")
	}
	if off, ok, _ := tbl.get("cg", "orders", 0); ok {
		t.Fatalf("the deleted topic's offset %d was committed after the deletion (commit: %v)", off, err)
	}
	if err == nil {
		t.Fatal("a commit of offset 3 on the deleted topic's queue succeeded")
	}
}

// TestCreateTopicDuringDeleteStands issues an UPDATE_AND_CREATE_TOPIC for
// a topic while its deletion is between the store's cut and the removal
// of its config. The creation must not be answered with success and then
// removed by the deletion: it waits for the deletion and stands after it,
// with the queue counts it asked for, and the topic's next message is its
// first, at queue offset 0.
func TestCreateTopicDuringDeleteStands(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for i := range 3 {
		mustSend(t, c, "orders", 0, "", "old-"+strconv.Itoa(i))
	}
	waitQueue(t, b, "orders", 0, 3)
	created := make(chan *remoting.Command, 1)
	waits := make(chan struct{}, 1)
	b.topicAdminWaits = func() { waits <- struct{}{} }
	b.midDeleteTopic = func(topic string) {
		go func() {
			req := remoting.NewRequest(remoting.ReqUpdateAndCreateTopic,
				map[string]string{"topic": topic, "readQueueNums": "8", "writeQueueNums": "8"})
			created <- b.handleCreateTopic(context.Background(), nil, req)
		}()
		// Until the creation waits for the deletion, or has run inside it.
		select {
		case <-waits:
		case r := <-created:
			created <- r
		}
	}
	deleteTopicNow(t, b, "orders")
	if r := <-created; r.Code != remoting.RespSuccess {
		t.Fatalf("create during the deletion: %d %s", r.Code, r.Remark)
	}
	tc, ok := b.topics.get("orders")
	if !ok || tc.WriteQueueNums != 8 {
		t.Fatalf("after a create issued during the deletion, the topic is %+v (present %v), want it with 8 queues", tc, ok)
	}
	if r := mustSend(t, c, "orders", 0, "", "new-0"); r.Ext("queueOffset") != "0" {
		t.Fatalf("the first send after the deletion got queue offset %s, want 0", r.Ext("queueOffset"))
	}
}

// TestAutoCreateDuringDeleteStands sends, with auto-creation on, to a
// topic not in the table whose queues an earlier version left, while a
// deletion of it is between the store's cut and the removal of the
// config. The creation on first use waits for the deletion, which finds
// no topic to remove, and stands after it.
func TestAutoCreateDuringDeleteStands(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	mustSend(t, c, "orders", 0, "", "old-0")
	waitQueue(t, b, "orders", 0, 1)
	if err := b.topics.remove("orders"); err != nil { // the queues stay
		t.Fatal(err)
	}
	type result struct {
		tc  TopicConfig
		err error
	}
	created := make(chan result, 1)
	waits := make(chan struct{}, 1)
	b.topicAdminWaits = func() { waits <- struct{}{} }
	b.midDeleteTopic = func(topic string) {
		go func() {
			tc, err := b.topicForSend(topic)
			created <- result{tc, err}
		}()
		select { // as in TestCreateTopicDuringDeleteStands
		case <-waits:
		case r := <-created:
			created <- r
		}
	}
	req := remoting.NewRequest(remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "orders"})
	if r := b.handleDeleteTopic(context.Background(), nil, req); r.Code != remoting.RespTopicNotExist {
		t.Fatalf("delete of a topic not in the table: %d %s, want TOPIC_NOT_EXIST", r.Code, r.Remark)
	}
	if r := <-created; r.err != nil || r.tc.TopicName != "orders" {
		t.Fatalf("creation on first use during the deletion: %+v, %v", r.tc, r.err)
	}
	if _, ok := b.topics.get("orders"); !ok {
		t.Fatal("the topic created on first use during the deletion was removed by it")
	}
}
