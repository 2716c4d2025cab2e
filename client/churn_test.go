package client

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// A long-lived Client whose producers and consumers come and go forgets
// the routes of the topics none of them uses any more: it kept every
// route it had ever looked up, and asked the name servers for each of
// them again every RouteRefreshInterval, for as long as it ran. A
// started consumer's routes are kept however seldom it rebalances, and
// a forgotten topic is looked up again by the next send to it.
func TestRoutesOfTopicsNoLongerUsedAreForgotten(t *testing.T) {
	cl := startCluster(t, nil, nil)
	const topics = 40
	names := make([]string, topics)
	creator := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	for i := range names {
		names[i] = uniq("churn")
		createTopic(t, creator, names[i])
	}
	waitRouted(t, cl.ns.Addr(), names[topics-1], 4) // one registration carries every topic

	c := newClient(t, cl.ns.Addr(), func(o *Options) { o.RouteRefreshInterval = 50 * time.Millisecond })
	ctx := ctxT(t, 20*time.Second)
	for _, topic := range names {
		p := newProducer(t, c, ProducerOptions{})
		if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range names[:4] {
		pc := startConsumer(t, c, ConsumerOptions{Group: uniq("gone")}, topic, "*", func(context.Context, []*MessageExt) (ConsumeResult, error) {
			return ConsumeSuccess, nil
		})
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.routes.topicNames()); n < topics {
		t.Fatalf("%d routes cached after using %d topics", n, topics)
	}
	liveGroup := uniq("live")
	startConsumer(t, c, ConsumerOptions{Group: liveGroup, RebalanceInterval: time.Hour}, names[0], "*",
		func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil })

	want := []string{retryTopic(liveGroup), names[0]}
	sort.Strings(want)
	var got []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(testutil.PollInterval) {
		got = c.routes.topicNames()
		sort.Strings(got)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d routes still cached 5 s after their producers and consumers closed (want only the live consumer's %v)", len(got), want)
		}
	}
	// A forgotten topic is looked up again.
	p := newProducer(t, c, ProducerOptions{})
	defer p.Close()
	if _, err := p.Send(ctx, &Message{Topic: names[topics-1], Body: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	if len(cl.waitStored(t, names[topics-1], 3)) != 3 {
		t.Fatal("send after the route was forgotten not stored")
	}
}
