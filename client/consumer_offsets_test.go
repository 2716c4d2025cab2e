package client

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
)

// Offsets are committed on Close: a restarted member of the group gets
// every message its predecessor did not finish (the un-acknowledged tail)
// and none it did.
func TestOffsetsSurviveRestart(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	bodies := sendN(t, p, topic, "m", "", 30)
	box := &inbox{}
	release := make(chan struct{})
	var calls atomic.Int32
	blocking := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if calls.Add(1) == 1 {
			<-release // still running when Close starts
		}
		box.record("run1", msgs)
		return ConsumeSuccess, nil
	}
	// The default FromLast: the broker answers 0 for a group new to a young queue.
	o := ConsumerOptions{Group: group, Concurrency: 1}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", blocking)
	waitFor(t, "the first handler call", func() bool { return calls.Load() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- pc.Close() }()
	waitFor(t, "Close to stop the consumer's queues", func() bool {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		for _, q := range pc.queues {
			if q.ctx.Err() == nil {
				return false
			}
		}
		return pc.ctx.Err() != nil
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was running", err)
	default:
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	done := box.count("run1")
	if len(done) != 1 || calls.Load() != 1 {
		t.Fatalf("first run consumed %v in %d calls, want the one call it was in", done, calls.Load())
	}
	pc2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler("run2"))
	var rest []string
	for _, b := range bodies {
		if done[b] == 0 {
			rest = append(rest, b)
		}
	}
	box.waitBodies(t, rest)
	waitFor(t, "the restarted member caught up", func() bool { return cl.caughtUp(topic, pc2) })
	got := box.count("run2")
	for b := range done {
		if got[b] > 0 {
			t.Fatalf("%s, acknowledged before the restart, was delivered again", b)
		}
	}
	if len(got) != len(rest) {
		t.Fatalf("restarted member got %d messages, want %d", len(got), len(rest))
	}
}

// A broadcasting member's offsets file lets a restarted member go on
// where it stopped.
func TestBroadcastingOffsetsFileSurvivesRestart(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("prices"), uniq("bg")
	o := ConsumerOptions{Group: group, Model: Broadcasting, FromWhere: ConsumeFromFirst,
		OffsetFile: filepath.Join(t.TempDir(), "offsets.json")}
	first := sendN(t, p, topic, "a", "", 10)
	box := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler("run1"))
	box.waitBodies(t, first)
	waitFor(t, "caught up", func() bool { return cl.caughtUp(topic, pc) })
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	second := sendN(t, p, topic, "b", "", 5)
	pc2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler("run2"))
	box.waitBodies(t, second)
	waitFor(t, "caught up again", func() bool { return cl.caughtUp(topic, pc2) })
	if got := box.count("run2"); len(got) != len(second) {
		t.Fatalf("restarted member got %v, want only the 5 new messages", got)
	}
}

// A broadcasting offsets file that cannot be read stops Start: starting
// over could skip or repeat messages.
func TestBroadcastingBadOffsetsFileFailsStart(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	path := filepath.Join(t.TempDir(), "offsets.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: uniq("bg"), Model: Broadcasting, OffsetFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe("prices", "*", (&inbox{}).handler("x")); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 5*time.Second)); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start with a corrupt offsets file: %v", err)
	}
}

// Where a queue without a committed offset starts: FromLast skips what is
// there, FromTimestamp starts at the first message stored at or after the
// timestamp, FromFirst takes everything.
func TestConsumeFromWhere(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("prices")
	old := sendN(t, p, topic, "old", "", 8)
	last := cl.waitStored(t, topic, len(old))
	var newest int64
	for _, m := range last {
		newest = max(newest, m.StoreTimestamp.UnixMilli())
	}
	waitFor(t, "the clock to pass the last store time", func() bool { return time.Now().UnixMilli() > newest })
	from := time.Now()
	mid := sendN(t, p, topic, "mid", "", 8)
	cl.waitStored(t, topic, len(old)+len(mid))

	box := &inbox{}
	start := func(name string, w ConsumeFromWhere) *PushConsumer {
		// Broadcasting: a clustering group new to a young queue starts at 0
		// whatever FromWhere says (the broker's rule).
		o := ConsumerOptions{Group: uniq("bg"), Model: Broadcasting, MemoryOffsets: true, FromWhere: w, ConsumeTimestamp: from}
		pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler(name))
		waitFor(t, name+" owning its queues", func() bool { return len(ownQueues(pc, topic)) == 4 })
		return pc
	}
	pcs := []*PushConsumer{start("last", ConsumeFromLast), start("ts", ConsumeFromTimestamp), start("first", ConsumeFromFirst)}
	fresh := sendN(t, p, topic, "new", "", 8)
	for _, pc := range pcs {
		box.waitBodies(t, fresh)
		waitFor(t, "caught up", func() bool { return cl.caughtUp(topic, pc) })
	}
	want := map[string]int{"last": len(fresh), "ts": len(mid) + len(fresh), "first": len(old) + len(mid) + len(fresh)}
	for name, n := range want {
		got := box.count(name)
		if len(got) != n {
			t.Errorf("%s got %d messages, want %d", name, len(got), n)
		}
		for b := range got {
			if name != "first" && strings.HasPrefix(b, "old") || name == "last" && strings.HasPrefix(b, "mid") {
				t.Errorf("%s got %s", name, b)
			}
		}
	}
}

// An offset past a queue's end (a broker that lost its tail, a stale
// file) is answered PULL_OFFSET_MOVED; the consumer moves to where the
// broker says and goes on.
func TestOffsetMovedIsFollowed(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("prices")
	sendN(t, p, topic, "old", "", 4)
	path := filepath.Join(t.TempDir(), "offsets.json")
	var body offsetFileBody
	for qid := range int32(4) {
		body.Offsets = append(body.Offsets, offsetFileEntry{MessageQueue{Topic: topic, BrokerName: cl.name, QueueID: qid}, 1000})
	}
	data, _ := json.Marshal(body)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	box := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: uniq("bg"), Model: Broadcasting,
		OffsetFile: path, PersistInterval: 50 * time.Millisecond}, topic, "*", box.handler("c"))
	waitFor(t, "the offsets moved back to the queues' ends", func() bool {
		for _, q := range pc.processQueues() {
			if off, ok := q.ackOffset(); !ok || off >= 1000 {
				return false
			}
		}
		return len(ownQueues(pc, topic)) == 4
	})
	fresh := sendN(t, p, topic, "new", "", 8)
	box.waitBodies(t, fresh)
	if got := box.count("c"); len(got) != len(fresh) {
		t.Fatalf("got %v, want only the new messages", got)
	}
}

// A new clustering group with the default ConsumeFromLast starts at the
// end of a queue whose first message the broker no longer counts as in
// memory (broker.Options.AccessMessageInMemoryMaxRatio): it does not
// replay a long topic that retention has not trimmed yet.
func TestNewGroupSkipsAnOldQueueFromLast(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.AccessMessageInMemoryMaxRatio = 1e-15 // well under a byte of any machine's memory
	})
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("history")
	old := sendN(t, p, topic, "old", "", 8)
	cl.waitStored(t, topic, len(old))
	box := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: uniq("cg")}, topic, "*", box.handler("c"))
	waitFor(t, "the consumer owning its queues", func() bool { return len(ownQueues(pc, topic)) == 4 })
	fresh := sendN(t, p, topic, "new", "", 8)
	box.waitBodies(t, fresh)
	waitFor(t, "caught up", func() bool { return cl.caughtUp(topic, pc) })
	for b := range box.count("c") {
		if strings.HasPrefix(b, "old") {
			t.Fatalf("a new group from the last offset got %s, sent before it started", b)
		}
	}
}

// A broadcasting member restarted with the default InstanceName finds its
// offsets file again (its default path is named by ClientIP@DEFAULT, as
// RocketMQ keeps InstanceName DEFAULT for broadcasting consumers) and
// gets what was sent while it was down: it does not start over.
func TestBroadcastingDefaultOffsetsFileSurvivesRestart(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // os.UserCacheDir
	t.Setenv("HOME", t.TempDir())
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("prices"), uniq("bg")
	createTopic(t, p, topic)
	o := ConsumerOptions{Group: group, Model: Broadcasting}
	box := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler("run1"))
	waitFor(t, "the member owning its queues", func() bool { return len(ownQueues(pc, topic)) == 4 })
	first := sendN(t, p, topic, "a", "", 8)
	box.waitBodies(t, first)
	waitFor(t, "caught up", func() bool { return cl.caughtUp(topic, pc) })
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	whileDown := sendN(t, p, topic, "b", "", 5)
	cl.waitStored(t, topic, 1+len(first)+len(whileDown))
	pc2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler("run2"))
	waitFor(t, "the restarted member owning its queues", func() bool { return len(ownQueues(pc2, topic)) == 4 })
	after := sendN(t, p, topic, "c", "", 3)
	box.waitBodies(t, after)
	waitFor(t, "caught up again", func() bool { return cl.caughtUp(topic, pc2) })
	got := box.count("run2")
	for _, b := range whileDown {
		if got[b] == 0 {
			t.Fatalf("the restarted member got %v: not %s, sent while it was down (its offsets file was not found)", got, b)
		}
	}
	if len(got) != len(whileDown)+len(after) {
		t.Fatalf("the restarted member got %v, want only the messages sent since it stopped", got)
	}
}

// Two broadcasting members of one group with the default InstanceName (two
// Clients of one process, or two processes on one host) would share one
// offsets file, each overwriting the other's offsets, so that a restart
// resumes from the other member's position. The second is refused at
// Start until the first closes.
func TestBroadcastingOffsetsFileIsNotShared(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	cl := startCluster(t, nil, nil)
	topic, group := uniq("prices"), uniq("bg")
	o := ConsumerOptions{Group: group, Model: Broadcasting}
	first := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", (&inbox{}).handler("a"))
	second, err := newClient(t, cl.ns.Addr(), nil).NewPushConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Subscribe(topic, "*", (&inbox{}).handler("b")); err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctxT(t, 10*time.Second)); !errors.Is(err, ErrOffsetFileInUse) || !strings.Contains(err.Error(), "InstanceName") {
		second.Close()
		t.Fatalf("second member on the same offsets file: Start = %v, want ErrOffsetFileInUse naming InstanceName", err)
	}
	// A twin in the first member's own Client is told the group is there.
	twin, err := first.c.NewPushConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := twin.Subscribe(topic, "*", (&inbox{}).handler("t")); err != nil {
		t.Fatal(err)
	}
	if err := twin.Start(ctxT(t, 10*time.Second)); !errors.Is(err, ErrGroupRegistered) {
		twin.Close()
		t.Fatalf("a second consumer of the group in one Client: Start = %v, want ErrGroupRegistered", err)
	}
	// With its own instance name it has its own file.
	startConsumer(t, newClient(t, cl.ns.Addr(), func(o *Options) { o.InstanceName = "other" }), o, topic, "*", (&inbox{}).handler("c"))
	// Once the first member closed, the file is free.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", (&inbox{}).handler("d"))
}

// Consumers of one group started at the same moment in one Client: one
// starts, every other is told the group is registered, not that the
// offsets file is in use (which names the wrong cause: InstanceName).
func TestConcurrentStartsOfOneGroupInOneClient(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	topic, group := uniq("prices"), uniq("bg")
	const n = 8
	pcs := make([]*PushConsumer, n)
	for i := range pcs {
		pc, err := c.NewPushConsumer(ConsumerOptions{Group: group, Model: Broadcasting})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Subscribe(topic, "*", (&inbox{}).handler("c")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		pcs[i] = pc
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pc.Start(ctxT(t, 20*time.Second))
		}()
	}
	wg.Wait()
	started := 0
	for _, err := range errs {
		switch {
		case err == nil:
			started++
		case !errors.Is(err, ErrGroupRegistered):
			t.Errorf("Start = %v, want ErrGroupRegistered", err)
		}
	}
	if started != 1 {
		t.Fatalf("%d consumers of the group started, want 1", started)
	}
}
