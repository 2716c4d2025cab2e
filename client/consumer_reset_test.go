package client

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// A group's offsets reset while its consumer is online (`halfback group
// reset`, mqadmin resetOffsetByTime) move the consumer too: reset to the
// topic's start it is given every message again, and its commits follow.
// Reset to the end while the group is offline, its next consumer skips
// what was stored before.
func TestResetOffsetsMovesAnOnlineConsumer(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "periodic commits", true: "SyncCommit"}[sync], func(t *testing.T) {
			cl := startCluster(t, nil, nil)
			p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
			topic, group := uniq("replay"), uniq("cg")
			bodies := sendN(t, p, topic, "m", "", 6)
			in := &inbox{}
			pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
				SyncCommit: sync, PersistInterval: 200 * time.Millisecond}, topic, "*", in.handler("c"))
			in.waitBodies(t, bodies)
			waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })

			ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer ac.Close()
			if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(0)); err != nil {
				t.Fatal(err)
			}
			in.waitTimes(t, bodies, 2) // every message delivered again
			waitFor(t, "the group caught up again", func() bool { return cl.caughtUp(topic, pc) })

			// To the end, while the group is offline: its next consumer
			// skips what was stored before the reset.
			if err := pc.Close(); err != nil {
				t.Fatal(err)
			}
			skipped := sendN(t, p, topic, "skipped", "", 1)
			cl.waitStored(t, topic, len(bodies)+1) // in its queue: the end is past it
			if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(-1)); err != nil {
				t.Fatal(err)
			}
			pc = startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
				SyncCommit: sync, PersistInterval: 200 * time.Millisecond}, topic, "*", in.handler("c2"))
			after := sendN(t, p, topic, "after", "", 1)
			in.waitBodies(t, after)
			waitFor(t, "the group caught up after the reset to the end", func() bool { return cl.caughtUp(topic, pc) })
			if n := in.count("c2")[skipped[0]]; n != 0 {
				t.Fatalf("a message stored before the reset to the end was delivered %d times", n)
			}
		})
	}
}

// stuckOrderly is an orderly consumer of a one-key topic of n messages
// whose handler is stuck on k-0 while the rest wait in its buffer.
type stuckOrderly struct {
	cl           *cluster
	topic, group string
	pc           *PushConsumer
	q            *processQueue // the key's queue, pulled to its end
	ac           *admin.Client
	unblock      func() // lets k-0's call return
	mu           sync.Mutex
	got          []string // bodies handed to the handler, in order
}

func startStuckOrderly(t *testing.T, n int64) *stuckOrderly {
	s := &stuckOrderly{cl: startCluster(t, nil, nil), topic: uniq("ordered"), group: uniq("og")}
	p := newProducer(t, newClient(t, s.cl.ns.Addr(), nil), ProducerOptions{})
	sendKeyed(t, p, s.topic, []string{"k"}, 0, int(n))
	qid := s.cl.waitStored(t, s.topic, int(n))[0].QueueID
	release := make(chan struct{})
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		for _, m := range msgs {
			if string(m.Body) == "k-0" {
				<-release // the handler is busy: the rest waits in the buffer
			}
			s.mu.Lock()
			s.got = append(s.got, string(m.Body))
			s.mu.Unlock()
		}
		return ConsumeSuccess, nil
	}
	s.pc = startConsumer(t, newClient(t, s.cl.ns.Addr(), nil), ConsumerOptions{Group: s.group, Orderly: true,
		FromWhere: ConsumeFromFirst, ConsumeBatchSize: 1}, s.topic, "*", h)
	s.unblock = sync.OnceFunc(func() { close(release) })
	t.Cleanup(s.unblock) // before the consumer's Close, which waits for the handler
	waitFor(t, "every message pulled into the buffer", func() bool {
		for _, pq := range s.pc.processQueues() {
			if pq.mq.Topic == s.topic && pq.mq.QueueID == qid && pq.nextOffset() == n {
				s.q = pq
				return true
			}
		}
		return false
	})
	ac, err := admin.Dial(ctxT(t, 5*time.Second), s.cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	s.ac = ac
	return s
}

// handed returns what the handler was given, once the queue caught up.
func (s *stuckOrderly) handed(t *testing.T) []string {
	t.Helper()
	s.unblock()
	waitFor(t, "every message consumed", func() bool { return s.cl.caughtUp(s.topic, s.pc) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// An orderly consumer keeps what it pulled ahead of its handler in a
// buffer. A reset reaching it moves its pulls; the buffered messages,
// pulled from before the reset and not yet handed over, must not be
// handed over after it: reset forward they were to be skipped, and the
// ones past the reset offset come again from the new position, so the
// queue's order would break (k-39, then k-35 again).
func TestResetOffsetsOrderlyDropsItsBuffer(t *testing.T) {
	const n = 40
	s := startStuckOrderly(t, n)
	q := s.q
	q.mu.Lock()
	before := q.inflight[35]
	q.mu.Unlock()
	if _, err := s.ac.ResetOffsets(ctxT(t, 5*time.Second), s.group, s.topic, admin.ResetQueueTo(q.mq.QueueID, 35)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue pulled again from the reset offset", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.next == n && q.inflight[35] != nil && q.inflight[35] != before
	})
	want := []string{"k-0", "k-35", "k-36", "k-37", "k-38", "k-39"}
	if got := s.handed(t); !slices.Equal(got, want) {
		t.Fatalf("handed over after a reset to 35 (k-0 in hand): %v, want %v", got, want)
	}
}

// Reset to the end while an orderly consumer has pulled the whole queue
// but is stuck on its first message: the reset offset is where its pulls
// already are, yet the backlog it buffered is what the reset skips.
func TestResetOffsetsToTheEndSkipsAnOrderlyBacklog(t *testing.T) {
	s := startStuckOrderly(t, 40)
	q := s.q
	if _, err := s.ac.ResetOffsets(ctxT(t, 5*time.Second), s.group, s.topic, admin.ResetToTime(-1)); err != nil {
		t.Fatal(err)
	}
	// Told, the consumer keeps only the message in hand.
	waitFor(t, "the buffered backlog dropped", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.buffer) == 0 && len(q.inflight) == 1
	})
	if got, want := s.handed(t), []string{"k-0"}; !slices.Equal(got, want) {
		t.Fatalf("handed over after a reset to the end (k-0 in hand): %v, want %v", got, want)
	}
}

// A broker that resets through its clients (RocketMQ 4's way, halfback's
// broker.useServerSideResetOffset false) commits nothing: it sends the
// new offsets to the group's online consumers (RESET_CONSUMER_CLIENT_OFFSET),
// and each moves the queues it owns and commits them there. With no
// consumer online the reset is refused.
func TestResetPushedByTheBrokerMovesEveryMember(t *testing.T) {
	for _, orderly := range []bool{false, true} {
		t.Run(map[bool]string{false: "concurrent", true: "orderly"}[orderly], func(t *testing.T) {
			cl, _, topic, group, bodies := startPushResetCluster(t)
			in := &inbox{}
			o := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, Orderly: orderly,
				PersistInterval: 100 * time.Millisecond, SuspendInterval: 50 * time.Millisecond}
			c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", in.handler("c1"))
			c2 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", in.handler("c2"))
			waitFor(t, "the queues split 2/2", func() bool {
				return len(ownQueues(c1, topic)) == 2 && len(ownQueues(c2, topic)) == 2
			})
			in.waitBodies(t, bodies)
			waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, c1, c2) })

			ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer ac.Close()
			waitFor(t, "the group's offsets committed at the end", func() bool {
				qs, err := ac.GroupOffsets(ctxT(t, 5*time.Second), group)
				qs = slices.DeleteFunc(qs, func(q admin.QueueProgress) bool { return q.Topic != topic })
				return err == nil && len(qs) == 4 && slices.IndexFunc(qs, func(q admin.QueueProgress) bool { return q.Lag > 0 }) < 0
			})
			offs, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(0))
			if err != nil {
				t.Fatal(err)
			}
			if len(offs) != 4 || slices.IndexFunc(offs, func(q admin.QueueOffset) bool { return q.Offset != 0 }) >= 0 {
				t.Fatalf("reset answered %+v, want 4 queues at 0", offs)
			}
			in.waitTimes(t, bodies, 2) // every message delivered again
			waitFor(t, "the group caught up again", func() bool { return cl.caughtUp(topic, c1, c2) })

			if err := c1.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c2.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(0))
			if err == nil || !strings.Contains(err.Error(), "not online") {
				t.Fatalf("reset of a group with no consumer online: %v, want CONSUMER_NOT_ONLINE", err)
			}
		})
	}
}

func TestDecodeResetOffsets(t *testing.T) {
	got, err := decodeResetOffsets([]byte(`{"offsetTable":{{"brokerName":"b","queueId":1,"topic":"T"}:5,{"brokerName":"b","queueId":0,"topic":"T"}:0}}`))
	if err != nil || len(got) != 2 || got[MessageQueue{Topic: "T", BrokerName: "b", QueueID: 1}] != 5 {
		t.Fatalf("decoded %v, %v", got, err)
	}
	for _, bad := range []string{`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:-1}}`, `{"offsetTable":{{"brokerName":"b"}:"x"}}`, `garbage`} {
		if got, err := decodeResetOffsets([]byte(bad)); err == nil && len(got) > 0 {
			t.Errorf("%s: decoded %v", bad, got)
		}
	}
}

// A second reset the broker pushes while the first still waits on a
// handler call of a queue (the queue dropped, not yet committed) moves
// that queue too: the group ends at the later reset, as the operator
// asked last (RocketMQ's MQClientInstance.resetOffset runs one reset after
// the other). Here the first reset goes to the end and the second back to
// the start: every message is delivered again, those of the busy queue
// included.
func TestResetPushedWhileAQueueDrainsTakesTheLaterReset(t *testing.T) {
	cl, p, topic, group, bodies := startPushResetCluster(t)

	in := &inbox{}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h := func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		in.record("c1", msgs)
		for _, m := range msgs {
			if string(m.Body) == "block" {
				once.Do(func() { close(started) })
				<-release
			}
		}
		return ConsumeSuccess, nil
	}
	o := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		PersistInterval: 100 * time.Millisecond, SuspendInterval: 50 * time.Millisecond}
	c1 := startConsumer(t, newClient(t, cl.ns.Addr(), nil), o, topic, "*", h)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	in.waitBodies(t, bodies)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, c1) })

	bodies = append(bodies, "block")
	if _, err := p.Send(ctxT(t, 5*time.Second), &Message{Topic: topic, Body: []byte("block")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("the blocking message was not delivered")
	}
	old := c1.processQueues()

	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(-1)); err != nil {
		t.Fatal(err)
	}
	// The three idle queues are taken up again at once; the busy one waits
	// for its handler call.
	waitFor(t, "the idle queues taken up again after the first reset", func() bool {
		live := c1.processQueues()
		for _, q := range live {
			if q.mq.Topic == topic && slices.Contains(old, q) {
				return false
			}
		}
		return len(ownQueues(c1, topic)) == 3
	})
	before, mid := in.count(""), c1.processQueues()
	if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(0)); err != nil {
		t.Fatal(err)
	}
	// The push is oneway: it has reached the consumer once the idle queues
	// were taken up again; the busy one still waits for its handler.
	waitFor(t, "the idle queues taken up again after the second reset", func() bool {
		for _, q := range c1.processQueues() {
			if q.mq.Topic == topic && slices.Contains(mid, q) {
				return false
			}
		}
		return len(ownQueues(c1, topic)) == 3
	})
	unblock()
	var missing string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s (and maybe others) not delivered again; deliveries: %v", missing, in.count(""))
		}
	})
	waitFor(t, "every message delivered again after the second reset", func() bool {
		got := in.count("")
		for _, b := range bodies {
			if got[b] <= before[b] {
				missing = b
				return false
			}
		}
		return true
	})
}

// A reset pushed while the consumer closes moves nothing: Close has
// committed (or is committing) where its queues are, and a drop started
// after its wait would commit behind its back.
func TestResetPushedAfterCloseMovesNothing(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("closing"), uniq("cg")
	bodies := sendN(t, p, topic, "m", "", 4)
	in := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", in.handler("c"))
	in.waitBodies(t, bodies)
	table := map[MessageQueue]int64{}
	for _, mq := range ownQueues(pc, topic) {
		table[mq] = 0
	}
	if len(table) == 0 {
		t.Fatal("the consumer owns no queue")
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if n := pc.resetOffsets(topic, table); n != 0 {
		t.Fatalf("a closed consumer moved %d queues", n)
	}
}

// startPushResetCluster starts a broker that resets offsets through its
// clients (broker.useServerSideResetOffset false) and stores 12 messages
// on a new topic; it returns a producer, the topic's name, a new group's
// and the messages' bodies.
func startPushResetCluster(t *testing.T) (cl *cluster, p *Producer, topic, group string, bodies []string) {
	t.Helper()
	cl = startCluster(t, nil, func(o *broker.Options) { o.ClientSideResetOffset = true })
	p = newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group = uniq("replay"), uniq("cg")
	bodies = sendN(t, p, topic, "m", "", 12)
	cl.waitStored(t, topic, len(bodies))
	return cl, p, topic, group, bodies
}

// A pull a consumer sent just before a reset reached it carries the
// consumer's offset from before the reset (its commitOffset), and may
// reach the broker after the reset's commit: a halfback or RocketMQ
// broker commits that offset as it takes the pull, and a consumer that
// then read its start from the broker would go on from where it was, the
// reset lost for that queue (RocketMQ's client sleeps 10 s between
// dropping the queues and committing the reset for this). The proxy holds
// that pull until the reset's commit went through, the queue's later
// pulls and offset query until the pull's commit landed.
func TestResetNotUndoneByAPullInFlight(t *testing.T) {
	topic, group := uniq("replay"), uniq("cg")
	qid := atomic.Int32{}
	qid.Store(-1)
	var armed, resetCommitted atomic.Bool
	heldPull := make(chan *remoting.Command, 1)
	isOurs := func(req *remoting.Command) bool {
		return armed.Load() && req.Ext("topic") == topic && req.Ext("queueId") == strconv.Itoa(int(qid.Load()))
	}
	listen := testutil.FreeAddr(t)
	px := startHoldProxy(t, listen, func(req *remoting.Command) bool {
		switch {
		case !isOurs(req):
			return false
		case req.Code == remoting.ReqUpdateConsumerOffset && req.Ext("commitOffset") == "0":
			resetCommitted.Store(true)
		case req.Code == remoting.ReqPullMessage && req.Ext("queueOffset") != "6": // not one that gets m-6
			select {
			case heldPull <- req: // the first
			default:
			}
			return true
		case req.Code == remoting.ReqQueryConsumerOffset:
			return true
		}
		return false
	})
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.ListenAddr, o.AdvertiseAddr, o.ClientSideResetOffset = listen, px.addr, true
	})
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	var bodies []string
	send := func(i int) {
		body := fmt.Sprintf("m-%d", i)
		r, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte(body), ShardingKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		qid.CompareAndSwap(-1, r.QueueID)
		if r.QueueID != qid.Load() {
			t.Fatalf("%s stored in queue %d, not %d", body, r.QueueID, qid.Load())
		}
		bodies = append(bodies, body)
	}
	for i := range 6 {
		send(i)
	}
	in := &inbox{}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
		PersistInterval: time.Hour}, topic, "*", in.handler("c"))
	in.waitBodies(t, bodies)
	waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })

	armed.Store(true)
	send(6) // wakes the queue's held pull; the next one carries the offset
	var stale *remoting.Command
	select {
	case stale = <-heldPull:
	case <-ctxT(t, 15*time.Second).Done():
		t.Fatal("no pull of the queue after its new message")
	}
	in.waitBodies(t, bodies)
	if f, _ := strconv.Atoi(stale.Ext("sysFlag")); f&pullFlagCommitOffset == 0 {
		t.Fatalf("the pull carries no offset to commit: %v", stale.ExtFields)
	}

	ac, err := admin.Dial(ctxT(t, 5*time.Second), listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	offset := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		off, _, err := ac.QueryOffset(ctx, group, topic, qid.Load())
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetToTime(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reset committed by the consumer", func() bool { return resetCommitted.Load() && offset() == 0 })
	px.releaseWhere(func(req *remoting.Command) bool { return req == stale }) // arrives now
	waitFor(t, "the stale pull's commit taken by the broker", func() bool { return offset() > 0 })
	armed.Store(false)
	px.releaseAll()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deliveries %v; the queue's offset on the broker %d", in.count(""), offset())
		}
	})
	in.waitTimes(t, bodies, 2)
}
