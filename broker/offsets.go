package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// Consumer offsets: what each clustering group has committed per queue
// (RocketMQ's ConsumerOffsetManager and ConsumerManageProcessor).
// Broadcasting consumers keep their offsets themselves.

// offsetFlushInterval is how often dirty offsets are written (RocketMQ
// flushes consumerOffset.json every 5 s).
const offsetFlushInterval = 2 * time.Second

// errOffsetsUnavailable means consumerOffset.json could not be loaded; the
// broker then answers offset requests with an error rather than guess.
var errOffsetsUnavailable = errors.New("consumer offsets unavailable")

// errResetPending refuses a commit of a queue whose offset was reset and
// whose pulls have not been told yet (reset.go): it holds where the
// consumer was before the reset.
var errResetPending = errors.New("offset has been previously reset")

type offsetKey struct{ topic, group string }

// offsetTable holds committed offsets, persisted as JSON in
// <dataDir>/config/consumerOffset.json: {"offsetTable": {"topic@group":
// {"queueId": offset}}}, RocketMQ's file shape with quoted queue ids.
type offsetTable struct {
	path string

	saveMu sync.Mutex // serializes writes of the file

	mu    sync.Mutex
	table map[offsetKey]map[int32]int64
	// reset holds the offsets an operator reset that no pull of the
	// queue has been told yet (reset.go); saved with the table.
	reset  map[offsetKey]map[int32]int64
	dirty  bool
	broken error // load failed: serve errors, never overwrite the file

	// beforeCommit, if set (tests only), runs as commit starts, before
	// it takes mu.
	beforeCommit func()
}

type offsetFile struct {
	OffsetTable      map[string]map[int32]int64 `json:"offsetTable"`
	ResetOffsetTable map[string]map[int32]int64 `json:"resetOffsetTable,omitempty"`
}

// openOffsetTable loads the offsets file. A file that cannot be read or
// parsed leaves the table broken (see errOffsetsUnavailable), not empty:
// an empty table would send every group back to where it starts.
func openOffsetTable(dataDir string) *offsetTable {
	t := &offsetTable{path: filepath.Join(dataDir, "config", "consumerOffset.json"),
		table: make(map[offsetKey]map[int32]int64), reset: make(map[offsetKey]map[int32]int64)}
	if err := fsutil.MkdirAllSync(filepath.Dir(t.path)); err != nil {
		t.broken = err
		return t
	}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return t
	case err != nil:
		t.broken = err
		return t
	}
	var f offsetFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.broken = fmt.Errorf("%s: %w", t.path, err)
		return t
	}
	load := func(into map[offsetKey]map[int32]int64, from map[string]map[int32]int64) {
		for k, queues := range from {
			topic, group, ok := strings.Cut(k, "@") // topics cannot contain '@'
			if !ok || len(queues) == 0 {
				continue
			}
			into[offsetKey{topic, group}] = maps.Clone(queues)
		}
	}
	load(t.table, f.OffsetTable)
	load(t.reset, f.ResetOffsetTable)
	return t
}

// clampedOffset is an offset clampToQueues lowered.
type clampedOffset struct {
	Group, Topic string
	QueueID      int32
	From, To     int64
}

// clampToQueues lowers every committed offset past the end of its queue
// (max, one past the last message) to that end, and returns what it
// lowered. Such an offset is left by a machine that lost power under
// ASYNC_FLUSH: consumers committed messages that were never flushed, and
// the offsets file, written after them, kept the commit. Left alone, the
// messages stored next at those lost offsets would be skipped as
// consumed. Queues the store does not know are left alone.
func (t *offsetTable) clampToQueues(queues []store.Queue) []clampedOffset {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return nil
	}
	ends := make(map[string]map[int32]int64)
	for _, q := range queues {
		if ends[q.Topic] == nil {
			ends[q.Topic] = make(map[int32]int64)
		}
		ends[q.Topic][q.QueueID] = q.MaxOffset
	}
	var out []clampedOffset
	for k, m := range t.table {
		for qid, off := range m {
			if end, ok := ends[k.topic][qid]; ok && off > end {
				m[qid] = end
				t.dirty = true
				out = append(out, clampedOffset{k.group, k.topic, qid, off, end})
			}
		}
	}
	return out
}

// get returns a committed offset.
func (t *offsetTable) get(group, topic string, qid int32) (int64, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return 0, false, fmt.Errorf("%w: %v", errOffsetsUnavailable, t.broken)
	}
	off, ok := t.table[offsetKey{topic, group}][qid]
	return off, ok, nil
}

// commit records an offset if check (when not nil) accepts it. check runs
// under the table's lock, which removeTopic holds while it removes a
// topic's offsets: what check sees and the write it allows come before
// that removal or after it, never on both sides.
func (t *offsetTable) commit(group, topic string, qid int32, off int64, check func() error) error {
	if t.beforeCommit != nil {
		t.beforeCommit()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return fmt.Errorf("%w: %v", errOffsetsUnavailable, t.broken)
	}
	if _, ok := t.reset[offsetKey{topic, group}][qid]; ok {
		return errResetPending
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	k := offsetKey{topic, group}
	m := t.table[k]
	if m == nil {
		m = make(map[int32]int64)
		t.table[k] = m
	}
	if old, ok := m[qid]; !ok || old != off {
		m[qid] = off
		t.dirty = true
	}
	return nil
}

// removeTopic forgets every group's offsets on topic (RocketMQ's
// cleanOffsetByTopic) and writes the file at once, so that a restart does
// not bring them back.
func (t *offsetTable) removeTopic(topic string) error {
	return t.removeWhere(func(k offsetKey) bool { return k.topic == topic })
}

// removeGroup forgets a group's offsets on every topic (RocketMQ's
// ConsumerOffsetManager.removeOffset) and writes the file at once.
func (t *offsetTable) removeGroup(group string) error {
	return t.removeWhere(func(k offsetKey) bool { return k.group == group })
}

// removeWhere forgets the offsets whose key drop names and writes the
// file at once.
func (t *offsetTable) removeWhere(drop func(offsetKey) bool) error {
	t.mu.Lock()
	if t.broken != nil {
		t.mu.Unlock()
		return fmt.Errorf("%w: %v", errOffsetsUnavailable, t.broken)
	}
	for k := range t.table {
		if drop(k) {
			delete(t.table, k)
			t.dirty = true
		}
	}
	for k := range t.reset {
		if drop(k) {
			delete(t.reset, k)
			t.dirty = true
		}
	}
	t.mu.Unlock()
	return t.persist()
}

// group returns a group's offsets by topic and queue.
func (t *offsetTable) group(group string) map[string]map[int32]int64 {
	return t.copyWhere(func(k offsetKey) (string, bool) { return k.topic, k.group == group })
}

// topic returns the offsets every group committed on a topic, by group
// and queue.
func (t *offsetTable) topic(topic string) map[string]map[int32]int64 {
	return t.copyWhere(func(k offsetKey) (string, bool) { return k.group, k.topic == topic })
}

// copyWhere copies the queue offsets of the keys keep accepts, under the
// name keep returns for each.
func (t *offsetTable) copyWhere(keep func(offsetKey) (string, bool)) map[string]map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[int32]int64)
	for k, m := range t.table {
		name, ok := keep(k)
		if !ok {
			continue
		}
		out[name] = maps.Clone(m)
	}
	return out
}

// persist writes the file if anything changed since the last write.
//
// When it returns nil, every commit that returned before persist was
// called is on disk, which is what a durable commit (ext
// halfbackSyncCommit) needs, and concurrent durable commits share writes:
//   - dirty is cleared only under mu, in the same critical section that
//     copies the table, so a commit that lands after that copy sets dirty
//     again (commit sets it on every change) and is never lost.
//   - A commit whose persist finds dirty clear was either copied by a write
//     that has finished (saveMu is held until the write is done, so
//     acquiring it waits for any write in flight) or is unchanged from a
//     value such a write copied. A write that fails sets dirty again before
//     it releases saveMu, so the next persist writes rather than skips.
//   - Hence the durable commits that arrive while a write is in flight all
//     wait on saveMu; the first of them to get it writes a copy holding all
//     of them, and the others find dirty clear and return at once: one
//     fsync per burst, not per commit.
func (t *offsetTable) persist() error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	if !t.dirty || t.broken != nil {
		t.mu.Unlock()
		return nil
	}
	f := offsetFile{OffsetTable: make(map[string]map[int32]int64, len(t.table))}
	for k, m := range t.table {
		f.OffsetTable[k.topic+"@"+k.group] = maps.Clone(m)
	}
	for k, m := range t.reset {
		if f.ResetOffsetTable == nil {
			f.ResetOffsetTable = make(map[string]map[int32]int64, len(t.reset))
		}
		f.ResetOffsetTable[k.topic+"@"+k.group] = maps.Clone(m)
	}
	t.dirty = false
	t.mu.Unlock()

	data, err := json.MarshalIndent(f, "", "  ")
	if err == nil {
		err = fsutil.WriteFileAtomic(t.path, data)
	}
	if err != nil {
		t.mu.Lock()
		t.dirty = true // try again next time
		t.mu.Unlock()
		return fmt.Errorf("broker: write %s: %w", t.path, err)
	}
	return nil
}

func (t *offsetTable) close() error { return t.persist() }

// registerOffsets handles consumer offset queries and commits, and loads
// the offsets file.
func (b *Broker) registerOffsets(mux *remoting.Mux) {
	if t := b.offsetTable(); t.broken != nil {
		b.opts.Logger.Error("consumer offsets not loaded; offset requests fail until the file is repaired",
			"path", t.path, "err", t.broken)
	}
	mux.HandleFunc(remoting.ReqQueryConsumerOffset, b.handleQueryConsumerOffset)
	mux.HandleFunc(remoting.ReqUpdateConsumerOffset, b.handleUpdateConsumerOffset)
}

// offsetHeader reads consumerGroup, topic and queueId.
func offsetHeader(req *remoting.Command) (group, topic string, qid int32, err error) {
	group, topic = req.Ext("consumerGroup"), req.Ext("topic")
	if group == "" {
		return "", "", 0, errors.New("consumerGroup is missing")
	}
	if err := message.ValidateGroup(group); err != nil {
		return "", "", 0, err
	}
	if err := message.ValidateTopic(topic); err != nil {
		return "", "", 0, err
	}
	n, err := strconv.ParseInt(req.Ext("queueId"), 10, 32)
	if err != nil || n < 0 {
		return "", "", 0, fmt.Errorf("queueId %q is not a queue id", req.Ext("queueId"))
	}
	return group, topic, int32(n), nil
}

// handleQueryConsumerOffset answers ext offset. With nothing committed it
// answers 0 when the queue is empty, or has lost no message to retention
// (its min offset is 0) and its first message is still in the commit
// log's in-memory tail (startsAtZero), RocketMQ's rule that lets a new
// group read a young queue from its start, unless the request sets
// setZeroIfNotFound=false (RocketMQ 5); otherwise QUERY_NOT_FOUND, and the
// client applies its consumeFromWhere.
func (b *Broker) handleQueryConsumerOffset(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group, topic, qid, err := offsetHeader(req)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	off, ok, err := b.offsetTable().get(group, topic, qid)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if !ok {
		zero := req.Ext("setZeroIfNotFound") != "false"
		if zero {
			if zero, err = b.startsAtZero(topic, qid); err != nil {
				return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
			}
		}
		if !zero {
			return remoting.NewResponse(req, remoting.RespQueryNotFound, "Not found, maybe this group consumer boot first")
		}
		off = 0
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.ExtFields["offset"] = strconv.FormatInt(off, 10)
	return resp
}

// startsAtZero reports whether a group with no offset on a queue starts at
// its offset 0: the queue is empty, or retention removed none of its
// messages and its first one lies within inMemoryBytes of the end of the
// commit log (RocketMQ: minOffset <= 0 and not checkInDiskByConsumeOffset
// at offset 0, with accessMessageInMemoryMaxRatio of physical memory).
// Further back, a new group would replay all of a long queue. A first
// message retention removed counts as lost, though the queue's min offset
// is still 0.
func (b *Broker) startsAtZero(topic string, qid int32) (bool, error) {
	if minOff, _ := b.store.QueueBounds(topic, qid); minOff > 0 {
		return false, nil
	}
	e, ok, err := b.store.QueueEntryAt(topic, qid, 0)
	if err != nil || !ok {
		return err == nil, err
	}
	// Retention may have removed it before raising the queue's min past
	// it: then it is in no memory (RocketMQ's check finds no message).
	if e.PhysicalOffset < b.store.MinPhysicalOffset() {
		return false, nil
	}
	return b.store.MaxPhysicalOffset()-e.PhysicalOffset <= b.inMemoryBytes, nil
}

// inlineRequest is the broker's remoting.ServerOptions.Inline: an
// in-memory offset commit (the RocketMQ clients' periodic persist and the
// official Go client's client-side reset) is applied before its
// connection's next request is read. Served on a goroutine, it could run
// after a query of that offset sent behind it: the Go client v2.1.2
// commits the reset offsets "oneway" and at once reads them back to
// restart its queues, and a queue then restarted from its old offset.
// That client's oneway requests carry no oneway flag (its InvokeOneWay
// sends the request as it is and drops the answer), so a commit is
// inlined with or without the flag; the answer of one without it is then
// written from the read loop, bounded by WriteTimeout. A durable commit
// waits for an fsync, so it is not inlined.
func inlineRequest(req *remoting.Command) bool {
	return req.Code == remoting.ReqUpdateConsumerOffset && req.Ext(remoting.ExtSyncCommit) != "true"
}

// handleUpdateConsumerOffset stores commitOffset (the Go client sends it
// oneway; the answer is then dropped). With the halfback extension
// remoting.ExtSyncCommit set to "true" it answers SUCCESS only once the
// offsets file holding the commit is on disk, SYSTEM_ERROR with the cause
// if that write fails: the offset then stays committed in memory, and the
// periodic flush retries the write. Offsets are written on their own
// schedule (offsetFlushInterval) without the extension.
func (b *Broker) handleUpdateConsumerOffset(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	group, topic, qid, err := offsetHeader(req)
	if err == nil {
		var off int64
		off, err = strconv.ParseInt(req.Ext("commitOffset"), 10, 64)
		switch {
		case err != nil:
			err = fmt.Errorf("commitOffset %q is not a number", req.Ext("commitOffset"))
		case off == -1:
			// A client's "no offset yet" for a queue it holds but has not
			// consumed from (ali-ons persists it for every such queue, every
			// few seconds): nothing to store, and nothing wrong.
			return remoting.NewResponse(req, remoting.RespSuccess, "")
		default:
			err = b.commitOffset(group, topic, qid, off)
		}
	}
	if errors.Is(err, errResetPending) {
		// Where the consumer was before a reset its pulls have not been
		// told of: ignored, as RocketMQ does ("Offset has been previously
		// reset").
		return remoting.NewResponse(req, remoting.RespSuccess, errResetPending.Error())
	}
	if err != nil {
		b.opts.Logger.Warn("consumer offset not updated", "remote", conn.RemoteAddr(), "group", group, "topic", topic, "queue", qid, "err", err)
		if errors.Is(err, ErrTopicNotExist) { // ConsumerManageProcessor's answer
			return remoting.NewResponse(req, remoting.RespTopicNotExist, "Topic "+topic+" not exist!")
		}
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	if req.Ext(remoting.ExtSyncCommit) == "true" {
		// persist returns once this commit is on disk, whether its own
		// write or a concurrent one carried it (see persist).
		if err := b.offsetTable().persist(); err != nil {
			b.opts.Logger.Error("consumer offset committed but not persisted", "remote", conn.RemoteAddr(), "group", group, "topic", topic, "queue", qid, "err", err)
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
	}
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// commitOffset stores a group's offset for a queue. The broker keeps what
// the client acknowledged, but never an offset below 0 or past the queue's
// max offset (no message there has been delivered, so none acknowledged),
// nor one for a topic it does not have (ErrTopicNotExist) or a queue the
// topic does not have: the offset table would otherwise grow with every
// name a client makes up.
//
// The max is read under the offsets' lock: a topic's deletion removes its
// consume queues and then, under that lock, every offset on it
// (deleteTopicData), so an offset checked against the deleted queues is
// removed with the others, and one checked after the removal is checked
// against the topic created again.
func (b *Broker) commitOffset(group, topic string, qid int32, off int64) error {
	if off < 0 {
		return fmt.Errorf("offset %d is negative", off)
	}
	tc, ok := b.topics.get(topic)
	if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotExist, topic)
	}
	if n := max(tc.ReadQueueNums, tc.WriteQueueNums); int(qid) >= n {
		return fmt.Errorf("queueId %d is past topic %s's %d queues", qid, topic, n)
	}
	return b.offsetTable().commit(group, topic, qid, off, func() error {
		if _, maxOff := b.store.QueueBounds(topic, qid); off > maxOff {
			return fmt.Errorf("offset %d is past %s queue %d's max offset %d", off, topic, qid, maxOff)
		}
		return nil
	})
}

// commitOffsetFromPull stores the offset a pull request carries (its
// commitOffset, with the commit flag set). Errors are logged: the pull
// itself goes on.
func (b *Broker) commitOffsetFromPull(group, topic string, qid int32, offset int64) {
	if err := b.commitOffset(group, topic, qid, offset); err != nil && !errors.Is(err, errResetPending) {
		b.opts.Logger.Warn("pull commit offset ignored", "group", group, "topic", topic, "queue", qid, "offset", offset, "err", err)
	}
}

// groupOffsets returns a group's committed offsets by topic and queue id.
func (b *Broker) groupOffsets(group string) map[string]map[int32]int64 {
	return b.offsetTable().group(group)
}

// startOffsetFlush writes dirty offsets every offsetFlushInterval.
func (b *Broker) startOffsetFlush() {
	b.every(offsetFlushInterval, func() {
		if err := b.offsetTable().persist(); err != nil {
			b.opts.Logger.Error("consumer offsets not persisted", "err", err)
		}
	})
}
