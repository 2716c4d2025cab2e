package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// gatedBroker is a name server and broker in one that logs the heartbeats
// and UNREGISTER_CLIENTs it handles, in order, and can hold the next
// GET_BROKER_CLUSTER_INFO (the name-server lookup a heartbeat round makes
// after it built its body, before it sends it).
type gatedBroker struct {
	addr    string
	mu      sync.Mutex
	log     []string
	gate    chan struct{} // non-nil: the next cluster-info waits for it
	entered chan struct{}
	// unregGate, when non-nil, holds the answer to the next
	// UNREGISTER_CLIENT (handled, logged) until it is closed: a slow
	// answer, or the client's UNREGISTER_CLIENT to a second broker.
	unregGate chan struct{}
}

func startGated(t *testing.T) *gatedBroker {
	g := &gatedBroker{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the broker got, in order: %v", g.events())
		}
	})
	mux := remoting.NewMux()
	brokerData := func() string {
		return fmt.Sprintf(`{"cluster":"c","brokerName":"b","brokerAddrs":{0:%q}}`, g.addr)
	}
	mux.HandleFunc(remoting.ReqGetBrokerClusterInfo, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		g.mu.Lock()
		gate, entered := g.gate, g.entered
		g.gate = nil
		g.mu.Unlock()
		if gate != nil {
			close(entered)
			<-gate
		}
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(fmt.Sprintf(`{"brokerAddrTable":{"b":%s},"clusterAddrTable":{"c":["b"]}}`, brokerData()))
		return resp
	})
	mux.HandleFunc(remoting.ReqGetRouteInfoByTopic, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.Body = []byte(fmt.Sprintf(`{"queueDatas":[{"brokerName":"b","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSynFlag":0}],"brokerDatas":[%s]}`, brokerData()))
		return resp
	})
	mux.HandleFunc(remoting.ReqHeartBeat, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		var hb heartbeatData
		_ = json.Unmarshal(req.Body, &hb)
		g.mu.Lock()
		for _, p := range hb.ProducerDataSet {
			g.log = append(g.log, "beat "+p.GroupName)
		}
		for _, c := range hb.ConsumerDataSet {
			g.log = append(g.log, "beat "+c.GroupName)
		}
		g.mu.Unlock()
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	mux.HandleFunc(remoting.ReqUnregisterClient, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		g.mu.Lock()
		for _, group := range []string{req.Ext("producerGroup"), req.Ext("consumerGroup")} {
			if group != "" {
				g.log = append(g.log, "unregister "+group)
			}
		}
		hold := g.unregGate
		g.unregGate = nil
		g.mu.Unlock()
		if hold != nil {
			<-hold
		}
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Handler: mux, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	g.addr = srv.Addr().String()
	return g
}

func (g *gatedBroker) events() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.log)
}

// A heartbeat round that built its body before Producer.Close removed the
// group may reach the broker after Close's UNREGISTER_CLIENT and register
// the closed group again (for its 120 s channel expiry), so that it would
// send this client check-backs it drops, counted against the half
// messages' check limit: the round unregisters it again at its end.
func TestUnregisterNotUndoneByAHeartbeatInFlight(t *testing.T) {
	g := startGated(t)
	c := newClient(t, g.addr, nil)
	listener := CheckListenerFunc(func(context.Context, *CheckRequest) TransactionState { return Unknown })
	p := newProducer(t, c, ProducerOptions{Group: "pg-closing", CheckListener: listener})
	waitFor(t, "a heartbeat naming pg-closing", func() bool { return slices.Contains(g.events(), "beat pg-closing") })

	gate := holdNextRound(t, g, c) // a periodic round, say; pg-closing in its body
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "the broker's last word on pg-closing to be its UNREGISTER_CLIENT", func() bool {
		var last string
		for _, e := range g.events() {
			if e == "beat pg-closing" || e == "unregister pg-closing" {
				last = e
			}
		}
		ev := g.events()
		i := slices.Index(ev, "unregister pg-closing")
		return i >= 0 && slices.Contains(ev[i+1:], "beat pg-closing") && last == "unregister pg-closing"
	})
}

// holdNextRound starts a heartbeat round of c and waits until it has
// built its body and is held at g's gate; closing the returned channel
// lets it go on.
func holdNextRound(t *testing.T, g *gatedBroker, c *Client) chan struct{} {
	t.Helper()
	g.mu.Lock()
	gate, entered := make(chan struct{}), make(chan struct{})
	g.gate, g.entered = gate, entered
	g.mu.Unlock()
	c.kickHeartbeat()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat round started")
	}
	return gate
}

// startClosingConsumer starts a gated broker and a client with a
// producer group (which makes each heartbeat round look the brokers up
// after it built its body: where the gate holds it) and a running push
// consumer of group cg-closing, and waits for a heartbeat naming it.
func startClosingConsumer(t *testing.T) (*gatedBroker, *Client, *PushConsumer) {
	t.Helper()
	g := startGated(t)
	c := newClient(t, g.addr, nil)
	listener := CheckListenerFunc(func(context.Context, *CheckRequest) TransactionState { return Unknown })
	newProducer(t, c, ProducerOptions{Group: "pg-staying", CheckListener: listener})
	pc, err := c.NewPushConsumer(ConsumerOptions{Group: "cg-closing"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe("gated-topic", "*", func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat naming cg-closing", func() bool { return slices.Contains(g.events(), "beat cg-closing") })
	return g, c, pc
}

// lastWordOnClosing is the last of the events that is a heartbeat naming
// cg-closing or its UNREGISTER_CLIENT, or "".
func lastWordOnClosing(events []string) string {
	var last string
	for _, e := range events {
		if e == "beat cg-closing" || e == "unregister cg-closing" {
			last = e
		}
	}
	return last
}

// The same for a push consumer: a heartbeat round that built its body
// before PushConsumer.Close removed the group, and reaches the broker after
// Close's UNREGISTER_CLIENT, would make this client a member of the group
// again there until it expires (120 s), and the other members would leave
// the queues they allot it unconsumed meanwhile.
func TestConsumerUnregisterNotUndoneByAHeartbeatInFlight(t *testing.T) {
	g, c, pc := startClosingConsumer(t)

	gate := holdNextRound(t, g, c) // cg-closing in its body
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "the broker's last word on cg-closing to be its UNREGISTER_CLIENT", func() bool {
		ev := g.events()
		i := slices.Index(ev, "unregister cg-closing")
		return i >= 0 && slices.Contains(ev[i+1:], "beat cg-closing") && lastWordOnClosing(ev) == "unregister cg-closing"
	})
}

// The consumer's UNREGISTER_CLIENT reached a broker, and Close is not done
// yet (its answer is slow, or Close is still unregistering from another
// broker, a dead one costing RequestTimeout): a heartbeat round that built
// its body before Close, and reaches that broker now, registers the group
// again there; it must then unregister it again, although Close has not
// finished.
func TestConsumerUnregisterNotUndoneByAHeartbeatDuringClose(t *testing.T) {
	g, c, pc := startClosingConsumer(t)

	unreg := make(chan struct{})
	g.mu.Lock()
	g.unregGate = unreg
	g.mu.Unlock()
	gate := holdNextRound(t, g, c) // cg-closing in its body
	closed := make(chan error, 1)
	go func() { closed <- pc.Close() }()
	waitFor(t, "Close's UNREGISTER_CLIENT", func() bool { return slices.Contains(g.events(), "unregister cg-closing") })
	beats := func() int {
		n := 0
		for _, e := range g.events() {
			if e == "beat pg-staying" {
				n++
			}
		}
		return n
	}
	n := beats()
	close(gate) // the round goes on: its heartbeat lands after Close's UNREGISTER_CLIENT
	waitFor(t, "the round's heartbeat", func() bool { return beats() > n })
	// The heartbeat loop runs one round at a time: once the next one
	// heartbeated, the first one is over.
	n = beats()
	c.kickHeartbeat()
	waitFor(t, "the next round's heartbeat", func() bool { return beats() > n })
	close(unreg)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broker's last word on cg-closing to be an UNREGISTER_CLIENT", func() bool {
		return lastWordOnClosing(g.events()) == "unregister cg-closing"
	})
}

// A long-lived Client whose consumers come and go under new group names
// (a consumer per session, say) keeps no record of each closed group once
// no heartbeat round that named it is under way.
func TestClosedConsumerGroupsNotRemembered(t *testing.T) {
	g := startGated(t)
	c := newClient(t, g.addr, nil)
	const n = 50
	for i := range n {
		pc, err := c.NewPushConsumer(ConsumerOptions{Group: fmt.Sprintf("cg-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Subscribe("gated-topic", "*", func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil }); err != nil {
			t.Fatal(err)
		}
		if err := pc.Start(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Once the heartbeat rounds the registrations kicked are over.
	remembered := func() int {
		c.groupsMu.Lock()
		defer c.groupsMu.Unlock()
		return len(c.left)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("after %d consumers opened and closed, the client remembers %d closed groups", n, remembered())
		}
	})
	waitFor(t, "the client to forget the closed groups", func() bool { return remembered() == 0 })
}
