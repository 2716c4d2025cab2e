package broker

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/message"
)

// fuzzCodes are the request codes the broker registers, and three it does
// not (13 QUERY_BROKER_OFFSET, 103 REGISTER_BROKER, 9999).
var fuzzCodes = []int16{
	remoting.ReqSendMessage, remoting.ReqSendMessageV2, remoting.ReqSendBatchMessage,
	remoting.ReqSendReplyMessage, remoting.ReqSendReplyMessageV2,
	remoting.ReqPullMessage, remoting.ReqQueryMessage, remoting.ReqViewMessageByID,
	remoting.ReqQueryConsumerOffset, remoting.ReqUpdateConsumerOffset,
	remoting.ReqSearchOffsetByTimestamp, remoting.ReqGetMaxOffset, remoting.ReqGetMinOffset, remoting.ReqGetEarliestMsgStoreTime,
	remoting.ReqHeartBeat, remoting.ReqUnregisterClient, remoting.ReqGetConsumerListByGroup,
	remoting.ReqConsumerSendMsgBack, remoting.ReqEndTransaction,
	remoting.ReqLockBatchMQ, remoting.ReqUnlockBatchMQ,
	remoting.ReqUpdateAndCreateTopic, remoting.ReqDeleteTopicInBroker, remoting.ReqGetAllTopicConfig,
	remoting.ReqDeleteSubscriptionGroup, remoting.ReqGetConsumeStats, remoting.ReqInvokeBrokerToResetOffset,
	remoting.ReqHalfbackListTransactions, remoting.ReqHalfbackResumeTransaction, remoting.ReqHalfbackResolveTransaction,
	remoting.ReqHalfbackMessageTrace,
	remoting.ReqQueryBrokerOffset, remoting.ReqRegisterBroker, 9999,
}

// fuzzNames are the header field names the broker's handlers read.
var fuzzNames = []string{
	"topic", "queueId", "consumerGroup", "commitOffset", "queueOffset", "maxMsgNums", "sysFlag", "properties",
	"delayLevel", "tranStateTableOffset", "commitLogOffset", "producerGroup", "bornTimestamp", "flag",
	"reconsumeTimes", "batch", "maxReconsumeTimes", "suspendTimeoutMillis", "subscription", "subVersion",
	"expressionType", "offset", "group", "originTopic", "msgId", "transactionId", "commitOrRollback",
	"fromTransactionCheck", "clientID", "key", "maxNum", "beginTimestamp", "endTimestamp", "timestamp",
	"boundaryType", "readQueueNums", "writeQueueNums", "perm", "topicSysFlag", "order", "groupName",
	"cleanOffset", "id", "limit", "status", "outcome", "setZeroIfNotFound", uniqueKeyQueryFlag,
	remoting.ExtSyncCommit, "unitMode", "defaultTopic", "defaultTopicQueueNums", "isForce",
	"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
}

// The canary: a topic, groups and a client the fuzz input may not name
// (inputs that do are skipped), which every run sends to, pulls from and
// commits an offset of to show the broker unharmed.
const (
	canaryToken = "zcanary"
	canaryTopic = "zcanaryTopic"
	canaryGroup = "zcanaryGroup"
)

// fuzzBroker is the broker a fuzz process shares between its runs.
type fuzzBroker struct {
	b      *Broker
	log    *remotetest.PanicLog
	canary *remoting.Conn
	subst  *strings.Replacer
	n      int // canary messages sent
	// goroutines is how many goroutines may run between runs.
	goroutines int
}

func newFuzzBroker(f *testing.F) *fuzzBroker {
	o := testOptions(f)
	o.Store.FlushType = store.AsyncFlush
	o.LongPollTimeout = 20 * time.Millisecond
	o.Delay.Levels, _ = delay.ParseLevels("1ms 2ms 3ms 4ms 5ms")
	// Half messages the input leaves open are checked and parked while it runs.
	o.Txn = txn.Options{Timeout: 50 * time.Millisecond, CheckInterval: 50 * time.Millisecond, CheckMax: 3,
		CheckpointInterval: 100 * time.Millisecond}
	fb := &fuzzBroker{log: &remotetest.PanicLog{}}
	o.Logger = fb.log.Logger()
	fb.b = startBroker(f, o)
	// No idle timeout: a fuzz worker may sit idle for minutes.
	c, err := remoting.Dial(context.Background(), fb.b.Addr(), remoting.DialOptions{IdleTimeout: -1, Logger: testLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	fb.canary = c
	if resp := call(f, c, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": canaryTopic,
		"readQueueNums": "4", "writeQueueNums": "4"}, nil); resp.Code != remoting.RespSuccess {
		f.Fatalf("create canary topic: %d %s", resp.Code, resp.Remark)
	}
	// A message and a half message the fuzz input can name by placeholder.
	sent := mustSend(f, c, "FuzzTopic", 0, props("UNIQ_KEY", "FUZZKEY1", "KEYS", "k1"), "fuzz body")
	_, off, err := message.ParseOffsetMsgID(sent.Ext("msgId"))
	if err != nil {
		f.Fatal(err)
	}
	ext := sendExtV2("FuzzTopic", 0, props("UNIQ_KEY", "FUZZHALF1", "TRAN_MSG", "true", "PGROUP", "fuzzpg"))
	ext["a"], ext["f"] = "fuzzpg", strconv.Itoa(int(message.TransactionPreparedType))
	half := call(f, c, remoting.ReqSendMessageV2, ext, []byte("half body"))
	if half.Code != remoting.RespSuccess {
		f.Fatalf("half send: %d %s", half.Code, half.Remark)
	}
	_, halfOff, err := message.ParseOffsetMsgID(half.Ext("msgId"))
	if err != nil {
		f.Fatal(err)
	}
	fb.subst = strings.NewReplacer(
		"$off", strconv.FormatInt(off, 10), "$qoff", sent.Ext("queueOffset"), "$msgid", sent.Ext("msgId"),
		"$halfoff", strconv.FormatInt(halfOff, 10), "$halfqoff", half.Ext("queueOffset"),
		"$halfmsgid", half.Ext("msgId"), "$now", strconv.FormatInt(time.Now().UnixMilli(), 10),
		"$addr", fb.b.Addr())
	fb.check(f)
	fb.goroutines = runtime.NumGoroutine() + 20
	return fb
}

// canaryQueues are the canary topic's queues: 0 takes a plain message, 1 a
// message of a delay level, 2 one with a 1 ms timer (the fuzz broker's
// levels are milliseconds), 3 a transactional message committed, so that
// every run shows the store, the level queues, the timer and the
// transactions delivering.
var canaryQueues = [...]func(n int) string{
	func(int) string { return "" },
	func(n int) string { return props("DELAY", strconv.Itoa(1+n%5)) },
	func(int) string { return props("TIMER_DELAY_MS", "1") },
	func(int) string { return props("TRAN_MSG", "true", "PGROUP", "zcanaryPG") },
}

// check fails unless the broker stores, delivers and serves a message on
// each canary queue and keeps a consumer offset.
func (fb *fuzzBroker) check(t testing.TB) {
	t.Helper()
	c := fb.canary
	fb.n++
	body := "canary " + strconv.Itoa(fb.n)
	for q, p := range canaryQueues {
		ext := sendExtV2(canaryTopic, q, p(fb.n)+props("UNIQ_KEY", fmt.Sprintf("CANARY%d-%d", fb.n, q)))
		ext["a"] = "zcanaryPG"
		resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte(body))
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("canary send to queue %d: code %d %q\nbroker errors:\n%s", q, resp.Code, resp.Remark, fb.log.Errors())
		}
		if q == 3 {
			fb.commitCanary(t, resp)
		}
	}
	qoff := int64(fb.n - 1) // every canary queue gets one message a run
	deadline := time.Now().Add(10 * time.Second)
	for q := range canaryQueues {
		pe := pullExt(canaryTopic, q, qoff, 0, "", 0)
		pe["consumerGroup"], pe["maxMsgNums"] = canaryGroup, "1"
		var resp *remoting.Command
		for {
			resp = call(t, c, remoting.ReqPullMessage, pe, nil)
			if resp.Code == remoting.RespSuccess {
				break
			}
			if resp.Code != remoting.RespPullNotFound || time.Now().After(deadline) {
				t.Fatalf("canary pull of queue %d at %d: code %d %q\nbroker errors:\n%s", q, qoff, resp.Code, resp.Remark, fb.log.Errors())
			}
			time.Sleep(time.Millisecond)
		}
		msgs, err := message.DecodeAll(resp.Body)
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != body {
			t.Fatalf("canary pull of queue %d at %d: %d messages, err %v, want %q", q, qoff, len(msgs), err, body)
		}
	}
	if resp := updateOffset(t, c, canaryGroup, canaryTopic, 0, qoff+1); resp.Code != remoting.RespSuccess {
		t.Fatalf("canary offset commit: code %d %q", resp.Code, resp.Remark)
	}
	if code, got := queryOffset(t, c, offsetExt(canaryGroup, canaryTopic, 0)); code != remoting.RespSuccess || got != qoff+1 {
		t.Fatalf("canary offset = %d (code %d), want %d", got, code, qoff+1)
	}
}

// commitCanary ends the canary's half message with a commit.
func (fb *fuzzBroker) commitCanary(t testing.TB, half *remoting.Command) {
	t.Helper()
	_, off, err := message.ParseOffsetMsgID(half.Ext("msgId"))
	if err != nil {
		t.Fatalf("canary half message id %q: %v", half.Ext("msgId"), err)
	}
	resp := call(t, fb.canary, remoting.ReqEndTransaction, map[string]string{"producerGroup": "zcanaryPG",
		"tranStateTableOffset": half.Ext("queueOffset"), "commitLogOffset": strconv.FormatInt(off, 10),
		"commitOrRollback": strconv.Itoa(int(message.TransactionCommitType)), "msgId": half.Ext("msgId"),
		"transactionId": half.Ext("transactionId")}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("canary commit: code %d %q\nbroker errors:\n%s", resp.Code, resp.Remark, fb.log.Errors())
	}
}

// checkState fails unless what the fuzz connection left behind is sound:
// its clients and held pulls are gone, every committed offset is a valid
// group's on a queue the broker has (see commitOffset), and the topic and
// offset files load back as they are in memory (a restart would work).
func (fb *fuzzBroker) checkState(t testing.TB) {
	t.Helper()
	b := fb.b
	waitFor(t, "the closed connection's clients and pulls to go", func() bool {
		consumers, producers, hooked := groupTableSizes(b)
		_, _, _, held := pullHolderSizes(b)
		return consumers+producers+hooked+held == 0
	})
	ot := b.offsetTable()
	ot.mu.Lock()
	table := make(map[offsetKey]map[int32]int64, len(ot.table))
	for k, m := range ot.table {
		table[k] = maps.Clone(m)
	}
	ot.mu.Unlock()
	var bad []string
	for k, m := range table {
		tc, ok := b.topics.get(k.topic)
		for q, off := range m {
			switch {
			case message.ValidateGroup(k.group) != nil:
				bad = append(bad, fmt.Sprintf("group %q is not a valid group name", k.group))
			case !ok:
				bad = append(bad, fmt.Sprintf("topic %q does not exist", k.topic))
			case q < 0 || int(q) >= max(tc.ReadQueueNums, tc.WriteQueueNums) || off < 0:
				bad = append(bad, fmt.Sprintf("offset %d on queue %d of %s (%d/%d queues)", off, q, k.topic, tc.ReadQueueNums, tc.WriteQueueNums))
			default:
				continue
			}
			// Drop it, so that the runs after this one (minimizing it)
			// start sound.
			ot.mu.Lock()
			delete(ot.table[k], q)
			if len(ot.table[k]) == 0 {
				delete(ot.table, k)
			}
			ot.dirty = true
			ot.mu.Unlock()
			delete(m, q)
			if len(m) == 0 {
				delete(table, k)
			}
		}
	}
	if len(bad) > 0 {
		ot.persist()
		t.Fatalf("offsets committed that commitOffset should refuse:\n%s", strings.Join(bad, "\n"))
	}
	if err := ot.persist(); err != nil {
		t.Fatalf("persist offsets: %v", err)
	}
	dir := b.opts.Store.Dir
	if again := openOffsetTable(dir); again.broken != nil || !reflect.DeepEqual(again.table, table) {
		t.Fatalf("consumer offsets reload as %v (broken: %v), want %v", again.table, again.broken, table)
	}
	topics, err := openTopicTable(dir, b.opts.DefaultQueueNums, true, systemTopics(b.delay.Levels(), b.opts.ClusterName), testLogger())
	if err != nil {
		t.Fatalf("topic table does not load: %v", err)
	}
	if got, want := topics.all(), b.topics.all(); !reflect.DeepEqual(got, want) {
		t.Fatalf("topic table reloads as %v, want %v", got, want)
	}
}

func (fb *fuzzBroker) dial(t testing.TB) *remoting.Conn {
	t.Helper()
	c, err := remoting.Dial(context.Background(), fb.b.Addr(), remoting.DialOptions{Logger: testLogger()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// call sends a fuzz request (see remotetest.FuzzCall). A send-back that
// closes the connection (the broker's answer to a failure the client must
// retry) must not do so again on a fresh connection: that would be for
// ever, the client sending it back at every delivery. A group too long for
// a retry topic is the exception the broker chose (see handleSendBack).
func (fb *fuzzBroker) call(t testing.TB, c *remoting.Conn, req *remoting.Command) (*remoting.Command, bool) {
	t.Helper()
	resp, open := remotetest.FuzzCall(t, c, req, 10*time.Second)
	if open || req.Code != remoting.ReqConsumerSendMsgBack || message.ValidateTopic(RetryTopic(req.Ext("group"))) != nil {
		return resp, open
	}
	again := fb.dial(t)
	defer again.Close()
	if _, open := remotetest.FuzzCall(t, again, req, 10*time.Second); !open {
		t.Fatalf("%v: the send-back closes the connection every time\nbroker errors:\n%s", req, fb.log.Errors())
	}
	return nil, false
}

// fuzzCommand builds a request from fuzz input.
func fuzzCommand(code uint8, spec string, body []byte, binary bool, subst *strings.Replacer) *remoting.Command {
	req := remoting.NewRequest(remotetest.FuzzCode(code, fuzzCodes), remotetest.FuzzExt(spec, fuzzNames, subst))
	req.Body = body
	if binary {
		req.SerializeType = remoting.SerializeRocketMQ
	}
	return req
}

// FuzzBrokerRequest sends one or two requests built from fuzz input (a
// request code the broker registers, header fields from the names its
// handlers read, a body) to a broker, and requires an answer or a closed
// connection for each, no handler panic, nothing left running, and the
// broker still storing and serving messages and offsets.
func FuzzBrokerRequest(f *testing.F) {
	idx := func(code int16) uint8 {
		for i, c := range fuzzCodes {
			if c == code {
				return uint8(i)
			}
		}
		panic(code)
	}
	lines := func(kv map[string]string) string {
		var b strings.Builder
		for k, v := range kv {
			b.WriteString(k + "=" + v + "\n")
		}
		return b.String()
	}
	none := uint8(len(fuzzCodes) - 1) // 9999: not supported
	send := sendExtV2("FuzzTopic", 0, props("KEYS", "k1 k2", "TAGS", "t"))
	f.Add(idx(remoting.ReqSendMessageV2), lines(send), []byte("hello"), none, "", []byte(nil), false)
	f.Add(idx(remoting.ReqSendBatchMessage), lines(send), batchBody([]string{"a", "b"}, []string{"", "TAGS\x01x\x02"}), none, "", []byte(nil), true)
	f.Add(idx(remoting.ReqSendMessage), lines(sendExt("FuzzTopic", -1, props("DELAY", "2"))), []byte("d"), none, "", []byte(nil), false)
	f.Add(idx(remoting.ReqPullMessage), lines(pullExt("FuzzTopic", 0, 0, pullFlagCommitOffset|pullFlagSuspend, "t || u", 100)), []byte(nil),
		idx(remoting.ReqQueryConsumerOffset), lines(offsetExt("cg", "FuzzTopic", 0)), []byte(nil), false)
	f.Add(idx(remoting.ReqConsumerSendMsgBack), "offset=$off\ngroup=cg\ndelayLevel=1\noriginTopic=FuzzTopic\nmaxReconsumeTimes=3\n", []byte(nil), none, "", []byte(nil), false)
	f.Add(idx(remoting.ReqEndTransaction), "producerGroup=fuzzpg\ntranStateTableOffset=$halfqoff\ncommitLogOffset=$halfoff\ncommitOrRollback=8\nmsgId=$halfmsgid\ntransactionId=FUZZHALF1\n", []byte(nil),
		idx(remoting.ReqHalfbackListTransactions), "status=all\n", []byte(nil), false)
	f.Add(idx(remoting.ReqHeartBeat), "", consumerHeartbeat("127.0.0.1@fuzz", "FuzzTopic", "cg"),
		idx(remoting.ReqLockBatchMQ), "", []byte(`{"consumerGroup":"cg","clientId":"127.0.0.1@fuzz","mqSet":[{"topic":"FuzzTopic","brokerName":"b","queueId":0}]}`), false)
	f.Add(idx(remoting.ReqUnlockBatchMQ), "", []byte(`{"consumerGroup":"cg","clientId":"x","mqSet":[{"topic":"FuzzTopic","queueId":-1}]}`),
		idx(remoting.ReqUnregisterClient), "clientID=127.0.0.1@fuzz\nconsumerGroup=cg\nproducerGroup=pg\n", []byte(nil), false)
	f.Add(idx(remoting.ReqUpdateAndCreateTopic), "topic=FuzzNew\nreadQueueNums=2\nwriteQueueNums=3\nperm=6\norder=true\n", []byte(nil),
		idx(remoting.ReqDeleteTopicInBroker), "topic=FuzzNew\n", []byte(nil), false)
	f.Add(idx(remoting.ReqViewMessageByID), "offset=$off\n", []byte(nil), idx(remoting.ReqQueryMessage),
		"topic=FuzzTopic\nkey=k1\nmaxNum=32\nbeginTimestamp=0\nendTimestamp=$now\n", []byte(nil), false)
	f.Add(idx(remoting.ReqSearchOffsetByTimestamp), "topic=FuzzTopic\nqueueId=0\ntimestamp=$now\nboundaryType=upper\n", []byte(nil),
		idx(remoting.ReqGetEarliestMsgStoreTime), "topic=FuzzTopic\nqueueId=0\n", []byte(nil), true)
	f.Add(idx(remoting.ReqGetConsumeStats), "consumerGroup=cg\ntopic=FuzzTopic\n", []byte(nil),
		idx(remoting.ReqDeleteSubscriptionGroup), "groupName=cg\ncleanOffset=true\n", []byte(nil), false)
	f.Add(idx(remoting.ReqHalfbackMessageTrace), "id=$msgid\nlimit=5\n", []byte(nil),
		idx(remoting.ReqHalfbackResolveTransaction), "id=FUZZHALF1\noutcome=rollback\n", []byte(nil), false)
	f.Add(idx(remoting.ReqSendReplyMessageV2), lines(sendExtV2("FuzzTopic", 0, props("CLUSTER", "DefaultCluster", "REPLY_TO_CLIENT", "x", "CORRELATION_ID", "1"))), []byte("r"),
		idx(remoting.ReqHalfbackResumeTransaction), "id=FUZZHALF1\n", []byte(nil), false)
	f.Add(idx(remoting.ReqUpdateConsumerOffset), "consumerGroup=cg\ntopic=FuzzTopic\nqueueId=0\ncommitOffset=1\n"+remoting.ExtSyncCommit+"=true\n", []byte(nil),
		idx(remoting.ReqGetConsumerListByGroup), "consumerGroup=cg\n", []byte(nil), false)
	halfExt := sendExtV2("FuzzTopic", 0, props("TRAN_MSG", "true", "PGROUP", "pg", "UNIQ_KEY", "FUZZHALF2"))
	f.Add(idx(remoting.ReqSendMessageV2), lines(halfExt), []byte("half"), idx(remoting.ReqEndTransaction),
		"producerGroup=pg\ntranStateTableOffset=$prevqoff\ncommitLogOffset=$prevoff\ncommitOrRollback=12\nmsgId=$prevmsgid\ntransactionId=$prevtxn\n", []byte(nil), false)
	f.Add(idx(remoting.ReqSendMessage), lines(sendExt("FuzzTopic", 1, props("TIMER_DELAY_MS", "1"))), []byte("t"), idx(remoting.ReqViewMessageByID),
		"offset=$prevoff\n", []byte(nil), true)
	f.Add(idx(remoting.ReqGetMaxOffset), "0=FuzzTopic\n1=0\n", []byte(nil), idx(remoting.ReqGetAllTopicConfig), "", []byte(nil), false)

	fb := newFuzzBroker(f)
	f.Fuzz(func(t *testing.T, code1 uint8, ext1 string, body1 []byte, code2 uint8, ext2 string, body2 []byte, binary bool) {
		if strings.Contains(strings.ToLower(ext1+ext2+string(body1)+string(body2)), canaryToken) {
			return // the canary is not the fuzz input's to change
		}
		c := fb.dial(t)
		first := fuzzCommand(code1, ext1, body1, binary, fb.subst)
		resp, open := fb.call(t, c, first)
		if open {
			// The second request may name what the first stored.
			subst := fb.subst
			if resp != nil && resp.Ext("msgId") != "" {
				id, _, _ := strings.Cut(resp.Ext("msgId"), ",")
				_, off, _ := message.ParseOffsetMsgID(id)
				subst = strings.NewReplacer("$prevoff", strconv.FormatInt(off, 10), "$prevqoff", resp.Ext("queueOffset"),
					"$prevmsgid", id, "$prevtxn", resp.Ext("transactionId"))
			}
			fb.call(t, c, fuzzCommand(code2, subst.Replace(ext2), body2, binary, fb.subst))
		}
		c.Close()
		fb.log.Check(t)
		fb.check(t)
		fb.checkState(t)
		remotetest.WaitGoroutines(t, fb.goroutines, 10*time.Second)
	})
}
