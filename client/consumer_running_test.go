package client

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/admin"
)

// A halfback consumer answers an administration tool's
// GET_CONSUMER_RUNNING_INFO, forwarded by the broker, with its settings,
// subscriptions and the queues it holds (RocketMQ's ConsumerRunningInfo);
// a group it does not have is refused.
func TestConsumerRunningInfo(t *testing.T) {
	r := consumeThenReport(t, 4, ConsumerOptions{MaxReconsumeTimes: 3})
	topic, c, ac, info := r.topic, r.c, r.ac, r.info
	for _, want := range []string{`"subscriptionSet":[`, `"topic":"` + topic + `"`, `"maxReconsumeTimes":"3"`,
		`"messageModel":"CLUSTERING"`, `"mqTable":{{"topic":"`, `"commitOffset":`} {
		if !strings.Contains(info, want) {
			t.Fatalf("running info lacks %s:\n%s", want, info)
		}
	}
	if n := strings.Count(info, `{"topic":"`+topic+`","brokerName"`); n != 4 {
		t.Fatalf("running info lists %d queues of %s, want 4:\n%s", n, topic, info)
	}
	if _, err := ac.ConsumerRunningInfo(ctxT(t, 10*time.Second), uniq("other"), c.ClientID()); err == nil {
		t.Fatal("running info of a group the client does not have succeeded")
	}
}

// Each queue's report says when it was last pulled and last consumed
// (ProcessQueueInfo's lastPullTimestamp and lastConsumeTimestamp): mqadmin
// consumerStatus (ConsumerRunningInfo.analyzeProcessQueue) reports a queue
// of a concurrent push consumer whose lastConsumeTimestamp is over a minute
// old, with messages cached, as "can't consume for a while, maybe blocked",
// so one left at 0 flags every queue that has a message in flight.
func TestConsumerRunningInfoSaysWhenQueuesWerePulledAndConsumed(t *testing.T) {
	before := time.Now().UnixMilli()
	r := consumeThenReport(t, 8, ConsumerOptions{})
	topic, info := r.topic, r.info
	after := time.Now().UnixMilli()
	// commitOffset is the offset the consumer would commit now, as the
	// official clients report their offset store's in-memory one: every
	// message consumed, the queues' offsets add up to the 8 sent (they
	// are not committed yet: the persist interval is 5 s).
	sum := 0
	for _, s := range regexp.MustCompile(`"topic":"`+topic+`"[^}]*\}:\{"commitOffset":(-?\d+)`).FindAllStringSubmatch(info, -1) {
		n, _ := strconv.Atoi(s[1])
		sum += n
	}
	if sum != 8 {
		t.Fatalf("the queues' commitOffsets add up to %d, want 8 (every message consumed):\n%s", sum, info)
	}
	if strings.Contains(info, `"locked":true`) {
		t.Fatalf("a concurrent consumer reports a queue locked (RocketMQ's lock only orderly ones):\n%s", info)
	}
	for _, field := range []string{"lastPullTimestamp", "lastConsumeTimestamp"} {
		m := regexp.MustCompile(`"`+field+`":(-?\d+)`).FindAllStringSubmatch(info, -1)
		if len(m) < 4 {
			t.Fatalf("running info has %s for %d queues, want every queue's:\n%s", field, len(m), info)
		}
		for _, s := range m {
			if v, _ := strconv.ParseInt(s[1], 10, 64); v < before || v > after {
				t.Fatalf("%s %d, want between %d and %d (this test's run):\n%s", field, v, before, after, info)
			}
		}
	}
}

// Running info is read while the consumer consumes, rebalances (members
// join and leave) and commits, under -race.
func TestConsumerRunningInfoWhileConsumingAndRebalancing(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	sendN(t, p, topic, "a", "", 4)
	c := newClient(t, cl.ns.Addr(), nil)
	box := &inbox{}
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, PersistInterval: 50 * time.Millisecond},
		topic, "*", box.handler("c"))
	waitFor(t, "the consumer to hold its queues", func() bool { return len(ownQueues(pc, topic)) == 4 })
	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3 {
			c2 := newClient(t, cl.ns.Addr(), nil)
			pc2 := startConsumer(t, c2, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}, topic, "*", box.handler("c2"))
			sendN(t, p, topic, "b"+strconv.Itoa(i), "", 8)
			_ = pc2.Close()
		}
	}()
	for n := 0; ; n++ {
		if _, err := ac.ConsumerRunningInfo(ctxT(t, 10*time.Second), group, c.ClientID()); err != nil {
			t.Fatalf("running info %d: %v", n, err)
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

// runningReport is what consumeThenReport gives a test.
type runningReport struct {
	topic, group string
	c            *Client
	ac           *admin.Client
	info         string
}

// consumeThenReport sends n messages to a new topic, consumes them all
// with a consumer of a new group (o with Group and FromWhere set), waits
// until it holds the topic's 4 queues, and asks it, through the broker,
// for its running info.
func consumeThenReport(t *testing.T, n int, o ConsumerOptions) runningReport {
	t.Helper()
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	r := runningReport{topic: uniq("orders"), group: uniq("cg"), c: newClient(t, cl.ns.Addr(), nil)}
	bodies := sendN(t, p, r.topic, "m", "", n)
	box := &inbox{}
	o.Group, o.FromWhere = r.group, ConsumeFromFirst
	pc := startConsumer(t, r.c, o, r.topic, "*", box.handler("c"))
	box.waitBodies(t, bodies)
	waitFor(t, "the consumer to hold its queues", func() bool { return len(ownQueues(pc, r.topic)) == 4 })
	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	r.ac = ac
	if r.info, err = ac.ConsumerRunningInfo(ctxT(t, 10*time.Second), r.group, r.c.ClientID()); err != nil {
		t.Fatal(err)
	}
	return r
}

// A halfback consumer answers GET_CONSUMER_STATUS_FROM_CLIENT, which the
// broker sends each online consumer of a group for an administration
// tool's INVOKE_BROKER_TO_GET_CONSUMER_STATUS (mqadmin getConsumerStatus):
// the offset it has consumed each queue of the topic up to, by client id.
func TestConsumerStatus(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	bodies := sendN(t, p, topic, "m", "", 12)
	box := &inbox{}
	c1, c2 := newClient(t, cl.ns.Addr(), nil), newClient(t, cl.ns.Addr(), nil)
	o := ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst}
	pc1 := startConsumer(t, c1, o, topic, "*", box.handler("c1"))
	pc2 := startConsumer(t, c2, o, topic, "*", box.handler("c2"))
	box.waitBodies(t, bodies)
	waitFor(t, "the queues shared and every message acknowledged", func() bool {
		return len(ownQueues(pc1, topic)) == 2 && len(ownQueues(pc2, topic)) == 2 && cl.caughtUp(topic, pc1, pc2)
	})
	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	rows, err := ac.ConsumerStatus(ctxT(t, 10*time.Second), group, topic, "")
	if err != nil {
		t.Fatal(err)
	}
	byClient, sum := map[string]int{}, int64(0)
	for _, r := range rows {
		if r.Topic != topic || r.BrokerName != cl.name {
			t.Fatalf("row %+v, want queues of %s on %s", r, topic, cl.name)
		}
		byClient[r.ClientID]++
		sum += r.Offset
	}
	if len(rows) != 4 || byClient[c1.ClientID()] != 2 || byClient[c2.ClientID()] != 2 || sum != 12 {
		t.Fatalf("consumer status %+v, want two queues from each client, offsets adding up to the 12 consumed", rows)
	}
	only, err := ac.ConsumerStatus(ctxT(t, 10*time.Second), group, topic, c2.ClientID())
	if err != nil || len(only) != 2 || only[0].ClientID != c2.ClientID() {
		t.Fatalf("consumer status of %s alone: %+v, %v", c2.ClientID(), only, err)
	}
	if other, err := ac.ConsumerStatus(ctxT(t, 10*time.Second), group, uniq("other"), ""); err != nil || len(other) != 0 {
		t.Fatalf("consumer status of a topic the group does not consume: %+v, %v, want no rows", other, err)
	}
	if _, err := ac.ConsumerStatus(ctxT(t, 10*time.Second), uniq("nobody"), topic, ""); err == nil ||
		!strings.Contains(err.Error(), "No Any Consumer online") {
		t.Fatalf("consumer status of a group with no consumer online: %v", err)
	}
}
