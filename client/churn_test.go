package client

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
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
//
// A route is forgotten 4 refresh intervals (200 ms here) after its last
// use, so on a loaded machine the first topics' routes may be gone before
// the last topic is used: the test reads which routes were cached and
// forgotten from the client's log rather than counting the cache at one
// moment.
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

	forgotten := &forgottenLog{topics: map[string]bool{}}
	c := newClient(t, cl.ns.Addr(), func(o *Options) {
		o.RouteRefreshInterval = 50 * time.Millisecond
		o.Logger = slog.New(forgotten)
	})
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
	liveGroup := uniq("live")
	startConsumer(t, c, ConsumerOptions{Group: liveGroup, RebalanceInterval: time.Hour}, names[0], "*",
		func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil })

	want := []string{retryTopic(liveGroup), names[0]}
	sort.Strings(want)
	// Every topic but the live consumer's was cached, then forgotten;
	// the live consumer's may have been forgotten before it started, and
	// is cached again.
	var got []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(testutil.PollInterval) {
		got = c.routes.topicNames()
		sort.Strings(got)
		kept := forgotten.missing(names[1:])
		if slices.Equal(got, want) && len(kept) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after their producers and consumers closed, routes cached %v (want only the live consumer's %v), %d of %d idle topics never forgotten: %v",
				got, want, len(kept), topics-1, kept)
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

// forgottenLog is a slog.Handler that keeps the topics of the client's
// "route no longer used, forgotten" records.
type forgottenLog struct {
	mu     sync.Mutex
	topics map[string]bool
}

func (f *forgottenLog) Enabled(context.Context, slog.Level) bool { return true }
func (f *forgottenLog) WithAttrs([]slog.Attr) slog.Handler       { return f }
func (f *forgottenLog) WithGroup(string) slog.Handler            { return f }
func (f *forgottenLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "client: route no longer used, forgotten" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "topic" {
			f.mu.Lock()
			f.topics[a.Value.String()] = true
			f.mu.Unlock()
		}
		return true
	})
	return nil
}

// missing returns the topics of topics whose route was never forgotten.
func (f *forgottenLog) missing(topics []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, t := range topics {
		if !f.topics[t] {
			out = append(out, t)
		}
	}
	return out
}
