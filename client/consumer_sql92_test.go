package client

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
)

// SubscribeSQL92 gets exactly the messages whose properties its
// expression matches, filtered by the broker (broker.enablePropertyFilter);
// an expression that does not compile is refused at Subscribe.
func TestSubscribeSQL92(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) { o.EnablePropertyFilter = true })
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("orders")
	var want []string
	for i := range 12 {
		body := "order-" + strconv.Itoa(i)
		m := &Message{Topic: topic, Body: []byte(body), Tags: []string{"OrderPaid", "OrderCreated"}[i%2],
			Properties: map[string]string{"amount": strconv.Itoa(i * 25)}}
		if _, err := p.Send(ctxT(t, 10*time.Second), m); err != nil {
			t.Fatal(err)
		}
		if i*25 > 100 && i%2 == 0 {
			want = append(want, body)
		}
	}
	cl.waitStored(t, topic, 12)

	c := newClient(t, cl.ns.Addr(), nil)
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: uniq("big-paid"), FromWhere: ConsumeFromFirst})
	if err != nil {
		t.Fatal(err)
	}
	box := &inbox{}
	for _, bad := range []string{"amount >", "amount > 100 AND", "TAGS IN ('OrderPaid'"} {
		if err := pc.SubscribeSQL92(topic, bad, box.handler("c")); !errors.Is(err, ErrInvalidSubscription) {
			t.Fatalf("SubscribeSQL92(%q) = %v, want ErrInvalidSubscription", bad, err)
		}
	}
	if err := pc.SubscribeSQL92(topic, "amount > 100 AND TAGS IN ('OrderPaid')", box.handler("c")); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	box.waitBodies(t, want)
	waitFor(t, "the consumer to pass every message", func() bool { return cl.caughtUp(topic, pc) })
	got := box.count("c")
	for body := range got {
		if !slices.Contains(want, body) {
			t.Fatalf("got %s, which the expression does not match; got %v, want %v", body, got, want)
		}
	}
}

// A broker without property filtering refuses a SQL92 subscription when
// the consumer starts (CHECK_CLIENT_CONFIG, as a Java push consumer asks),
// not only pull by pull afterwards.
func TestSubscribeSQL92RefusedAtStart(t *testing.T) {
	cl := startCluster(t, nil, nil) // enablePropertyFilter off, RocketMQ's default
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("orders")
	createTopic(t, p, topic)
	pc, err := newClient(t, cl.ns.Addr(), nil).NewPushConsumer(ConsumerOptions{Group: uniq("sql")})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SubscribeSQL92(topic, "amount > 100", (&inbox{}).handler("c")); err != nil {
		t.Fatal(err)
	}
	err = pc.Start(ctxT(t, 20*time.Second))
	if !errors.Is(err, ErrInvalidSubscription) || !strings.Contains(err.Error(), "does not support consumer to filter message by SQL92") {
		t.Fatalf("Start against a broker without property filtering: %v, want ErrInvalidSubscription with the broker's answer", err)
	}
}
