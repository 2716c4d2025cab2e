package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// Tests of ConsumerOptions.SyncCommit. The consumers' PersistInterval is
// an hour, so the periodic commit never runs: only the per-call commits
// can put offsets on the broker.

func TestConsumerOptionsSyncCommitNeedsClustering(t *testing.T) {
	err := ConsumerOptions{Group: "g", Model: Broadcasting, SyncCommit: true}.Validate()
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "SyncCommit") {
		t.Fatalf("Validate(Broadcasting, SyncCommit) = %v, want ErrInvalidOptions naming SyncCommit", err)
	}
	for _, o := range []ConsumerOptions{
		{Group: "g", SyncCommit: true},
		{Group: "g", SyncCommit: true, Orderly: true},
		{Group: "g", Model: Broadcasting},
	} {
		if err := o.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", o, err)
		}
	}
}

// startSyncCluster starts a cluster and returns it with the broker's data
// directory.
func startSyncCluster(t *testing.T) (*cluster, string) {
	var dir string
	cl := startCluster(t, nil, func(o *broker.Options) { dir = o.Store.Dir })
	return cl, dir
}

// diskOffsets reads the broker's consumerOffset.json (what survives a
// broker crash, not its memory) and returns group's offsets of topic by
// queue id.
func diskOffsets(dataDir, topic, group string) (map[int32]int64, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "config", "consumerOffset.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		OffsetTable map[string]map[int32]int64 `json:"offsetTable"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return f.OffsetTable[topic+"@"+group], nil
}

// With SyncCommit an orderly consumer's call finds the offset after the
// queue's previous call on the broker's disk: a crash of either side
// would replay only the call in flight. A failed call commits nothing,
// its retry finds the same offset.
func TestOrderlySyncCommitBeforeNextCall(t *testing.T) {
	cl, dataDir := startSyncCluster(t)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ledger"), uniq("og")
	keys := []string{"k0", "k1", "k2"}
	const perKey = 8
	sendKeyed(t, p, topic, keys, 0, perKey)
	cl.waitStored(t, topic, len(keys)*perKey)

	var (
		mu      sync.Mutex
		seen    = map[int32]bool{} // queues that had a call
		checked int                // calls that found their queue's offset on disk
		fails   []string
		failed  bool // k1-3 failed once
	)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		onDisk, err := diskOffsets(dataDir, topic, group)
		mu.Lock()
		defer mu.Unlock()
		off, found := onDisk[m.QueueID]
		switch {
		case err != nil:
			fails = append(fails, fmt.Sprintf("read offsets: %v", err))
		case !seen[m.QueueID]: // the queue's first call: nothing consumed before it
			if found {
				fails = append(fails, fmt.Sprintf("queue %d: offset %d on disk before the first call", m.QueueID, off))
			}
		case !found || off != m.QueueOffset:
			fails = append(fails, fmt.Sprintf("call of %s (queue %d offset %d): offset on disk %d (found %v), want %d",
				m.Body, m.QueueID, m.QueueOffset, off, found, m.QueueOffset))
		default:
			checked++
		}
		seen[m.QueueID] = true
		if string(m.Body) == "k1-3" && !failed {
			failed = true
			return ConsumeRetryLater, nil
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true, SyncCommit: true,
		FromWhere: ConsumeFromFirst, SuspendInterval: 20 * time.Millisecond, PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })

	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Fatalf("%d of %d calls after a queue's first:\n%s", len(fails), len(fails)+checked, strings.Join(fails, "\n"))
	}
	// Every call but each queue's first, the retry included.
	if want := len(keys)*perKey + 1 - len(seen); checked != want {
		t.Fatalf("%d calls checked, want %d", checked, want)
	}
	// The last call's offset is committed too, durably.
	want := map[int32]int64{}
	for _, q := range pc.processQueues() {
		if off, ok := q.ackOffset(); ok && q.mq.Topic == topic && seen[q.mq.QueueID] {
			want[q.mq.QueueID] = off
		}
	}
	waitFor(t, "the last calls' offsets on disk", func() bool {
		got, err := diskOffsets(dataDir, topic, group)
		if err != nil {
			t.Fatal(err)
		}
		for qid, off := range want {
			if got[qid] != off {
				return false
			}
		}
		return true
	})
}

// A concurrent consumer with SyncCommit commits each queue's offset after
// its calls, durably, without waiting for PersistInterval.
func TestConcurrentSyncCommit(t *testing.T) {
	cl, dataDir := startSyncCluster(t)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("events"), uniq("cg")
	bodies := sendN(t, p, topic, "e", "", 20)
	cl.waitStored(t, topic, len(bodies))
	in := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, SyncCommit: true,
		FromWhere: ConsumeFromFirst, PersistInterval: time.Hour}, topic, "*", in.handler("c"))
	in.waitBodies(t, bodies)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })

	// persisted moves only when the broker answered a commit; with
	// PersistInterval an hour, only a per-call commit answers here (a
	// pull's commitOffset sets no persisted). The retry topic's queue,
	// never consumed, has nothing to commit either way.
	waitFor(t, "every queue's offset committed", func() bool {
		for _, q := range pc.processQueues() {
			if _, changed := q.toPersist(false); changed && q.mq.Topic == topic {
				return false
			}
		}
		return true
	})
	got, err := diskOffsets(dataDir, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range cl.b.Store().Queues() {
		if q.Topic == topic && got[q.QueueID] != q.MaxOffset {
			t.Errorf("queue %d: offset on disk %d, want %d", q.QueueID, got[q.QueueID], q.MaxOffset)
		}
	}
}

// With SyncCommit and Concurrency 1 a concurrent consumer runs one call
// at a time, and each call finds the offset after its queue's previous
// call on the broker's disk, as an orderly consumer's does: a crash of
// either side replays only the call in flight, not every call whose
// commit had not finished.
func TestConcurrentSyncCommitBeforeNextCall(t *testing.T) {
	cl, dataDir := startSyncCluster(t)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("events"), uniq("cg")
	bodies := sendN(t, p, topic, "e", "", 40)
	cl.waitStored(t, topic, len(bodies))
	var (
		mu      sync.Mutex
		seen    = map[int32]bool{} // queues that had a call
		checked int
		fails   []string
	)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		onDisk, err := diskOffsets(dataDir, topic, group)
		mu.Lock()
		defer mu.Unlock()
		off, found := onDisk[m.QueueID]
		switch {
		case err != nil:
			fails = append(fails, fmt.Sprintf("read offsets: %v", err))
		case !seen[m.QueueID]:
		case !found || off != m.QueueOffset:
			fails = append(fails, fmt.Sprintf("call of %s (queue %d offset %d): offset on disk %d (found %v), want %d",
				m.Body, m.QueueID, m.QueueOffset, off, found, m.QueueOffset))
		default:
			checked++
		}
		seen[m.QueueID] = true
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, SyncCommit: true, Concurrency: 1,
		FromWhere: ConsumeFromFirst, PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })
	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Fatalf("%d of %d calls after a queue's first:\n%s", len(fails), len(fails)+checked, strings.Join(fails, "\n"))
	}
}

// A handler whose queue a rebalance gives to another member sees its
// context end (the new owner consumes the messages); closing the consumer
// does not end it.
func TestHandlerContextEndsWhenItsQueueMoves(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("moves"), uniq("mg")
	createTopic(t, p, topic)
	sendKeyed(t, p, topic, []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}, 0, 1)
	cl.waitStored(t, topic, 9) // createTopic's message too

	release := make(chan struct{})
	var mu sync.Mutex
	var cancelled, held int
	blocking := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		held++
		mu.Unlock()
		select {
		case <-ctx.Done():
			mu.Lock()
			cancelled++
			mu.Unlock()
			return ConsumeRetryLater, nil
		case <-release:
			return ConsumeSuccess, nil
		}
	}
	opts := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, Orderly: true, SyncCommit: true, PersistInterval: time.Hour}
	c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", blocking)
	waitFor(t, "c1 holding a call on each of its 4 queues", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return held >= 4
	})
	box := &inbox{}
	c2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", box.handler("c2"))
	waitFor(t, "c2 owning 2 queues and c1's calls there cancelled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ownQueues(c2, topic)) == 2 && cancelled == 2
	})
	// c2 consumes what c1 gave up, once the broker's queue lock expires
	// or c1 unlocks it on the drop.
	waitFor(t, "c2 consuming its queues' messages", func() bool { return len(box.count("c2")) >= 2 })

	// Closing c1 does not cancel its two remaining calls: Close waits.
	closed := make(chan error, 1)
	go func() { closed <- c1.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while two handler calls were running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if cancelled != 2 {
		t.Errorf("%d calls cancelled, want the 2 of the queues that moved", cancelled)
	}
}

// A broker that goes down takes its queues' commits with it: with
// SyncCommit, the calls of its queues that succeeded retry their commits
// until the queue is dropped (the name server forgets the broker after
// up to 2 minutes, and the client learns it at its next route refresh).
// They must not keep the Concurrency slots meanwhile: the queues of the
// brokers that are up go on.
func TestSyncCommitBrokerDownDoesNotStarveTheOthers(t *testing.T) {
	cl := startCluster(t, nil, nil)
	b2 := openBroker(t, brokerOptions(t.TempDir(), cl.ns.Addr(), uniq("broker2")))
	topic, group := uniq("events"), uniq("cg")
	for _, addr := range []string{cl.b.Addr(), b2.Addr()} {
		createTopicOn(t, addr, topic, 1)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	sendN(t, p, topic, "early", "", 8) // half of them on broker 1

	release := make(chan struct{})
	var (
		mu      sync.Mutex
		waiting int      // calls of broker 1's messages waiting for release
		late    []string // broker 2's messages sent after broker 1 went down
	)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if msgs[0].StoreHost == cl.b.Addr() {
			mu.Lock()
			waiting++
			mu.Unlock()
			<-release
			return ConsumeSuccess, nil
		}
		if body := string(msgs[0].Body); strings.HasPrefix(body, "late") {
			mu.Lock()
			late = append(late, body)
			mu.Unlock()
		}
		return ConsumeSuccess, nil
	}
	hour := func(o *Options) { o.RouteRefreshInterval = time.Hour }
	startConsumer(t, newClient(t, cl.ns.Addr(), hour), ConsumerOptions{Group: group, SyncCommit: true, Concurrency: 2,
		FromWhere: ConsumeFromFirst, PersistInterval: time.Hour, RebalanceInterval: time.Hour,
		SuspendInterval: 10 * time.Millisecond}, topic, "*", h)
	waitFor(t, "both slots in calls of broker 1's messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return waiting == 2
	})
	cl.b.Close() // down: the calls' commits fail from now on
	close(release)
	sendN(t, newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{}), topic, "late", "", 4) // broker 2's
	waitFor(t, "broker 2's new messages consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(late) == 4
	})
}

// With Concurrency above 1 the calls in flight are not all a crash
// replays: a committed offset never passes a message still in a handler,
// so a slow call holds its queue's offset on the broker while the calls
// of the messages behind it end, and a crash then replays them too.
func TestSyncCommitSlowCallHoldsTheOffset(t *testing.T) {
	cl, dataDir := startSyncCluster(t)
	topic, group := uniq("events"), uniq("cg")
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.CreateTopic(ctxT(t, 5*time.Second), topic, 1); err != nil {
		t.Fatal(err)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic's one queue routed", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 1
	})
	const n = 20
	sendN(t, newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{}), topic, "e", "", n)
	release := make(chan struct{})
	var (
		mu   sync.Mutex
		done int
	)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if msgs[0].QueueOffset == 0 {
			<-release
			return ConsumeSuccess, nil
		}
		mu.Lock()
		done++
		mu.Unlock()
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, SyncCommit: true, Concurrency: 2,
		FromWhere: ConsumeFromFirst, PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "every call but the first done", func() bool { mu.Lock(); defer mu.Unlock(); return done == n-1 })
	offs, err := diskOffsets(dataDir, topic, group)
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := offs[0]; ok && off != 0 {
		t.Fatalf("offset %d on disk with the call of offset 0 in flight", off)
	}
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })
	waitFor(t, "the offset after the last call on disk", func() bool {
		offs, err := diskOffsets(dataDir, topic, group)
		return err == nil && offs[0] == n
	})
}

// A pull carries the consumer's offset as it was when the pull was built
// (its commitOffset). With SyncCommit the call in flight then may commit
// further, durably, before the pull reaches the broker: the pull's older
// offset must not take the group back, or the next write of the broker's
// offsets file (another queue's commit, the periodic flush, a clean stop)
// puts on disk an offset whose message was handled, and a crash then
// replays it. The proxy holds the pull until the later commit is on disk.
func TestSyncCommitNotUndoneByAPullInFlight(t *testing.T) {
	topic, group := uniq("events"), uniq("cg")
	pullAt5 := func(req *remoting.Command) bool {
		return req.Code == remoting.ReqPullMessage && req.Ext("topic") == topic && req.Ext("queueOffset") == "5"
	}
	held := make(chan struct{}) // closed when the pull at offset 5 is held
	var once sync.Once
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		if pullAt5(req) {
			once.Do(func() { close(held) })
			return true
		}
		return false
	})
	var dataDir string
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr, dataDir = listen, px.addr, o.Store.Dir })
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	qid := int32(-1)
	for i := range 10 {
		r, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: fmt.Appendf(nil, "m%d", i), ShardingKey: "order-1"})
		if err != nil {
			t.Fatal(err)
		}
		if qid == -1 {
			qid = r.QueueID
		}
		if r.QueueID != qid || r.QueueOffset != int64(i) {
			t.Fatalf("message %d stored in queue %d at %d, want queue %d at %d", i, r.QueueID, r.QueueOffset, qid, i)
		}
	}

	got5, unblock := make(chan struct{}), make(chan struct{})
	var fails []string
	var mu sync.Mutex
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		switch msgs[0].QueueOffset {
		case 4: // the pull at 5 is built while this call runs
			select {
			case <-held:
			case <-time.After(15 * time.Second):
				mu.Lock()
				fails = append(fails, "no pull at offset 5 while the call of offset 4 ran")
				mu.Unlock()
			}
		case 5:
			close(got5)
			<-unblock
		}
		return ConsumeSuccess, nil
	}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, SyncCommit: true, Concurrency: 1,
		PullBatchSize: 5, FromWhere: ConsumeFromFirst, PersistInterval: time.Hour}, topic, "*", h)
	t.Cleanup(func() { close(unblock) }) // before the consumer's Close, which waits for the call

	waitFor(t, "offset 5 on disk", func() bool {
		offs, err := diskOffsets(dataDir, topic, group)
		return err == nil && offs[qid] == 5
	})
	px.releaseAll() // the pull at 5, built while message 4's call ran, arrives
	select {
	case <-got5:
	case <-ctxT(t, 15*time.Second).Done():
		t.Fatal("message 5 not delivered")
	}
	mu.Lock()
	if len(fails) > 0 {
		t.Fatal(fails)
	}
	mu.Unlock()
	// Messages 0-4 were handled and their offset committed; a clean stop
	// writes the broker's offsets as they are in its memory.
	if err := cl.b.Close(); err != nil {
		t.Fatal(err)
	}
	offs, err := diskOffsets(dataDir, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	if offs[qid] != 5 {
		t.Fatalf("queue %d: offset on disk %d once the pull built during message 4's call arrived, want 5 (messages 0-4 handled and committed)", qid, offs[qid])
	}
}

// The commit gate is held only by calls that retry a commit. Dispatchers
// of many queues that wait for it and check it at once all find it open
// while nobody holds it. It was a channel each checker sent to and took
// back: checkers saw each other's values as a call retrying and turned
// each other away, in a ring that could last for ever (with -race, 68,484
// of 80,000 checks here; the crash tests' last consumer once stopped with
// three of its four queues never consumed again).
func TestCommitGateOpenUnlessHeld(t *testing.T) {
	g := newCommitGate()
	var turnedAway atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20000 {
				if !g.wait(t.Context()) {
					return
				}
				if !g.isOpen() {
					turnedAway.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := turnedAway.Load(); n > 0 {
		t.Fatalf("no call retried a commit, yet checks found the gate held %d times of 80000", n)
	}

	// Held by two retrying calls, it opens when both are done.
	g.hold()
	g.hold()
	opened := make(chan bool)
	go func() { opened <- g.wait(t.Context()) }()
	for _, step := range []string{"held twice", "released once"} {
		if g.isOpen() {
			t.Fatalf("%s: open", step)
		}
		select {
		case <-opened:
			t.Fatalf("%s: wait returned", step)
		default:
		}
		g.release()
	}
	if ok := <-opened; !ok || !g.isOpen() {
		t.Fatalf("released twice: wait %v, open %v; want both true", ok, g.isOpen())
	}
	ctx, cancel := context.WithCancel(t.Context())
	g.hold()
	cancel()
	if g.wait(ctx) {
		t.Fatal("wait on a held gate with an ended context returned true")
	}
}

// A dispatcher that took a slot while a call of its broker retried a
// failed commit, and finds the gate open only because that call gave up as
// the consumer closed (q's context ended meanwhile), starts no call: it
// would be a second call in flight while the broker is down, delivered
// again after a crash (the crash tests' SyncCommit consumer once delivered
// two messages again from one kill with Concurrency 1).
func TestAcquireForStoppedWhileTheGateOpened(t *testing.T) {
	pc := &PushConsumer{opts: ConsumerOptions{SyncCommit: true}, sem: make(chan struct{}, 1), ctx: t.Context()}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	q := newProcessQueue(ctx, MessageQueue{Topic: "t", BrokerName: "b"}, nil)
	gate := newCommitGate()
	q.commitGate = gate
	pc.afterSlot = func() {
		// Between the dispatcher's slot and its look at the gate: a call
		// of the broker fails its commit and retries, the consumer
		// closes, and the retrying call, stopped, opens the gate again.
		gate.hold()
		cancel()
		gate.release()
	}
	if pc.acquireFor(q) {
		t.Fatal("acquireFor = true for a queue that stopped before it returned")
	}
	if n := len(pc.sem); n != 0 {
		t.Fatalf("%d slots taken after acquireFor refused", n)
	}
}

// The same when the consumer closes and q's context has not ended yet:
// Close cancels the consumer's context, which ends its queues' contexts
// one at a time, so a retrying call of another queue may give up and open
// the gate before q's context ends. The dispatcher must not start a call
// then (the crash test's SyncCommit consumer delivered two messages again
// from one kill: the call whose commit the kill cut, and one started by
// the queue whose context was cancelled last).
func TestAcquireForConsumerClosingWhileTheGateOpened(t *testing.T) {
	pcCtx, closeConsumer := context.WithCancel(t.Context())
	defer closeConsumer()
	pc := &PushConsumer{opts: ConsumerOptions{SyncCommit: true}, sem: make(chan struct{}, 1), ctx: pcCtx}
	// q's context is not yet cancelled by the consumer's (the cancellation
	// has not reached it): a context of its own stands in for it.
	q := newProcessQueue(t.Context(), MessageQueue{Topic: "t", BrokerName: "b"}, nil)
	gate := newCommitGate()
	q.commitGate = gate
	pc.afterSlot = func() {
		// A call of the broker retries its commit; Close begins, and that
		// call's queue, cancelled first, stops and opens the gate.
		gate.hold()
		closeConsumer()
		gate.release()
	}
	if pc.acquireFor(q) {
		t.Fatal("acquireFor = true once the consumer was closing")
	}
	if n := len(pc.sem); n != 0 {
		t.Fatalf("%d slots taken after acquireFor refused", n)
	}
}
