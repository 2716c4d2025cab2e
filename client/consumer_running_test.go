package client

import (
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
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	bodies := sendN(t, p, topic, "m", "", 4)
	c := newClient(t, cl.ns.Addr(), nil)
	box := &inbox{}
	pc := startConsumer(t, c, ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst, MaxReconsumeTimes: 3}, topic, "*", box.handler("c"))
	box.waitBodies(t, bodies)
	waitFor(t, "the consumer to hold its queues", func() bool { return len(ownQueues(pc, topic)) == 4 })

	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	info, err := ac.ConsumerRunningInfo(ctxT(t, 10*time.Second), group, c.ClientID())
	if err != nil {
		t.Fatal(err)
	}
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
