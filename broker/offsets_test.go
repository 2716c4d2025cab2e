package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// appendTestMsgs stores n messages in topic/qid and returns their physical offsets.
func appendTestMsgs(t *testing.T, b *Broker, topic string, qid int32, n int) []int64 {
	t.Helper()
	haveTopic(t, b, topic, qid)
	var offs []int64
	for i := range n {
		m := &message.Message{Topic: topic, QueueID: qid, Body: []byte("body-" + strconv.Itoa(i)),
			BornTimestamp: time.Now().UnixMilli(),
			Properties:    message.Properties{message.PropertyUniqKey: "UNIQ" + strconv.Itoa(i), message.PropertyTags: "a"}.Encode()}
		res, err := b.store.Append(context.Background(), m)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		offs = append(offs, res.PhysicalOffset)
	}
	waitFor(t, "dispatch", func() bool { _, hi := b.store.QueueBounds(topic, qid); return hi >= int64(n) })
	return offs
}

// haveTopic puts topic in the topic table, with queue qid, as a send
// would have.
func haveTopic(t *testing.T, b *Broker, topic string, qid int32) {
	t.Helper()
	n := max(b.opts.DefaultQueueNums, int(qid)+1)
	if err := b.topics.put(TopicConfig{TopicName: topic, ReadQueueNums: n, WriteQueueNums: n, Perm: PermRW}, false); err != nil {
		t.Fatalf("topic %s: %v", topic, err)
	}
}

func offsetExt(group, topic string, qid int) map[string]string {
	return map[string]string{"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(qid)}
}

func queryOffset(t testing.TB, c *remoting.Conn, ext map[string]string) (int16, int64) {
	t.Helper()
	resp := call(t, c, remoting.ReqQueryConsumerOffset, ext, nil)
	if resp.Code != remoting.RespSuccess {
		return resp.Code, -1
	}
	off, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if err != nil {
		t.Fatalf("offset ext %q: %v", resp.Ext("offset"), err)
	}
	return resp.Code, off
}

func updateOffset(t testing.TB, c *remoting.Conn, group, topic string, qid int, off int64) *remoting.Command {
	t.Helper()
	ext := offsetExt(group, topic, qid)
	ext["commitOffset"] = strconv.FormatInt(off, 10)
	return call(t, c, remoting.ReqUpdateConsumerOffset, ext, nil)
}

func TestConsumerOffsetUpdateQuery(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 3)

	// Nothing committed, queue intact: RocketMQ answers 0.
	if code, off := queryOffset(t, c, offsetExt("g", "orders", 0)); code != remoting.RespSuccess || off != 0 {
		t.Fatalf("fresh query = %d %d, want SUCCESS 0", code, off)
	}
	notFound := offsetExt("g", "orders", 0)
	notFound["setZeroIfNotFound"] = "false"
	if code, _ := queryOffset(t, c, notFound); code != remoting.RespQueryNotFound {
		t.Fatalf("setZeroIfNotFound=false: code %d, want QUERY_NOT_FOUND", code)
	}

	if resp := updateOffset(t, c, "g", "orders", 0, 2); resp.Code != remoting.RespSuccess {
		t.Fatalf("update: %d %s", resp.Code, resp.Remark)
	}
	if _, off := queryOffset(t, c, offsetExt("g", "orders", 0)); off != 2 {
		t.Fatalf("offset = %d, want 2", off)
	}

	// Oneway, as the Go client sends it.
	req := remoting.NewRequest(remoting.ReqUpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "orders", "queueId": "0", "commitOffset": "3"})
	if err := c.InvokeOneway(req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "oneway commit", func() bool { _, off := queryOffset(t, c, offsetExt("g", "orders", 0)); return off == 3 })

	// -1, a client's "no offset yet", is nothing to store: answered, offset
	// kept.
	if resp := updateOffset(t, c, "g", "orders", 0, -1); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit -1: code %d %q, want SUCCESS", resp.Code, resp.Remark)
	}
	// Past the max offset, negative, malformed: refused, offset kept.
	for _, off := range []int64{4, -2} {
		if resp := updateOffset(t, c, "g", "orders", 0, off); resp.Code != remoting.RespSystemError {
			t.Fatalf("commit %d: code %d, want SYSTEM_ERROR", off, resp.Code)
		}
	}
	for _, ext := range []map[string]string{
		{"consumerGroup": "g", "topic": "orders", "queueId": "x", "commitOffset": "1"},
		{"consumerGroup": "g", "topic": "orders", "queueId": "0", "commitOffset": "one"},
		{"consumerGroup": "", "topic": "orders", "queueId": "0", "commitOffset": "1"},
		{"consumerGroup": "g", "topic": "bad topic", "queueId": "0", "commitOffset": "1"},
		{"consumerGroup": "bad group!", "topic": "orders", "queueId": "0", "commitOffset": "1"},
		{"consumerGroup": "g", "topic": "orders", "queueId": "1000", "commitOffset": "0"},
	} {
		if resp := call(t, c, remoting.ReqUpdateConsumerOffset, ext, nil); resp.Code != remoting.RespSystemError {
			t.Fatalf("update %v: code %d, want SYSTEM_ERROR", ext, resp.Code)
		}
	}
	if code, _ := queryOffset(t, c, map[string]string{"topic": "orders", "queueId": "0"}); code != remoting.RespSystemError {
		t.Fatalf("query without group: code %d", code)
	}
	if _, off := queryOffset(t, c, offsetExt("g", "orders", 0)); off != 3 {
		t.Fatalf("offset = %d after refused commits, want 3", off)
	}

	// A topic the broker does not have: TOPIC_NOT_EXIST, nothing kept.
	if resp := updateOffset(t, c, "g", "made-up", 0, 0); resp.Code != remoting.RespTopicNotExist {
		t.Fatalf("commit for an unknown topic: code %d %q, want TOPIC_NOT_EXIST", resp.Code, resp.Remark)
	}

	// The pull path's commit obeys the same rule.
	b.commitOffsetFromPull("g", "orders", 0, 1)
	b.commitOffsetFromPull("g", "orders", 0, 99) // ignored
	if got := b.groupOffsets("g"); got["orders"][0] != 1 || len(got) != 1 {
		t.Fatalf("groupOffsets = %v", got)
	}
}

func TestConsumerOffsetPersistAcrossRestart(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	appendTestMsgs(t, b, "orders", 0, 5)
	appendTestMsgs(t, b, "orders", 1, 2)
	c := dial(t, b)
	updateOffset(t, c, "g", "orders", 0, 5)
	updateOffset(t, c, "g", "orders", 1, 1)
	updateOffset(t, c, "h", "orders", 0, 4)

	// The flusher writes the file without waiting for Close.
	path := filepath.Join(o.Store.Dir, "config", "consumerOffset.json")
	waitFor(t, "offsets flushed", func() bool {
		data, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(data), `"orders@h"`)
	})
	updateOffset(t, c, "g", "orders", 1, 2) // only Close persists this one
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b2 := startBroker(t, o)
	c2 := dial(t, b2)
	for _, tc := range []struct {
		group string
		qid   int
		want  int64
	}{{"g", 0, 5}, {"g", 1, 2}, {"h", 0, 4}} {
		if code, off := queryOffset(t, c2, offsetExt(tc.group, "orders", tc.qid)); code != remoting.RespSuccess || off != tc.want {
			t.Errorf("%s q%d after restart = %d %d, want %d", tc.group, tc.qid, code, off, tc.want)
		}
	}
	if got := b2.groupOffsets("g"); len(got["orders"]) != 2 {
		t.Fatalf("groupOffsets(g) = %v", got)
	}
}

func TestConsumerOffsetFileUnreadable(t *testing.T) {
	o := testOptions(t)
	path := filepath.Join(o.Store.Dir, "config", "consumerOffset.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	garbage := []byte(`{"offsetTable": {"orders@g": {"0": 12`)
	if err := os.WriteFile(path, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, o)
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	// No guessing: a broken table answers errors, never "start from 0".
	if code, _ := queryOffset(t, c, offsetExt("g", "orders", 0)); code != remoting.RespSystemError {
		t.Fatalf("query with a broken offsets file: code %d, want SYSTEM_ERROR", code)
	}
	if resp := updateOffset(t, c, "g", "orders", 0, 0); resp.Code != remoting.RespSystemError {
		t.Fatalf("update with a broken offsets file: code %d", resp.Code)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != string(garbage) {
		t.Fatalf("broken offsets file was overwritten: %q", data)
	}
}

// syncCommit sends a durable commit (remoting.ExtSyncCommit) and returns
// the answer.
func syncCommit(t *testing.T, c *remoting.Conn, group, topic string, qid int, off int64) *remoting.Command {
	t.Helper()
	ext := offsetExt(group, topic, qid)
	ext["commitOffset"] = strconv.FormatInt(off, 10)
	ext[remoting.ExtSyncCommit] = "true"
	return call(t, c, remoting.ReqUpdateConsumerOffset, ext, nil)
}

// offsetOnDisk reads consumerOffset.json (not the broker's memory) and
// returns topic@group's offset of qid.
func offsetOnDisk(dataDir, group, topic string, qid int32) (int64, bool, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "config", "consumerOffset.json"))
	if err != nil {
		return 0, false, err
	}
	var f offsetFile
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, false, err
	}
	off, ok := f.OffsetTable[topic+"@"+group][qid]
	return off, ok, nil
}

func TestConsumerOffsetSyncCommit(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 5)

	// A plain commit may reach the disk up to offsetFlushInterval later
	// (no assertion about when: the flusher runs on its own clock).
	if resp := updateOffset(t, c, "g", "orders", 0, 1); resp.Code != remoting.RespSuccess {
		t.Fatalf("plain commit: %d %s", resp.Code, resp.Remark)
	}
	for _, off := range []int64{2, 3, 3} { // the same offset twice: still on disk
		if resp := syncCommit(t, c, "g", "orders", 0, off); resp.Code != remoting.RespSuccess {
			t.Fatalf("durable commit %d: %d %s", off, resp.Code, resp.Remark)
		}
		if got, ok, err := offsetOnDisk(o.Store.Dir, "g", "orders", 0); err != nil || !ok || got != off {
			t.Fatalf("on disk after durable commit %d: %d %v %v", off, got, ok, err)
		}
	}

	// Refused commits answer SYSTEM_ERROR and leave the file as it was.
	for _, ext := range []map[string]string{
		{"consumerGroup": "g", "topic": "orders", "queueId": "0", "commitOffset": "99"},
		{"consumerGroup": "g", "topic": "orders", "queueId": "0", "commitOffset": "-2"},
		{"consumerGroup": "g", "topic": "orders", "queueId": "x", "commitOffset": "1"},
		{"consumerGroup": "g", "topic": "orders", "queueId": "0", "commitOffset": "one"},
	} {
		ext[remoting.ExtSyncCommit] = "true"
		if resp := call(t, c, remoting.ReqUpdateConsumerOffset, ext, nil); resp.Code != remoting.RespSystemError {
			t.Fatalf("durable commit %v: code %d, want SYSTEM_ERROR", ext, resp.Code)
		}
	}
	if got, ok, err := offsetOnDisk(o.Store.Dir, "g", "orders", 0); err != nil || !ok || got != 3 {
		t.Fatalf("on disk after refused commits: %d %v %v, want 3", got, ok, err)
	}
	if _, off := queryOffset(t, c, offsetExt("g", "orders", 0)); off != 3 {
		t.Fatalf("offset = %d after refused commits, want 3", off)
	}
}

// TestConsumerOffsetSyncCommitConcurrent runs durable commits of several
// groups at once, each on its own connection: each answer must find its
// own commit on disk, including one that landed while another commit's
// write was in flight.
func TestConsumerOffsetSyncCommitConcurrent(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	const groups, commits = 8, 20
	appendTestMsgs(t, b, "orders", 0, commits)
	conns := make([]*remoting.Conn, groups)
	for i := range conns {
		conns[i] = dial(t, b)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		group := "g" + strconv.Itoa(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(1); off <= commits; off++ {
				ext := offsetExt(group, "orders", 0)
				ext["commitOffset"] = strconv.FormatInt(off, 10)
				ext[remoting.ExtSyncCommit] = "true"
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqUpdateConsumerOffset, ext))
				cancel()
				if err != nil || resp.Code != remoting.RespSuccess {
					t.Errorf("%s: durable commit %d: %v %v", group, off, resp, err)
					return
				}
				// Only this goroutine commits for group: the file holds
				// exactly its last commit.
				if got, ok, err := offsetOnDisk(o.Store.Dir, group, "orders", 0); err != nil || !ok || got != off {
					t.Errorf("%s: on disk after durable commit %d: %d %v %v", group, off, got, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestConsumerOffsetSyncCommitWriteFails makes the offsets file
// unwritable: a directory where WriteFileAtomic creates its temporary file
// (opening a directory for writing fails even for root).
func TestConsumerOffsetSyncCommitWriteFails(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	appendTestMsgs(t, b, "orders", 0, 5)
	if resp := syncCommit(t, c, "g", "orders", 0, 1); resp.Code != remoting.RespSuccess {
		t.Fatalf("durable commit: %d %s", resp.Code, resp.Remark)
	}

	blocker := filepath.Join(o.Store.Dir, "config", "consumerOffset.json.tmp")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	resp := syncCommit(t, c, "g", "orders", 0, 4)
	if resp.Code != remoting.RespSystemError || !strings.Contains(resp.Remark, "consumerOffset.json") {
		t.Fatalf("durable commit with the file unwritable: %d %q, want SYSTEM_ERROR naming the file", resp.Code, resp.Remark)
	}
	if got, _, err := offsetOnDisk(o.Store.Dir, "g", "orders", 0); err != nil || got != 1 {
		t.Fatalf("on disk after a failed write: %d %v, want 1", got, err)
	}
	// The commit itself stands (RocketMQ keeps offsets in memory too);
	// only its durability was refused.
	if _, off := queryOffset(t, c, offsetExt("g", "orders", 0)); off != 4 {
		t.Fatalf("offset = %d, want 4", off)
	}

	// Once the file is writable again, a durable commit of the same
	// offset writes it: the failed write left the table dirty.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if resp := syncCommit(t, c, "g", "orders", 0, 4); resp.Code != remoting.RespSuccess {
		t.Fatalf("durable commit after repair: %d %s", resp.Code, resp.Remark)
	}
	if got, _, err := offsetOnDisk(o.Store.Dir, "g", "orders", 0); err != nil || got != 4 {
		t.Fatalf("on disk after repair: %d %v, want 4", got, err)
	}
}

// A group with no committed offset on a queue that has lost nothing to
// retention starts at offset 0 only while the queue's first message is
// within AccessMessageInMemoryMaxRatio of memory from the end of the
// commit log (RocketMQ's ConsumerManageProcessor.queryConsumerOffset and
// checkInDiskByConsumeOffset); further back QUERY_CONSUMER_OFFSET answers
// QUERY_NOT_FOUND, so that a CONSUME_FROM_LAST_OFFSET consumer starts at
// the queue's end instead of replaying a long topic from its start.
func TestQueryConsumerOffsetOfANewGroupOnAnOldQueue(t *testing.T) {
	const window = 64 << 10
	mem := physicalMemory()
	if mem < 1<<30 {
		t.Fatalf("physicalMemory() = %d, want the machine's memory", mem)
	}
	o := testOptions(t)
	o.AccessMessageInMemoryMaxRatio = float64(window) / float64(mem)
	b := startBroker(t, o)
	c := dial(t, b)
	first := appendTestMsgs(t, b, "old", 0, 1)[0]
	haveTopic(t, b, "old", 1) // queue 1 stays empty
	if code, off := queryOffset(t, c, offsetExt("g", "old", 0)); code != remoting.RespSuccess || off != 0 {
		t.Fatalf("first message in memory: query = %d %d, want SUCCESS 0", code, off)
	}
	if resp := updateOffset(t, c, "committed", "old", 0, 1); resp.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", resp.Code, resp.Remark)
	}

	// Other topics' messages push the first one back past the window.
	haveTopic(t, b, "filler", 0)
	for i := 0; b.store.MaxPhysicalOffset()-first <= 2*window; i++ {
		m := &message.Message{Topic: "filler", Body: make([]byte, 8<<10), BornTimestamp: time.Now().UnixMilli(),
			Properties: message.Properties{message.PropertyUniqKey: "F" + strconv.Itoa(i)}.Encode()}
		if _, err := b.store.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := queryOffset(t, c, offsetExt("g", "old", 0)); code != remoting.RespQueryNotFound {
		t.Fatalf("first message %d bytes back, window %d: code %d, want QUERY_NOT_FOUND",
			b.store.MaxPhysicalOffset()-first, window, code)
	}
	if code, off := queryOffset(t, c, offsetExt("g", "old", 1)); code != remoting.RespSuccess || off != 0 {
		t.Fatalf("empty queue: query = %d %d, want SUCCESS 0", code, off)
	}
	if code, off := queryOffset(t, c, offsetExt("committed", "old", 0)); code != remoting.RespSuccess || off != 1 {
		t.Fatalf("committed group: query = %d %d, want SUCCESS 1", code, off)
	}
}

// A new group on a queue whose first message retention has removed, in
// the window before it raises the queue's min offset past it (the window
// lasts while dropping the removed segment's entries keeps failing: here
// its index file cannot be removed), gets QUERY_NOT_FOUND, as RocketMQ's
// checkInMemByConsumeOffset finds no message there. It got 0: a
// CONSUME_FROM_LAST_OFFSET consumer then replayed the rest of the queue.
func TestQueryConsumerOffsetOfANewGroupWhenTheFirstMessageIsGone(t *testing.T) {
	var logs testutil.Buffer
	o := retentionOptions(t, &logs)
	b := startBroker(t, o)
	c := dial(t, b)
	first := appendTestMsgs(t, b, "gone", 0, 3)[0]
	seg := first - first%o.Store.SegmentSize
	idx := filepath.Join(b.store.Dir(), "keyindex", fmt.Sprintf("%020d", seg))
	if err := os.Remove(idx); err != nil {
		t.Fatalf("the first segment's index file: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(idx, "stuck"), 0o755); err != nil {
		t.Fatal(err)
	}
	fill(t, b, 100)
	waitFor(t, "retention to remove the first segment", func() bool { return b.store.MinPhysicalOffset() > first })
	if lo, _ := b.store.QueueBounds("gone", 0); lo != 0 {
		t.Fatalf("queue min offset %d: retention dropped the entries; the test proves nothing", lo)
	}
	if code, off := queryOffset(t, c, offsetExt("fresh", "gone", 0)); code != remoting.RespQueryNotFound {
		t.Fatalf("first message removed: query = %d %d, want QUERY_NOT_FOUND (%d)", code, off, remoting.RespQueryNotFound)
	}
}

func TestAccessMessageInMemoryMaxRatioValidated(t *testing.T) {
	for _, r := range []float64{-0.1, 1.5, 40, math.NaN()} {
		o := testOptions(t)
		o.AccessMessageInMemoryMaxRatio = r
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "AccessMessageInMemoryMaxRatio") {
			t.Errorf("ratio %v: Validate = %v, want ErrInvalidOptions naming the field", r, err)
		}
	}
	o := testOptions(t)
	o.AccessMessageInMemoryMaxRatio = 1
	if err := o.Validate(); err != nil {
		t.Errorf("ratio 1: %v", err)
	}
}

// An offset committed past the end its queue has after a restart (a power
// cut under ASYNC_FLUSH lost the tail the consumer had committed, the
// offsets file kept the commit) is lowered to that end on open: the
// messages stored next take the lost offsets and must be consumed, not
// taken as consumed. An offset of a queue the store does not know stays.
func TestOffsetPastALostTailIsLoweredOnOpen(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	appendTestMsgs(t, b, "orders", 0, 3)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.Store.Dir, "config", "consumerOffset.json")
	lost := []byte(`{"offsetTable": {"orders@g": {"0": 9}, "orders@h": {"0": 2}, "gone@g": {"0": 7}}}`)
	if err := os.WriteFile(path, lost, 0o644); err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, o)
	appendTestMsgs(t, b2, "orders", 0, 2) // stored at offsets 3 and 4
	c := dial(t, b2)
	for _, tc := range []struct {
		group, topic string
		want         int64
	}{{"g", "orders", 3}, {"h", "orders", 2}, {"g", "gone", 7}} {
		if code, off := queryOffset(t, c, offsetExt(tc.group, tc.topic, 0)); code != remoting.RespSuccess || off != tc.want {
			t.Errorf("%s's offset of %s q0 after the restart: code %d, %d; want %d", tc.group, tc.topic, code, off, tc.want)
		}
	}
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := offsetOnDisk(o.Store.Dir, "g", "orders", 0); err != nil || !ok || off != 3 {
		t.Fatalf("g's offset on disk after close: %d %v %v, want the lowered 3", off, ok, err)
	}
}
