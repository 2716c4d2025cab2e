package client

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/message"
)

func TestConsumerOptionsValidate(t *testing.T) {
	bad := []ConsumerOptions{
		{},
		{Group: "has space"},
		{Group: strings.Repeat("g", 125)}, // %RETRY%<group> would pass 127 characters
		{Group: "g", Model: 7},
		{Group: "g", FromWhere: 9},
		{Group: "g", MaxReconsumeTimes: -1},
		{Group: "g", PullBatchSize: 33},
		{Group: "g", Concurrency: -2},
		{Group: "g", SuspendInterval: -time.Second},
		{Group: "g", LockRenewInterval: lockExpiry},
	}
	for _, o := range bad {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	if err := (ConsumerOptions{Group: "g"}).Validate(); err != nil {
		t.Fatalf("minimal options: %v", err)
	}
	d := ConsumerOptions{Group: "g"}.withDefaults()
	if d.MaxReconsumeTimes != 16 || d.ConsumeBatchSize != 1 || d.PullBatchSize != 32 || d.LongPollTimeout != 15*time.Second ||
		d.RebalanceInterval != 20*time.Second || d.PersistInterval != 5*time.Second {
		t.Fatalf("defaults %+v", d)
	}
}

func TestConsumerRefusesBadSubscriptions(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	if _, err := c.NewPushConsumer(ConsumerOptions{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("empty group: %v", err)
	}
	group := uniq("cg")
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: group})
	if err != nil {
		t.Fatal(err)
	}
	ok := (&inbox{}).handler("x")
	for _, tc := range []struct {
		topic, expr string
		h           MessageHandler
	}{
		{"", "*", ok}, {"bad topic", "*", ok}, {strings.Repeat("t", 128), "*", ok},
		{"orders", "*", nil}, {"orders", "||", ok}, {"orders", "a || *", ok}, {retryTopic(group), "*", ok},
	} {
		if err := pc.Subscribe(tc.topic, tc.expr, tc.h); !errors.Is(err, ErrInvalidSubscription) {
			t.Errorf("Subscribe(%q, %q, nil=%v) = %v, want ErrInvalidSubscription", tc.topic, tc.expr, tc.h == nil, err)
		}
	}
	if err := pc.Start(ctxT(t, 5*time.Second)); !errors.Is(err, ErrInvalidSubscription) {
		t.Fatalf("Start with no subscription: %v", err)
	}
	if err := pc.Subscribe("orders", "a || b", ok); err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe("orders", "*", ok); !errors.Is(err, ErrInvalidSubscription) {
		t.Fatalf("second subscription of a topic: %v", err)
	}
	if err := pc.Start(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 5*time.Second)); !errors.Is(err, ErrConsumerStarted) {
		t.Fatalf("second Start: %v", err)
	}
	if err := pc.Subscribe("other", "*", ok); !errors.Is(err, ErrConsumerStarted) {
		t.Fatalf("Subscribe after Start: %v", err)
	}
	twin, _ := c.NewPushConsumer(ConsumerOptions{Group: group})
	_ = twin.Subscribe("orders", "*", ok)
	if err := twin.Start(ctxT(t, 5*time.Second)); !errors.Is(err, ErrGroupRegistered) {
		t.Fatalf("a second consumer of the group in one Client: %v", err)
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pc.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAllocateAveragely(t *testing.T) {
	qs := func(n int) []MessageQueue {
		out := make([]MessageQueue, n)
		for i := range out {
			out[i] = MessageQueue{Topic: "t", BrokerName: "b", QueueID: int32(i)}
		}
		return out
	}
	ids := []string{"a", "b", "c"}
	for _, tc := range []struct {
		queues int
		want   [][]int32 // queue ids per member
	}{
		{4, [][]int32{{0, 1}, {2}, {3}}},
		{8, [][]int32{{0, 1, 2}, {3, 4, 5}, {6, 7}}},
		{2, [][]int32{{0}, {1}, nil}},
		{3, [][]int32{{0}, {1}, {2}}},
	} {
		for i, id := range ids {
			var got []int32
			for _, q := range allocateAveragely(qs(tc.queues), ids, id) {
				got = append(got, q.QueueID)
			}
			if !slices.Equal(got, tc.want[i]) {
				t.Errorf("%d queues, member %s: %v, want %v", tc.queues, id, got, tc.want[i])
			}
		}
	}
	// Every queue goes to exactly one member, whatever the counts.
	for n := 1; n <= 12; n++ {
		for m := 1; m <= 5; m++ {
			members := make([]string, m)
			for i := range members {
				members[i] = fmt.Sprintf("c%d", i)
			}
			seen := map[int32]int{}
			for _, id := range members {
				for _, q := range allocateAveragely(qs(n), members, id) {
					seen[q.QueueID]++
				}
			}
			for i := range n {
				if seen[int32(i)] != 1 {
					t.Fatalf("%d queues, %d members: queue %d assigned %d times", n, m, i, seen[int32(i)])
				}
			}
		}
	}
	if got := allocateAveragely(qs(4), ids, "stranger"); got != nil {
		t.Fatalf("a non-member got %v", got)
	}
}

// Two members share the topic's queues; when one closes the other takes
// them all over and nothing is lost.
func TestClusteringSharesQueuesAndSurvivorTakesOver(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	createTopic(t, p, topic)
	box := &inbox{}
	opts := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}
	c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", box.handler("c1"))
	c2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", box.handler("c2"))
	waitFor(t, "the queues split 2/2", func() bool {
		return len(ownQueues(c1, topic)) == 2 && len(ownQueues(c2, topic)) == 2
	})
	first := sendN(t, p, topic, "a", "", 40)
	box.waitBodies(t, first)
	n1, n2 := box.count("c1"), box.count("c2")
	for _, b := range first {
		if n1[b]+n2[b] != 1 {
			t.Fatalf("%s consumed %d times by c1 and %d by c2 with a stable assignment", b, n1[b], n2[b])
		}
	}
	if len(n1) < 10 || len(n2) < 10 {
		t.Fatalf("queues not shared: c1 got %d messages, c2 %d", len(n1), len(n2))
	}
	// c1 leaves while messages keep coming; c2 takes its queues over from
	// the offsets c1 committed, and every message is consumed.
	var second []string
	sent := make(chan error, 1)
	var nsent atomic.Int32
	go func() {
		ctx := ctxT(t, 30*time.Second)
		for i := range 60 {
			b := fmt.Sprintf("b-%d", i)
			second = append(second, b)
			if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(b)}); err != nil {
				sent <- err
				return
			}
			nsent.Add(1)
		}
		sent <- nil
	}()
	waitFor(t, "the second batch under way", func() bool { return nsent.Load() >= 10 })
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	atClose := len(box.count("c1"))
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the survivor owning all 4 queues", func() bool { return len(ownQueues(c2, topic)) == 4 })
	box.waitBodies(t, second)
	if n := len(box.count("c1")); n != atClose {
		t.Fatalf("c1 consumed %d messages after Close returned", n-atClose)
	}
}

func TestBroadcastingGivesEveryMemberEverything(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("prices"), uniq("bg")
	created := createTopic(t, p, topic)
	box := &inbox{}
	dir := t.TempDir()
	for _, name := range []string{"m1", "m2"} {
		o := ConsumerOptions{Group: group, Model: Broadcasting, FromWhere: ConsumeFromFirst,
			OffsetFile: filepath.Join(dir, name+".json")}
		startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", box.handler(name))
	}
	bodies := append(sendN(t, p, topic, "p", "", 20), created)
	waitFor(t, "both members consuming every message", func() bool {
		return len(box.count("m1")) == len(bodies) && len(box.count("m2")) == len(bodies)
	})
}

// A failing message comes back through the retry topic with
// ReconsumeTimes+1, under its own topic, and after MaxReconsumeTimes it is
// in the dead-letter queue; the queue's offset moves on meanwhile.
func TestFailedMessageIsRetriedThenDeadLettered(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("pay"), uniq("cg")
	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("poison"), Keys: []string{"k1"}})
	if err != nil {
		t.Fatal(err)
	}
	good := sendN(t, p, topic, "good", "", 5)
	box := &inbox{}
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		box.record("c", msgs)
		if string(msgs[0].Body) == "poison" {
			return ConsumeRetryLater, errors.New("cannot process")
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		MaxReconsumeTimes: 2, PersistInterval: 100 * time.Millisecond}, topic, "*", h)
	dlq := cl.waitStored(t, DLQTopic(group), 1)
	if string(dlq[0].Body) != "poison" || dlq[0].MsgID != res.MsgID || dlq[0].Keys[0] != "k1" {
		t.Fatalf("dead letter %+v", dlq[0])
	}
	box.waitBodies(t, good)
	var times []int32
	for _, d := range box.all() {
		if d.body == "poison" {
			if d.topic != topic {
				t.Fatalf("retried message delivered with topic %s, want %s", d.topic, topic)
			}
			times = append(times, d.reconsumeTimes)
		}
	}
	if !slices.Equal(times, []int32{0, 1, 2}) {
		t.Fatalf("poison message consumed with reconsumeTimes %v, want [0 1 2]", times)
	}
	waitFor(t, "the topic and the retry topic acknowledged", func() bool {
		return cl.caughtUp(topic, pc) && cl.caughtUp(retryTopic(group), pc)
	})
	for body, n := range box.count("") {
		if body != "poison" && n != 1 {
			t.Fatalf("%s consumed %d times", body, n)
		}
	}
}

// A panic and ConsumeRetryLater both mean "again later".
func TestPanicAndRetryLaterRedeliver(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("pay"), uniq("cg")
	sendN(t, p, topic, "panic", "", 1)
	sendN(t, p, topic, "later", "", 1)
	box := &inbox{}
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		box.record("c", msgs)
		if msgs[0].ReconsumeTimes > 0 {
			return ConsumeSuccess, nil
		}
		if strings.HasPrefix(string(msgs[0].Body), "panic") {
			panic("handler bug")
		}
		return ConsumeRetryLater, nil
	}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", h)
	waitFor(t, "both messages consumed twice", func() bool {
		n := box.count("")
		return n["panic-0"] == 2 && n["later-0"] == 2
	})
	for _, d := range box.all() {
		if d.reconsumeTimes > 1 {
			t.Fatalf("%s delivered with reconsumeTimes %d", d.body, d.reconsumeTimes)
		}
	}
}

func TestTagFilter(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("events"), uniq("cg")
	var want []string
	for round := range 3 {
		sendN(t, p, topic, fmt.Sprintf("c%d", round), "c", 2)
		want = append(want, sendN(t, p, topic, fmt.Sprintf("a%d", round), "a", 2)...)
		sendN(t, p, topic, fmt.Sprintf("none%d", round), "", 2)
		want = append(want, sendN(t, p, topic, fmt.Sprintf("b%d", round), "b", 2)...)
	}
	box := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst},
		topic, " a ||b ", box.handler("c"))
	box.waitBodies(t, want)
	waitFor(t, "every queue acknowledged", func() bool { return cl.caughtUp(topic, pc) })
	for _, d := range box.all() {
		if d.tags != "a" && d.tags != "b" {
			t.Fatalf("delivered %s with tag %q", d.body, d.tags)
		}
	}
	if got := len(box.all()); got != len(want) {
		t.Fatalf("%d deliveries, want %d", got, len(want))
	}
}

// consumerGoroutines returns the stacks of goroutines running consumer code.
func consumerGoroutines() []string {
	var out []string
	for _, s := range clientGoroutines() {
		if strings.Contains(s, "client.(*PushConsumer)") {
			out = append(out, s)
		}
	}
	return out
}

// A consumer's Close, and the Client's Close for the consumers still
// open, leave no goroutine of theirs behind.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("orders")
	bodies := sendN(t, p, topic, "m", "", 8)
	c, err := New(Options{NamesrvAddrs: []string{cl.ns.Addr()}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	box := &inbox{}
	first := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), FromWhere: ConsumeFromFirst}, topic, "*", box.handler("a"))
	box.waitBodies(t, bodies)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	noGoroutines(t, "the consumer's Close", consumerGoroutines)
	c.closersMu.Lock()
	hooks := len(c.closers)
	c.closersMu.Unlock()
	if hooks != 0 {
		t.Fatalf("a closed consumer left %d close hooks on its Client", hooks)
	}
	second := startConsumer(t, c, ConsumerOptions{Group: uniq("cg"), FromWhere: ConsumeFromFirst, Orderly: true}, topic, "*", box.handler("b"))
	waitFor(t, "the orderly consumer consuming", func() bool { return len(box.count("b")) == len(bodies) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("consumer Close after the Client's: %v", err)
	}
	noGoroutines(t, "the Client's Close", consumerGoroutines)
	if _, err := c.NewPushConsumer(ConsumerOptions{Group: uniq("cg")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewPushConsumer on a closed Client: %v", err)
	}
}

// TestCompressedBodyIsInflated stores a message the way the Java and Go
// producers send one over 4 KiB (zlib body, sysFlag FlagCompressed) and
// checks the handler gets the original body and a sysFlag without the
// bit; a body flagged compressed that does not inflate is delivered as
// stored, flag still set.
func TestCompressedBodyIsInflated(t *testing.T) {
	cl := startCluster(t, nil, nil)
	topic, group := uniq("zipped"), uniq("cg")
	original := bytes.Repeat([]byte("order-42 paid; "), 1000)
	var zipped bytes.Buffer
	zw := zlib.NewWriter(&zipped)
	zw.Write(original)
	zw.Close()
	// A plain send creates the topic (and its route); the two records
	// then go straight into its queue 0.
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	if _, err := p.Send(context.Background(), &Message{Topic: topic, Body: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{zipped.Bytes(), []byte("not zlib")} {
		if _, err := cl.b.Store().Append(context.Background(), &message.Message{Topic: topic, Body: body,
			SysFlag: message.FlagCompressed}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []*MessageExt
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*",
		func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, msgs...)
			return ConsumeSuccess, nil
		})
	waitFor(t, "the three messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	got = slices.DeleteFunc(got, func(m *MessageExt) bool { return string(m.Body) == "plain" })
	slices.SortFunc(got, func(a, b *MessageExt) int { return int(a.CommitLogOffset - b.CommitLogOffset) })
	if !bytes.Equal(got[0].Body, original) || got[0].SysFlag&message.FlagCompressed != 0 {
		t.Fatalf("compressed message delivered as %d bytes %q..., sysFlag %d", len(got[0].Body), got[0].Body[:min(20, len(got[0].Body))], got[0].SysFlag)
	}
	if string(got[1].Body) != "not zlib" || got[1].SysFlag&message.FlagCompressed == 0 {
		t.Fatalf("undecodable compressed body delivered as %q, sysFlag %d", got[1].Body, got[1].SysFlag)
	}
}

// TestBroadcastingRetriesFailuresLocally checks that a broadcasting
// member, which reads no retry topic, retries a failed message itself
// (after SuspendInterval, reconsume count rising) until it succeeds, and
// drops one that fails MaxReconsumeTimes retries, going on past it; none
// is sent back to the broker.
func TestBroadcastingRetriesFailuresLocally(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("prices"), uniq("bg")
	var mu sync.Mutex
	calls := map[string][]int32{} // body -> reconsume times of each call
	done := map[string]bool{}
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		body := string(msgs[0].Body)
		calls[body] = append(calls[body], msgs[0].ReconsumeTimes)
		if body == "flaky" && len(calls[body]) < 3 || body == "poison" {
			return ConsumeRetryLater, nil
		}
		done[body] = true
		return ConsumeSuccess, nil
	}
	o := ConsumerOptions{Group: group, Model: Broadcasting, FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 2,
		SuspendInterval: 10 * time.Millisecond, OffsetFile: filepath.Join(t.TempDir(), "offsets.json")}
	for _, body := range []string{"flaky", "poison", "after"} {
		if _, err := p.Send(context.Background(), &Message{Topic: topic, Body: []byte(body), ShardingKey: "one-queue"}); err != nil {
			t.Fatal(err)
		}
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", h)
	waitFor(t, "flaky and after consumed, poison given up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done["flaky"] && done["after"] && len(calls["poison"]) == 3
	})
	waitFor(t, "every queue acknowledged", func() bool { return cl.caughtUp(topic, pc) })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(calls["flaky"], []int32{0, 1, 2}) || !slices.Equal(calls["poison"], []int32{0, 1, 2}) {
		t.Fatalf("reconsume times of the calls: flaky %v, poison %v; want 0, 1, 2 each", calls["flaky"], calls["poison"])
	}
	if _, hi := cl.b.Store().QueueBounds("%RETRY%"+group, 0); hi != 0 {
		t.Fatalf("%d messages sent back to the retry topic, which no broadcasting member reads", hi)
	}
}

// TestBroadcastingOrderlyDeadLettersPerMember: an orderly broadcasting
// member takes no lock (every member has every queue), keeps a key's order,
// and, as RocketMQ's clients do, sends a message failing MaxReconsumeTimes
// retries to %DLQ%<group> rather than dropping it: each member its own
// copy, none through the retry topic.
func TestBroadcastingOrderlyDeadLettersPerMember(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("prices"), uniq("bog")
	var mu sync.Mutex
	calls := map[string][]string{} // member -> body:reconsumeTimes, in call order
	mk := func(name string) MessageHandler {
		return func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				calls[name] = append(calls[name], fmt.Sprintf("%s:%d", m.Body, m.ReconsumeTimes))
				if string(m.Body) == "poison" {
					return ConsumeRetryLater, nil
				}
			}
			return ConsumeSuccess, nil
		}
	}
	for _, body := range []string{"poison", "after"} {
		if _, err := p.Send(context.Background(), &Message{Topic: topic, Body: []byte(body), ShardingKey: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	var pcs []*PushConsumer
	for _, name := range []string{"a", "b"} {
		o := ConsumerOptions{Group: group, Model: Broadcasting, Orderly: true, FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 2,
			SuspendInterval: 10 * time.Millisecond, OffsetFile: filepath.Join(dir, name+".json")}
		pcs = append(pcs, startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", mk(name)))
	}
	dlq := cl.waitStored(t, DLQTopic(group), 2)
	waitFor(t, "both members past the poison message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(calls["a"], "after:0") && slices.Contains(calls["b"], "after:0")
	})
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"a", "b"} {
		if want := []string{"poison:0", "poison:1", "poison:2", "after:0"}; !slices.Equal(calls[name], want) {
			t.Errorf("member %s's calls %v, want %v", name, calls[name], want)
		}
	}
	for _, d := range dlq {
		if string(d.Body) != "poison" {
			t.Errorf("dead letter %q, want poison", d.Body)
		}
	}
	if _, hi := cl.b.Store().QueueBounds("%RETRY%"+group, 0); hi != 0 {
		t.Fatalf("%d messages in the retry topic, which no broadcasting member reads", hi)
	}
	conn := remotetest.Dial(t, cl.b.Addr())
	for _, pc := range pcs {
		for _, mq := range ownQueues(pc, topic) {
			if !lockGranted(t, conn, group, "probe", mq) {
				t.Fatalf("%v is locked: a broadcasting member locked its queue", mq)
			}
		}
	}
}

// TestHandlerCancelledByRebalanceIsNotSentBack has one member hold a
// message of every queue in its handler; a second member joins and takes
// half the queues. The first member's calls on the queues it lost are
// cancelled and fail; their messages are consumed by the new owner and
// not sent back to the retry topic as well (a duplicate that would also
// spend one of their retries).
func TestHandlerCancelledByRebalanceIsNotSentBack(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	createTopic(t, p, topic)
	opts := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	var holding, cancelled atomic.Int32
	holder := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		if !strings.HasPrefix(string(msgs[0].Body), "held-") {
			return ConsumeSuccess, nil
		}
		holding.Add(1)
		select {
		case <-ctx.Done(): // the queue went to the other member
			cancelled.Add(1)
			return ConsumeRetryLater, ctx.Err()
		case <-release:
			return ConsumeSuccess, nil
		}
	}
	c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", holder)
	t.Cleanup(releaseAll) // before c1's Close, which waits for its calls
	waitFor(t, "c1 owning the 4 queues", func() bool { return len(ownQueues(c1, topic)) == 4 })
	for q := range 4 {
		if _, err := cl.b.Store().Append(context.Background(), &message.Message{Topic: topic, QueueID: int32(q),
			Body: []byte(fmt.Sprintf("held-%d", q))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "c1 holding all 4 messages", func() bool { return holding.Load() == 4 })

	box := &inbox{}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), opts, topic, "*", box.handler("c2"))
	heldByC2 := func() int {
		n := 0
		for body := range box.count("c2") {
			if strings.HasPrefix(body, "held-") {
				n++
			}
		}
		return n
	}
	waitFor(t, "c2 consuming the messages of the 2 queues it took", func() bool {
		return cancelled.Load() == 2 && heldByC2() == 2
	})
	releaseAll()
	if err := c1.Close(); err != nil { // waits for its calls and what follows them
		t.Fatal(err)
	}
	waitFor(t, "dispatch", func() bool { return cl.b.Store().DispatchedOffset() == cl.b.Store().MaxPhysicalOffset() })
	// A send-back waits in the schedule topic for its delay level before
	// it reaches the retry topic: neither may hold anything.
	for _, q := range cl.b.Store().Queues() {
		if (q.Topic == "%RETRY%"+group || q.Topic == delay.ScheduleTopic) && q.MaxOffset > 0 {
			t.Fatalf("%s/%d holds %d messages: sent back although their queue's new owner consumed them", q.Topic, q.QueueID, q.MaxOffset)
		}
	}
}

// A consumer re-driving a dead-letter queue (subscribed to %DLQ%<group>)
// that fails a message gets it again through its own retry topic, in its
// DLQ handler, although the retry's RETRY_TOPIC names the message's first
// topic, which it does not subscribe.
func TestDLQRedriveRetryReachesItsHandler(t *testing.T) {
	cl := startCluster(t, nil, nil)
	_, group, redrive := deadLetterOne(t, cl)

	box := &inbox{}
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		box.record("r", msgs)
		if len(box.all()) == 1 {
			return ConsumeRetryLater, nil // a passing failure
		}
		return ConsumeSuccess, nil
	}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: redrive, FromWhere: ConsumeFromFirst},
		DLQTopic(group), "*", h)
	waitFor(t, "the re-driven message handled again", func() bool {
		if n := len(cl.stored(t, DLQTopic(redrive))); n > 0 {
			t.Fatalf("the re-drive group's retry reached its own DLQ after %d handler calls: %+v", len(box.all()), box.all())
		}
		return len(box.all()) >= 2
	})
	calls := box.all()
	if calls[1].topic != DLQTopic(group) || calls[1].reconsumeTimes != calls[0].reconsumeTimes+1 {
		t.Fatalf("retry handed over as %+v after %+v", calls[1], calls[0])
	}
}

// deadLetterOne sends one message to a new topic, whose group fails it
// until it is in the group's dead-letter queue (MaxReconsumeTimes 1), and
// returns the topic, the group and a new group's name to re-drive it with.
func deadLetterOne(t *testing.T, cl *cluster) (topic, group, redrive string) {
	t.Helper()
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group, redrive = uniq("pay"), uniq("cg"), uniq("rd")
	sendN(t, p, topic, "poison", "", 1)
	fail := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) { return ConsumeRetryLater, nil }
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		MaxReconsumeTimes: 1}, topic, "*", fail)
	cl.waitStored(t, DLQTopic(group), 1)
	return topic, group, redrive
}
