package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// gateLog is a slog.Handler that parks the goroutine logging one of its
// messages until the test opens that message's gate, and tells the test
// (arrived) that it got there. Other records are dropped.
type gateLog struct {
	mu    sync.Mutex
	gates map[string]*logGate
}

type logGate struct {
	once, openOnce sync.Once
	arrived        chan struct{}
	open           chan struct{}
}

// release lets the parked goroutine (and those after it) go on.
func (lg *logGate) release() { lg.openOnce.Do(func() { close(lg.open) }) }

func newGateLog(msgs ...string) *gateLog {
	g := &gateLog{gates: map[string]*logGate{}}
	for _, m := range msgs {
		g.gates[m] = &logGate{arrived: make(chan struct{}), open: make(chan struct{})}
	}
	return g
}

func (g *gateLog) gate(msg string) *logGate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gates[msg]
}

func (g *gateLog) Enabled(context.Context, slog.Level) bool { return true }
func (g *gateLog) WithAttrs([]slog.Attr) slog.Handler       { return g }
func (g *gateLog) WithGroup(string) slog.Handler            { return g }
func (g *gateLog) Handle(_ context.Context, r slog.Record) error {
	if lg := g.gate(r.Message); lg != nil {
		first := false
		lg.once.Do(func() { first = true; close(lg.arrived) })
		if first {
			<-lg.open
		}
	}
	return nil
}

// goroutineStacks returns every goroutine's stack.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// stacksWith returns the stacks that contain every one of parts.
func stacksWith(parts ...string) []string {
	var out []string
	for _, s := range goroutineStacks() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(s, p)
		}
		if all {
			out = append(out, s)
		}
	}
	return out
}

// An orderly member whose lock renewal is refused while it closes (the
// renewal answered once Close has waited for the handler calls, before it
// stops the lock loop) must not leave a goroutine behind: Close returned
// while the queue's drop (started by the lock loop, not counted before
// Close's Wait) still ran, and with -race the late WaitGroup.Add races
// with that Wait.
func TestOrderlyCloseWaitsForRefusedRenewalDrop(t *testing.T) {
	const refusedMsg = "client: queue lock refused on renewal; another member holds it"
	const droppedMsg = "client: queue dropped"
	cl := startCluster(t, nil, nil)
	topic, group := uniq("ordered"), uniq("cg")
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	sendKeyed(t, p, topic, []string{"a"}, 0, 1)

	gl := newGateLog(refusedMsg, droppedMsg)
	defer gl.gate(droppedMsg).release()
	t.Cleanup(gl.gate(refusedMsg).release) // before the consumer's Close
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.Logger = slog.New(gl) })
	started, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var mq MessageQueue // the handler's
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, Orderly: true,
		LockRenewInterval: 20 * time.Millisecond}, topic, "*",
		func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
			once.Do(func() {
				mq = MessageQueue{Topic: msgs[0].Topic, BrokerName: cl.name, QueueID: msgs[0].QueueID}
				close(started)
			})
			<-release
			return ConsumeSuccess, nil
		})
	t.Cleanup(unblock) // before the consumer's Close, if the test fails first
	<-started
	// Another client takes the queue's lock behind the member's back (a
	// renewal landing between the two requests takes it back: again).
	conn := remotetest.Dial(t, cl.b.Addr())
	lock := func(code int16, clientID string) string {
		return string(lockRequestAs(t, conn, code, group, clientID, mq))
	}
	waitFor(t, "the intruder granted the queue's lock", func() bool {
		lock(remoting.ReqUnlockBatchMQ, pc.c.id)
		return strings.Contains(lock(remoting.ReqLockBatchMQ, "intruder"), fmt.Sprintf(`"queueId":%d`, mq.QueueID))
	})
	// The next renewal is refused; the lock loop stops right before it
	// gives the queue up.
	select {
	case <-gl.gate(refusedMsg).arrived:
	case <-ctxT(t, 15*time.Second).Done():
		t.Fatal("no lock renewal refused")
	}

	closed := make(chan error, 1)
	go func() { closed <- pc.Close() }()
	unblock()
	// Close has waited for the handler call and now waits for the lock loop.
	waitFor(t, "Close past its wait for the handler calls", func() bool {
		for _, s := range stacksWith("(*PushConsumer).Close(") {
			if !strings.Contains(s, "WaitGroup") && strings.Contains(s, "[chan receive") {
				return true
			}
		}
		return false
	})
	gl.gate(refusedMsg).release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if left := stacksWith("(*PushConsumer).dropQueue"); len(left) > 0 {
		t.Fatalf("%d goroutines of the consumer outlived Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// A broker that stops answering (its host gone without a reset, a
// partition) holds each request to it for RequestTimeout. The periodic
// commit sends one per queue of that broker, and it held every queue's
// commitMu, of every broker, until all of them were answered: the
// SyncCommit of a call of a queue on a broker that is up waited for the
// dead broker's timeouts, keeping its Concurrency slot, so that the whole
// consumer stopped (for ever, once the dead broker's queues outnumber
// PersistInterval/RequestTimeout).
func TestSyncCommitNotHeldByPeriodicCommitToDeadBroker(t *testing.T) {
	topic, group := uniq("events"), uniq("cg")
	var holding atomic.Bool
	holding.Store(true)
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		return holding.Load() && req.Code == remoting.ReqUpdateConsumerOffset && req.Ext("topic") == topic
	})
	cl := startCluster(t, nil, nil)
	o2 := brokerOptions(t.TempDir(), cl.ns.Addr(), uniq("broker2"))
	o2.ListenAddr, o2.AdvertiseAddr = listen, px.addr
	openBroker(t, o2)
	for _, addr := range []string{cl.b.Addr(), listen} {
		createTopicOn(t, addr, topic, 1)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})
	// Every message goes to broker 1.
	ac1, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac1.Close()
	send := func(body string) {
		if _, err := ac1.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send("first")

	var mu sync.Mutex
	var got []string
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			got = append(got, string(m.Body))
		}
		return ConsumeSuccess, nil
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 2 * time.Minute; o.RouteRefreshInterval = time.Hour })
	startConsumer(t, c, ConsumerOptions{Group: group, SyncCommit: true, Concurrency: 1, FromWhere: ConsumeFromFirst,
		PersistInterval: 20 * time.Millisecond, RebalanceInterval: time.Hour}, topic, "*", h)
	t.Cleanup(func() { holding.Store(false); px.releaseAll() }) // before the consumer's Close
	waitFor(t, "the periodic commit of broker 2's queue held", func() bool {
		px.mu.Lock()
		defer px.mu.Unlock()
		return len(px.release) > 0
	})
	for i := range 3 {
		send(fmt.Sprintf("later-%d", i))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			stuck := stacksWith("(*PushConsumer).consumeConcurrently")
			t.Fatalf("%d of 4 messages of broker 1 consumed while broker 2 holds a commit; handler goroutines:\n%s",
				n, strings.Join(stuck, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close commits the offsets, releases the locks and leaves the group
// within one deadline (3 RequestTimeouts). A broker that does not answer
// took a RequestTimeout per queue of its own before the next broker's
// commit was even sent: with a few queues there the consumer's work on
// the brokers that are up was lost (their messages delivered again by
// the next owner), and its UNREGISTER_CLIENT never reached them.
func TestCloseCommitsLiveBrokersWhileOneHangs(t *testing.T) {
	topic, group := uniq("events"), uniq("cg")
	var holding atomic.Bool
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		return holding.Load() && req.Code == remoting.ReqUpdateConsumerOffset && req.Ext("topic") == topic
	})
	cl := startCluster(t, nil, nil)
	// Named to come first in broker order.
	o2 := brokerOptions(t.TempDir(), cl.ns.Addr(), "a"+uniq("broker"))
	o2.ListenAddr, o2.AdvertiseAddr = listen, px.addr
	openBroker(t, o2)
	for addr, n := range map[string]int{cl.b.Addr(): 1, listen: 4} {
		createTopicOn(t, addr, topic, n)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 5
	})
	ac1, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac1.Close()
	for i := range 3 {
		if _, err := ac1.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	n := 0
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		n += len(msgs)
		return ConsumeSuccess, nil
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 300 * time.Millisecond })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst,
		PersistInterval: time.Hour}, topic, "*", h)
	waitFor(t, "broker 1's messages consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n == 3 && cl.caughtUp(topic, pc)
	})
	holding.Store(true)
	t.Cleanup(func() { holding.Store(false); px.releaseAll() })
	_ = pc.Close() // broker 2's commits fail
	off, ok, err := ac1.QueryOffset(ctxT(t, 5*time.Second), group, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || off != 3 {
		t.Fatalf("broker 1's offset after Close: %d (committed: %v), want 3", off, ok)
	}
	if gc, err := ac1.GroupConnections(ctxT(t, 5*time.Second), group); err == nil {
		for _, m := range gc.Clients {
			if m.ClientID == c.id {
				t.Fatalf("broker 1 still lists the closed consumer in its group: %+v", gc.Clients)
			}
		}
	}
}

// The commit gate stops a broker's queues while a SyncCommit retries, so
// that a broker crash replays only the calls in flight. A commit the
// broker refuses because the topic was deleted under a running call
// (TOPIC_NOT_EXIST) never succeeds: the gate stayed shut for ever, and
// every other topic's queues on that broker never consumed again.
func TestSyncCommitOfDeletedTopicDoesNotStopTheBroker(t *testing.T) {
	cl := startCluster(t, nil, nil)
	gone, kept, group := uniq("gone"), uniq("kept"), uniq("cg")
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	for _, topic := range []string{gone, kept} {
		if err := ac.CreateTopic(ctxT(t, 5*time.Second), topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "both topics routed", func() bool {
		a, err1 := probe.SubscribeQueues(ctxT(t, 5*time.Second), gone)
		b, err2 := probe.SubscribeQueues(ctxT(t, 5*time.Second), kept)
		return err1 == nil && err2 == nil && len(a) == 1 && len(b) == 1
	})
	send := func(topic, body string) {
		if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send(gone, "in-flight")
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	n := 0
	pc, err := newClient(t, cl.ns.Addr(), nil).NewPushConsumer(ConsumerOptions{Group: group, SyncCommit: true,
		Concurrency: 2, FromWhere: ConsumeFromFirst, SuspendInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(gone, "*", func(context.Context, []*MessageExt) (ConsumeResult, error) {
		close(started)
		<-release
		return ConsumeSuccess, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(kept, "*", func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		n += len(msgs)
		return ConsumeSuccess, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	<-started
	if err := ac.DeleteTopic(ctxT(t, 5*time.Second), gone); err != nil {
		t.Fatal(err)
	}
	close(release) // its commit is refused from now on
	for i := range 3 {
		send(kept, fmt.Sprintf("k%d", i))
	}
	waitFor(t, "the other topic's messages consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n == 3
	})
}

// A periodic commit lists the live queues, then commits them one broker
// at a time; a queue it listed may meanwhile be dropped, leave the table
// (its final commit having failed) and be taken again as a new
// processQueue, which consumes further and commits. The listed, stale
// object's commit then took the broker's offset back to where the old
// object stopped (its messages are delivered again on the next
// rebalance or restart).
func TestStaleQueueCommitDoesNotMoveOffsetBack(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic, group := uniq("events"), uniq("cg")
	createTopicOn(t, cl.b.Addr(), topic, 1)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	offset := func() int64 {
		off, _, err := ac.QueryOffset(ctxT(t, 5*time.Second), group, topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	send(0, 3)
	var b inbox
	c := newClient(t, cl.ns.Addr(), nil)
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, PersistInterval: time.Hour, SyncCommit: true},
		topic, "*", b.handler("c"))
	waitFor(t, "the first messages consumed", func() bool { return len(b.all()) == 3 && cl.caughtUp(topic, pc) })
	var old *processQueue
	for _, q := range pc.processQueues() {
		if q.mq.Topic == topic {
			old = q
		}
	}
	pc.dropQueue(old)
	var cur *processQueue
	waitFor(t, "the queue taken again", func() bool {
		pc.mu.Lock()
		cur = pc.queues[old.mq]
		pc.mu.Unlock()
		return cur != nil && cur != old && !cur.isDropped()
	})
	// As if the old object's final commit had failed.
	old.mu.Lock()
	old.persisted = -1
	old.mu.Unlock()
	send(3, 6)
	waitFor(t, "the new messages consumed", func() bool { return len(b.all()) >= 6 && cl.caughtUp(topic, pc) })
	if err := pc.persist(ctxT(t, 5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if off := offset(); off != 6 {
		t.Fatalf("offset after the new queue's commit: %d, want 6", off)
	}
	// What the periodic commit that listed the old object does once it
	// gets its commitMu.
	_ = pc.commitQueues(ctxT(t, 5*time.Second), []*processQueue{old})
	if off := offset(); off != 6 {
		t.Fatalf("offset after the stale queue's commit: %d, want 6 (moved back)", off)
	}
}

// With SyncCommit no call of a broker's queues starts while a call of one
// of them retries its failed commit (the commit gate, see acquireFor). A
// batch whose send-back failed is run again here after SuspendInterval:
// that call took its Concurrency slot with acquire, past the gate.
func TestLocalRetryAfterFailedSendBackWaitsForCommitGate(t *testing.T) {
	const failedMsg = "client: send-back failed; retrying locally"
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		return req.Code == remoting.ReqConsumerSendMsgBack
	})
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen, px.addr })
	topic, group := uniq("events"), uniq("cg")
	createTopicOn(t, listen, topic, 1)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.Send(ctxT(t, 5*time.Second), admin.SendRequest{Topic: topic, Body: []byte("m0")}); err != nil {
		t.Fatal(err)
	}
	gl := newGateLog(failedMsg)
	t.Cleanup(gl.gate(failedMsg).release)
	var calls, callsGated atomic.Int32
	var gated atomic.Bool
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if gated.Load() {
			callsGated.Add(1)
		}
		if calls.Add(1) == 1 {
			return ConsumeRetryLater, nil
		}
		return ConsumeSuccess, nil
	}
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.Logger = slog.New(gl); o.RequestTimeout = 300 * time.Millisecond })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, SyncCommit: true,
		SuspendInterval: 10 * time.Millisecond}, topic, "*", h)
	select {
	case <-gl.gate(failedMsg).arrived:
	case <-ctxT(t, 15*time.Second).Done():
		t.Fatal("the send-back did not fail")
	}
	// As a call of the broker's queues whose commit fails and is retried.
	g := pc.commitGate(cl.name)
	g.hold()
	gated.Store(true)
	gl.gate(failedMsg).release()
	waitFor(t, "the local retry run or waiting for the gate", func() bool {
		return callsGated.Load() > 0 || len(stacksWith("(*commitGate).wait", "consumeConcurrently")) > 0
	})
	if n := callsGated.Load(); n > 0 {
		t.Fatalf("%d handler call(s) started while the broker's commit gate was held", n)
	}
	gated.Store(false)
	g.release()
	waitFor(t, "the retry run once the gate opened", func() bool { return calls.Load() >= 2 })
	px.releaseAll()
}

// Close releases an orderly member's queue locks and leaves the group on
// every broker. It did so one broker at a time, so that a broker that
// does not answer kept the others' queues locked and this client listed
// in their group (the other members could not take its queues) until its
// requests timed out.
func TestCloseLeavesLiveBrokersWhileOneHangs(t *testing.T) {
	topic, group := uniq("ordered"), uniq("cg")
	var holding atomic.Bool
	var heldIdx atomic.Int32
	hold := func(i int32) func(req *remoting.Command) bool {
		return func(req *remoting.Command) bool {
			return holding.Load() && heldIdx.Load() == i &&
				(req.Code == remoting.ReqUnlockBatchMQ || req.Code == remoting.ReqUnregisterClient)
		}
	}
	listen1, listen2 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	px1, px2 := startHoldProxy(t, listen1, hold(1)), startHoldProxy(t, listen2, hold(2))
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen1, px1.addr })
	o2 := brokerOptions(t.TempDir(), cl.ns.Addr(), uniq("broker"))
	o2.ListenAddr, o2.AdvertiseAddr = listen2, px2.addr
	openBroker(t, o2)
	for _, addr := range []string{listen1, listen2} {
		createTopicOn(t, addr, topic, 1)
	}
	// The broker whose address comes first hangs: Close asks it first.
	live, liveName := listen2, o2.BrokerName
	heldIdx.Store(1)
	if px2.addr < px1.addr {
		live, liveName = listen1, cl.name
		heldIdx.Store(2)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 30 * time.Second })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, Orderly: true, FromWhere: ConsumeFromFirst},
		topic, "*", func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil })
	waitFor(t, "both queues taken", func() bool { return len(ownQueues(pc, topic)) == 2 })
	holding.Store(true)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = pc.Close()
	}()
	t.Cleanup(func() {
		holding.Store(false)
		px1.releaseAll()
		px2.releaseAll()
		<-closed
	})
	ac, err := admin.Dial(ctxT(t, 5*time.Second), live)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	conn := remotetest.Dial(t, live)
	mq := MessageQueue{Topic: topic, BrokerName: liveName, QueueID: 0}
	waitFor(t, "the live broker's lock released and the client gone from its group", func() bool {
		var body struct {
			LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
		}
		if err := json.Unmarshal(lockRequestAs(t, conn, remoting.ReqLockBatchMQ, group, "other", mq), &body); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(body.LockOKMQSet, mq) {
			return false
		}
		gc, err := ac.GroupConnections(ctxT(t, 5*time.Second), group)
		if err != nil {
			return true // no member left
		}
		return !slices.ContainsFunc(gc.Clients, func(m admin.GroupClient) bool { return m.ClientID == c.id })
	})
}

// TestHeartbeatReUnregisterLeavesLiveBrokersWhileOneHangs: a heartbeat
// round built before Close and answered by a broker after Close's
// UNREGISTER_CLIENT registers the group there again; the round then
// unregisters it again itself. A broker that does not answer must not
// hold that second UNREGISTER_CLIENT back from the live one for a
// request timeout (the client stayed a member of the live broker's
// group, its queues assigned to it, meanwhile).
func TestHeartbeatReUnregisterLeavesLiveBrokersWhileOneHangs(t *testing.T) {
	topic, group := uniq("topic"), uniq("cg")
	var holdUnreg, holdBeat atomic.Bool
	var heldIdx atomic.Int32
	var beatHeld atomic.Bool
	var beatOpaque atomic.Int32 // the held heartbeat's, once beatHeld
	hold := func(i int32) func(req *remoting.Command) bool {
		return func(req *remoting.Command) bool {
			if heldIdx.Load() == i { // the hanging broker
				return holdUnreg.Load() && req.Code == remoting.ReqUnregisterClient
			}
			if holdBeat.Load() && req.Code == remoting.ReqHeartBeat {
				beatOpaque.Store(req.Opaque)
				beatHeld.Store(true)
				return true
			}
			return false
		}
	}
	var beatAnswered atomic.Bool
	onAnswer := func(resp *remoting.Command) {
		if beatHeld.Load() && resp.Opaque == beatOpaque.Load() {
			beatAnswered.Store(true)
		}
	}
	listen1, listen2 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	px1, px2 := startHoldProxy(t, listen1, hold(1)), startHoldProxy(t, listen2, hold(2))
	px1.answered.Store(&onAnswer)
	px2.answered.Store(&onAnswer)
	cl := startCluster(t, nil, func(o *broker.Options) { o.ListenAddr, o.AdvertiseAddr = listen1, px1.addr })
	o2 := brokerOptions(t.TempDir(), cl.ns.Addr(), uniq("broker"))
	o2.ListenAddr, o2.AdvertiseAddr = listen2, px2.addr
	openBroker(t, o2)
	for _, addr := range []string{listen1, listen2} {
		createTopicOn(t, addr, topic, 1)
	}
	// The broker whose address comes first hangs: the client asks it first.
	live, livePx := listen2, px2
	heldIdx.Store(1)
	if px2.addr < px1.addr {
		live, livePx = listen1, px1
		heldIdx.Store(2)
	}
	probe := newClient(t, cl.ns.Addr(), nil)
	waitFor(t, "the topic routed on both brokers", func() bool {
		qs, err := probe.SubscribeQueues(ctxT(t, 5*time.Second), topic)
		return err == nil && len(qs) == 2
	})
	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RequestTimeout = 30 * time.Second })
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst},
		topic, "*", func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil })
	waitFor(t, "both queues taken", func() bool { return len(ownQueues(pc, topic)) == 2 })
	ac, err := admin.Dial(ctxT(t, 5*time.Second), live)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	member := func() bool {
		gc, err := ac.GroupConnections(ctxT(t, 5*time.Second), group)
		return err == nil && slices.ContainsFunc(gc.Clients, func(m admin.GroupClient) bool { return m.ClientID == c.id })
	}
	waitFor(t, "the client a member of the live broker's group", member)

	// A heartbeat round naming the group is held on its way to the live
	// broker while Close runs.
	holdUnreg.Store(true)
	holdBeat.Store(true)
	c.kickHeartbeat()
	waitFor(t, "a heartbeat held on its way to the live broker", beatHeld.Load)
	holdBeat.Store(false)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = pc.Close()
	}()
	t.Cleanup(func() {
		holdUnreg.Store(false)
		px1.releaseAll()
		px2.releaseAll()
		<-closed
	})
	waitFor(t, "Close's UNREGISTER_CLIENT handled by the live broker", func() bool { return !member() })
	livePx.releaseWhere(func(req *remoting.Command) bool { return req.Code == remoting.ReqHeartBeat })
	waitFor(t, "the held heartbeat answered by the live broker", beatAnswered.Load)
	waitFor(t, "the client gone from the live broker's group again", func() bool { return !member() })
}
