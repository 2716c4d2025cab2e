package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fsutil"
)

// Consumer offsets: where each queue resumes. Clustering groups keep them
// on the broker (QUERY_CONSUMER_OFFSET, UPDATE_CONSUMER_OFFSET);
// broadcasting members keep their own, in memory and, unless
// ConsumerOptions.MemoryOffsets, in ConsumerOptions.OffsetFile. A queue's
// committed offset is its smallest unacknowledged offset (processQueue.
// ackOffset), committed every PersistInterval, when the queue is given up,
// on Close, and with each clustering pull (the pull's commitOffset); with
// ConsumerOptions.SyncCommit after each handler call (syncCommit),
// durably, and not with pulls.

// offsetStore keeps committed offsets.
type offsetStore interface {
	// read returns mq's committed offset; found is false if none is.
	read(ctx context.Context, mq MessageQueue) (off int64, found bool, err error)
	// commit stores offsets durably. It deletes from offs the queues it
	// left uncommitted without an error (to be committed again next time).
	commit(ctx context.Context, offs map[MessageQueue]int64) error
	// close lets the offsets go once the consumer has committed them last.
	close()
}

func (pc *PushConsumer) newOffsetStore() (offsetStore, error) {
	if pc.opts.Model == Clustering {
		return &brokerOffsets{pc: pc, durable: pc.opts.SyncCommit}, nil
	}
	if pc.opts.MemoryOffsets {
		return &fileOffsets{table: map[MessageQueue]int64{}}, nil
	}
	path, hint := pc.opts.OffsetFile, "ConsumerOptions.OffsetFile"
	if path == "" {
		path, hint = defaultOffsetFile(pc.opts.Group, pc.c.localID), "Options.InstanceName"
	}
	return loadFileOffsets(path, hint)
}

// brokerOffsets are a clustering group's offsets on the brokers.
type brokerOffsets struct {
	pc *PushConsumer
	// durable sets remoting.ExtSyncCommit on every commit: a halfback
	// broker answers once the offset is on its disk (SyncCommit).
	durable bool
}

func (b *brokerOffsets) read(ctx context.Context, mq MessageQueue) (int64, bool, error) {
	resp, err := b.pc.queueRequest(ctx, remoting.ReqQueryConsumerOffset, "QUERY_CONSUMER_OFFSET", mq,
		map[string]string{"consumerGroup": b.pc.opts.Group})
	if err != nil {
		return 0, false, err
	}
	if resp.Code == remoting.RespQueryNotFound {
		return 0, false, nil
	}
	off, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if err != nil || off < 0 {
		return 0, false, fmt.Errorf("client: QUERY_CONSUMER_OFFSET of %s: bad offset %q", mq, resp.Ext("offset"))
	}
	return off, true, nil
}

func (b *brokerOffsets) close() {}

func (b *brokerOffsets) commit(ctx context.Context, offs map[MessageQueue]int64) error {
	var errs []error
	for mq, off := range offs {
		ext := map[string]string{"consumerGroup": b.pc.opts.Group, "commitOffset": strconv.FormatInt(off, 10)}
		if b.durable {
			ext[remoting.ExtSyncCommit] = "true"
		}
		_, err := b.pc.queueRequest(ctx, remoting.ReqUpdateConsumerOffset, "UPDATE_CONSUMER_OFFSET", mq, ext)
		switch {
		case err == nil:
		case off == 0 && isTopicNotExist(err):
			delete(offs, mq) // not committed, no failure: again next time
		default:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isTopicNotExist reports whether err is a broker's TOPIC_NOT_EXIST. A
// commit of offset 0 so refused is no failure: under auto-creation the
// name server routes a topic the broker does not have yet (TBW102's
// queues), and such a queue holds nothing a commit would keep; the
// broker creates the topic, at offset 0, with its first message. The
// queue stays uncommitted, so that the next commit, once the topic
// exists, stores its 0 (a restart then starts there, not at the end).
func isTopicNotExist(err error) bool {
	var refused *BrokerError
	return errors.As(err, &refused) && refused.Code == remoting.RespTopicNotExist
}

// queueRequest sends a request about mq to its broker, with the topic and
// queueId ext fields added to ext. A response other than SUCCESS (and
// QUERY_NOT_FOUND) is a *BrokerError.
func (pc *PushConsumer) queueRequest(ctx context.Context, code int16, op string, mq MessageQueue, ext map[string]string) (*remoting.Command, error) {
	addr, err := pc.c.brokerAddr(ctx, mq.BrokerName, mq.Topic)
	if err != nil {
		return nil, err
	}
	if ext == nil {
		ext = map[string]string{}
	}
	ext["topic"] = mq.Topic
	ext["queueId"] = strconv.Itoa(int(mq.QueueID))
	resp, err := pc.c.invoke(ctx, addr, op, newRequest(code, ext))
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.RespSuccess && resp.Code != remoting.RespQueryNotFound {
		return nil, &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	return resp, nil
}

// offsetOf asks mq's broker for an offset (GET_MAX_OFFSET,
// SEARCH_OFFSET_BY_TIMESTAMP).
func (pc *PushConsumer) offsetOf(ctx context.Context, code int16, op string, mq MessageQueue, ext map[string]string) (int64, error) {
	resp, err := pc.queueRequest(ctx, code, op, mq, ext)
	if err != nil {
		return 0, err
	}
	off, err := strconv.ParseInt(resp.Ext("offset"), 10, 64)
	if err != nil || off < 0 || resp.Code != remoting.RespSuccess {
		return 0, fmt.Errorf("client: %s of %s: bad answer %d %q", op, mq, resp.Code, resp.Ext("offset"))
	}
	return off, nil
}

// fileOffsets are a broadcasting member's offsets: a table in memory,
// written to path (when set) as JSON on each commit. While the consumer
// runs it holds an exclusive flock on path+".lock" (lock), so that no
// other consumer, in this process or another, writes the file too.
type fileOffsets struct {
	path  string
	lock  *os.File
	mu    sync.Mutex
	table map[MessageQueue]int64
}

// offsetFileEntry is one queue in the offset file.
type offsetFileEntry struct {
	MessageQueue
	Offset int64 `json:"offset"`
}

type offsetFileBody struct {
	Offsets []offsetFileEntry `json:"offsets"`
}

// loadFileOffsets locks and reads path; a missing file is an empty table,
// an unreadable one an error (starting over could skip or repeat
// messages), and one another consumer holds ErrOffsetFileInUse, whose
// message names hint, the option that tells the consumers' files apart.
func loadFileOffsets(path, hint string) (*fileOffsets, error) {
	lock, err := lockOffsetFile(path, hint)
	if err != nil {
		return nil, err
	}
	f := &fileOffsets{path: path, lock: lock, table: map[MessageQueue]int64{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		f.close()
		return nil, fmt.Errorf("client: broadcasting offsets: %w", err)
	}
	var body offsetFileBody
	if err := json.Unmarshal(data, &body); err != nil {
		f.close()
		return nil, fmt.Errorf("client: broadcasting offsets %s: %w", path, err)
	}
	for _, e := range body.Offsets {
		f.table[e.MessageQueue] = e.Offset
	}
	return f, nil
}

// lockOffsetFile takes an exclusive lock (flock; LockFileEx on Windows) on
// path+".lock", which two open files of one process contend for as well
// as two processes; the system drops it when the process dies.
func lockOffsetFile(path, hint string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("client: broadcasting offsets: %w", err)
	}
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("client: broadcasting offsets: %w", err)
	}
	if err := fsutil.TryLock(lf); err != nil {
		lf.Close()
		if errors.Is(err, fsutil.ErrLocked) {
			return nil, fmt.Errorf("%w: %s (another consumer on this host uses it: give each its own %s)",
				ErrOffsetFileInUse, path, hint)
		}
		return nil, fmt.Errorf("client: broadcasting offsets: lock %s.lock: %w", path, err)
	}
	return lf, nil
}

// close releases the file's lock (closing it drops the flock).
func (f *fileOffsets) close() {
	if f.lock != nil {
		f.lock.Close()
	}
}

func (f *fileOffsets) read(_ context.Context, mq MessageQueue) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	off, ok := f.table[mq]
	return off, ok, nil
}

func (f *fileOffsets) commit(_ context.Context, offs map[MessageQueue]int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for mq, off := range offs {
		f.table[mq] = off
	}
	if f.path == "" {
		return nil
	}
	body := offsetFileBody{Offsets: make([]offsetFileEntry, 0, len(f.table))}
	mqs := make([]MessageQueue, 0, len(f.table))
	for mq := range f.table {
		mqs = append(mqs, mq)
	}
	sortQueues(mqs)
	for _, mq := range mqs {
		body.Offsets = append(body.Offsets, offsetFileEntry{MessageQueue: mq, Offset: f.table[mq]})
	}
	data, err := json.MarshalIndent(body, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(f.path), 0o755)
	}
	if err == nil {
		err = fsutil.WriteFileAtomic(f.path, data)
	}
	if err != nil {
		return fmt.Errorf("client: write broadcasting offsets: %w", err)
	}
	return nil
}

// startOffset works out where q starts: its committed offset, else where
// FromWhere says. It retries failures (guessing could skip messages) until
// it succeeds or q's context ends.
func (pc *PushConsumer) startOffset(q *processQueue) (int64, bool) {
	for {
		off, err := pc.computeStart(q.ctx, q.mq)
		if err == nil {
			return off, true
		}
		if q.ctx.Err() != nil {
			return 0, false
		}
		pc.log.Warn("client: start offset unknown; retrying", "queue", q.mq, "err", err)
		if !sleepCtx(q.ctx, pc.opts.SuspendInterval) {
			return 0, false
		}
	}
}

func (pc *PushConsumer) computeStart(ctx context.Context, mq MessageQueue) (int64, error) {
	off, found, err := pc.offsets.read(ctx, mq)
	if err != nil || found {
		return off, err
	}
	isRetry := strings.HasPrefix(mq.Topic, retryTopicPrefix)
	switch pc.opts.FromWhere {
	case ConsumeFromFirst:
		return 0, nil // a queue that lost messages answers OFFSET_MOVED to its first
	case ConsumeFromTimestamp:
		if !isRetry {
			return pc.offsetOf(ctx, remoting.ReqSearchOffsetByTimestamp, "SEARCH_OFFSET_BY_TIMESTAMP", mq,
				map[string]string{"timestamp": strconv.FormatInt(pc.opts.ConsumeTimestamp.UnixMilli(), 10)})
		}
	default:
		if isRetry {
			return 0, nil
		}
	}
	return pc.offsetOf(ctx, remoting.ReqGetMaxOffset, "GET_MAX_OFFSET", mq, nil)
}

// persistLoop commits the changed offsets every PersistInterval.
func (pc *PushConsumer) persistLoop(ctx context.Context) {
	t := time.NewTicker(pc.opts.PersistInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := pc.persist(ctx, false); err != nil && ctx.Err() == nil {
			pc.log.Warn("client: committing offsets failed", "err", err)
		}
	}
}

// persist commits the offsets of the live queues, or of every queue in
// the table (Close).
func (pc *PushConsumer) persist(ctx context.Context, all bool) error {
	pc.persistMu.Lock()
	defer pc.persistMu.Unlock()
	var qs []*processQueue
	if all {
		pc.mu.Lock()
		for _, q := range pc.queues {
			qs = append(qs, q)
		}
		pc.mu.Unlock()
	} else {
		qs = pc.processQueues()
	}
	// Each broker's queues apart, the brokers at once: a commit holds its
	// queues' commitMu until it is answered, and a broker that does not
	// answer (a RequestTimeout per queue) must neither hold the other
	// brokers' queues, whose SyncCommits wait for their commitMu with
	// their Concurrency slots, nor spend Close's deadline before their
	// commits are sent.
	byName := map[string][]*processQueue{}
	for _, q := range qs {
		byName[q.mq.BrokerName] = append(byName[q.mq.BrokerName], q)
	}
	names := slices.Sorted(maps.Keys(byName))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = pc.commitQueues(ctx, byName[name]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// syncCommit commits q's offset, if it moved, once a handler call is done
// (ConsumerOptions.SyncCommit): the orderly consumer calls it before the
// queue's next call. A failed commit is retried every SuspendInterval
// until it succeeds or q stops (the consumer's Close commits it then), so
// a queue never runs ahead of its committed offset by more than a call.
// An orderly queue a rebalance dropped is not committed: its lock may
// have passed to another member, whose offset this one would overwrite.
func (pc *PushConsumer) syncCommit(q *processQueue) { pc.syncCommitThen(q, func() {}) }

// syncCommitThen is syncCommit calling release once the commit is done or
// has failed once: a concurrent call keeps its Concurrency slot through
// its commit, not through the retries of a commit whose broker is down,
// which would starve the queues of the other brokers until the client
// drops the dead broker's queues. While it retries it holds its broker's
// commit gate instead, so that no queue of that broker starts a call.
func (pc *PushConsumer) syncCommitThen(q *processQueue, release func()) {
	release = sync.OnceFunc(release)
	defer release()
	if !pc.opts.SyncCommit {
		return
	}
	held := false // q's commit gate
	defer func() {
		if held {
			q.commitGate.release()
		}
	}()
	for {
		if pc.opts.Orderly && q.isDropped() {
			return
		}
		ctx, cancel := context.WithTimeout(q.ctx, pc.c.opts.RequestTimeout)
		err := pc.persistQueues(ctx, []*processQueue{q})
		cancel()
		if err == nil {
			return
		}
		pc.log.Warn("client: offset not committed after a handler call; retrying before the queue's next call", "queue", q.mq, "err", err)
		// No queue of the broker starts a new call until this commit is
		// done (held before the slot is given back: see acquireFor), unless
		// the broker answered that the queue's topic is gone: that refusal
		// lasts, and must not stop the broker's other topics for ever.
		var refused *BrokerError
		gone := errors.As(err, &refused) && refused.Code == remoting.RespTopicNotExist
		if !gone != held {
			if held = !gone; held {
				q.commitGate.hold()
			} else {
				q.commitGate.release()
			}
		}
		release()
		if !sleepCtx(q.ctx, pc.opts.SuspendInterval) {
			return
		}
	}
}

// persistQueues commits the offsets of qs (a dropped queue, or one whose
// handler call just ended). It does not take persistMu: the commits of
// different queues run at once (a halfback broker then writes their
// durable commits together), those of one queue in turn (commitQueues).
func (pc *PushConsumer) persistQueues(ctx context.Context, qs []*processQueue) error {
	return pc.commitQueues(ctx, qs)
}

// commitQueues commits the offsets of qs that changed since their last
// commit. It holds each queue's commitMu, taken in queue order, from
// reading the offset until the commit is answered: a queue's commits never
// overtake each other, so its offset on the broker never goes back to an
// older value of ours.
func (pc *PushConsumer) commitQueues(ctx context.Context, qs []*processQueue) error {
	qs = slices.Clone(qs)
	slices.SortFunc(qs, func(a, b *processQueue) int { return compareQueues(a.mq, b.mq) })
	qs = slices.CompactFunc(qs, func(a, b *processQueue) bool { return a == b })
	for _, q := range qs {
		q.commitMu.Lock()
		defer q.commitMu.Unlock()
	}
	offs := map[MessageQueue]int64{}
	locking := pc.opts.Orderly && pc.opts.Model == Clustering
	for _, q := range qs {
		// A queue that left the table (a periodic commit listed it before
		// it was dropped) is not committed: a queue taken again in its
		// place may have committed a later offset already.
		if !pc.inTable(q) {
			continue
		}
		if off, changed := q.toPersist(locking); changed {
			offs[q.mq] = off
		}
	}
	if len(offs) == 0 {
		return nil
	}
	if err := pc.offsets.commit(ctx, offs); err != nil {
		return err
	}
	for _, q := range qs {
		if off, ok := offs[q.mq]; ok {
			q.markPersisted(off)
		}
	}
	return nil
}

// inTable reports whether q is the consumer's queue for its message queue.
// A dropped queue leaves the table under its commitMu (dropQueue).
func (pc *PushConsumer) inTable(q *processQueue) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.queues[q.mq] == q
}
