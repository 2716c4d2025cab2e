package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
	}{
		{"no name server", Options{}},
		{"bad name server", Options{NamesrvAddrs: []string{"nowhere"}}},
		{"empty name server", Options{NamesrvAddrs: []string{""}}},
		{"name servers as one string", Options{NamesrvAddrs: []string{";"}}},
		{"name server without a host", Options{NamesrvAddrs: []string{":9876"}}},
		{"name server without a port", Options{NamesrvAddrs: []string{"127.0.0.1:"}}},
		{"name server port not a number", Options{NamesrvAddrs: []string{"127.0.0.1:abc"}}},
		{"name server port 0", Options{NamesrvAddrs: []string{"127.0.0.1:0"}}},
		{"name server port too large", Options{NamesrvAddrs: []string{"127.0.0.1:99999"}}},
		{"name server with a space", Options{NamesrvAddrs: []string{" 127.0.0.1:9876"}}},
		{"bad instance", Options{NamesrvAddrs: []string{"127.0.0.1:9876"}, InstanceName: "a@b"}},
		{"bad ip", Options{NamesrvAddrs: []string{"127.0.0.1:9876"}, ClientIP: "host"}},
		{"negative timeout", Options{NamesrvAddrs: []string{"127.0.0.1:9876"}, RequestTimeout: -1}},
		{"negative size", Options{NamesrvAddrs: []string{"127.0.0.1:9876"}, MaxMessageSize: -1}},
	}
	for _, c := range cases {
		if _, err := New(c.o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: New = %v, want ErrInvalidOptions", c.name, err)
		}
	}
	// Valid name server addresses: IPv6 in brackets, host names, port 65535.
	for _, a := range []string{"[::1]:9876", "localhost:9876", "ns-1.example:65535"} {
		if err := (Options{NamesrvAddrs: []string{a}}).Validate(); err != nil {
			t.Errorf("Validate with name server %q: %v", a, err)
		}
	}
	c := newClient(t, "127.0.0.1:9876", nil)
	for _, g := range []string{"", "a b", strings.Repeat("g", 256)} {
		if _, err := c.NewProducer(ProducerOptions{Group: g}); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("NewProducer(%q) = %v, want ErrInvalidOptions", g, err)
		}
	}
}

func TestClientIDsAreUnique(t *testing.T) {
	a := newClient(t, "127.0.0.1:9876", nil)
	b := newClient(t, "127.0.0.1:9876", nil)
	if a.ClientID() == b.ClientID() || !strings.Contains(a.ClientID(), "@") {
		t.Fatalf("client ids %q and %q", a.ClientID(), b.ClientID())
	}
	seen := map[string]bool{}
	for range 1000 {
		id := a.uniq.Next()
		if len(id) != 32 || strings.ToUpper(id) != id || seen[id] {
			t.Fatalf("uniq id %q (len %d, seen %v)", id, len(id), seen[id])
		}
		seen[id] = true
	}
	if a.uniq.Next()[:20] == b.uniq.Next()[:20] {
		t.Fatal("two clients share a message id prefix")
	}
}

// Close ends every goroutine the client started: loops, connection read
// loops and check listener calls, even one blocked in a listener.
func TestCloseStopsGoroutines(t *testing.T) {
	f := startFake(t)
	c, err := New(Options{NamesrvAddrs: []string{f.addr}, Logger: testLogger(), HeartbeatInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{}, 1)
	p := newProducer(t, c, ProducerOptions{Group: "g-close", CheckListener: CheckListenerFunc(
		func(ctx context.Context, _ *CheckRequest) TransactionState {
			listening <- struct{}{}
			<-ctx.Done() // held until the connection closes
			return Unknown
		})})
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: "t-close", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var beat fakeBeat
	waitFor(t, "a heartbeat naming the group", func() (ok bool) { beat, ok = f.beatFor("g-close"); return ok })
	if err := beat.conn.InvokeOneway(checkCommand(t, "g-close", "t-close")); err != nil {
		t.Fatal(err)
	}
	<-listening
	if len(clientGoroutines()) == 0 {
		t.Fatal("no client goroutine found while the client runs: the leak check would see nothing")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	noGoroutines(t, "Close", clientGoroutines)
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := p.Send(ctxT(t, time.Second), &Message{Topic: "t-close", Body: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if _, err := c.NewProducer(ProducerOptions{Group: "g2"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewProducer after Close = %v", err)
	}
}

// Close runs the registered shutdown work first, last registered first,
// while the connections still work; after Close nothing registers.
func TestCloseRunsClosersFirst(t *testing.T) {
	f := startFake(t)
	c, err := New(Options{NamesrvAddrs: []string{f.addr}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	c.onClose(func() { order = append(order, "first") })
	drop, _ := c.onClose(func() { order = append(order, "removed") })
	drop()
	c.onClose(func() {
		_, err := c.route(context.Background(), "t") // still reaches the name server
		order = append(order, "second:"+errString(err))
	})
	c.Close()
	if len(order) != 2 || order[0] != "second:<nil>" || order[1] != "first" {
		t.Fatalf("closers ran as %v", order)
	}
	if _, ok := c.onClose(func() {}); ok {
		t.Fatal("onClose registered after Close")
	}
	if err := c.registerConsumerGroup("cg", func() consumerData { return consumerData{} }); !errors.Is(err, ErrClosed) {
		t.Fatalf("registerConsumerGroup after Close: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// A connection the server closed is dialled again, and the producer group
// is heartbeated on the new one at once (check-backs need it).
func TestConnectionRedialled(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "g-redial", CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { return Unknown })})
	ctx := ctxT(t, 10*time.Second)
	if _, err := p.Send(ctx, &Message{Topic: "t", Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	var first fakeBeat
	waitFor(t, "a heartbeat", func() (ok bool) { first, ok = f.beatFor("g-redial"); return ok })
	old := c.pool.open(f.addr) // the client's end; first.conn is the server's
	if old == nil {
		t.Fatal("no open connection to the fake")
	}
	for _, conn := range f.srv.Conns() {
		conn.Close()
	}
	waitFor(t, "the client to see its connection closed", func() bool { return c.pool.addrOf(old) == "" })
	if _, err := p.Send(ctx, &Message{Topic: "t", Body: []byte("2")}); err != nil {
		t.Fatalf("send after the server closed the connection: %v", err)
	}
	// Not the latest heartbeat: one the client sent on the old connection
	// as it closed can be recorded after the new connection's.
	waitFor(t, "a heartbeat on the new connection", func() bool { return f.beatOtherThan("g-redial", first.conn) })
}

func TestHeartbeatCarriesGroups(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	if err := c.heartbeatNow(ctxT(t, 5*time.Second)); err != nil || f.beatCount() != 0 {
		t.Fatalf("a client with no group heartbeated: %v, %d beats", err, f.beatCount())
	}
	// A producer without a listener is not heartbeated: it could not answer.
	newProducer(t, c, ProducerOptions{Group: "plain"})
	listener := CheckListenerFunc(func(context.Context, *CheckRequest) TransactionState { return Unknown })
	p := newProducer(t, c, ProducerOptions{Group: "checked", CheckListener: listener})
	if _, err := c.NewProducer(ProducerOptions{Group: "checked", CheckListener: listener}); !errors.Is(err, ErrGroupRegistered) {
		t.Fatalf("second listener for a group: %v", err)
	}
	err := c.registerConsumerGroup("cg", func() consumerData {
		return consumerData{ConsumeType: "CONSUME_PASSIVELY", MessageModel: "CLUSTERING",
			SubscriptionDataSet: []subscriptionData{{Topic: "t", SubString: "*"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.heartbeatNow(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The consumer group's heartbeat (a round NewProducer kicked may land
	// after it, built before the group was registered).
	b, ok := f.beatForConsumer("cg")
	if !ok || b.hb.ClientID != c.ClientID() || len(b.hb.ProducerDataSet) != 1 || b.hb.ProducerDataSet[0].GroupName != "checked" ||
		len(b.hb.ConsumerDataSet) != 1 || b.hb.ConsumerDataSet[0].GroupName != "cg" ||
		b.hb.ConsumerDataSet[0].SubscriptionDataSet[0].Topic != "t" {
		t.Fatalf("heartbeat %+v", b.hb)
	}
	// Closing the producer frees the group for another listener.
	p.Close()
	c.unregisterConsumerGroup("cg")
	if _, err := c.NewProducer(ProducerOptions{Group: "checked", CheckListener: listener}); err != nil {
		t.Fatalf("listener after the first producer closed: %v", err)
	}
}

// Requests a broker sends to the client go to the handler registered for
// their code; other codes are answered REQUEST_CODE_NOT_SUPPORTED.
func TestBrokerRequestsDispatchedByCode(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	const code int16 = remoting.ReqNotifyConsumerIdsChanged
	got := make(chan string, 1)
	c.handle(code, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		got <- req.Ext("consumerGroup")
		return nil
	})
	newProducer(t, c, ProducerOptions{Group: "g-notify", CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { return Unknown })})
	if err := c.heartbeatNow(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	b, _ := f.beatFor("g-notify")
	if err := b.conn.InvokeOneway(remoting.NewRequest(code, map[string]string{"consumerGroup": "cg"})); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "cg" {
		t.Fatalf("handler got group %q", g)
	}
	resp, err := b.conn.Invoke(ctxT(t, 5*time.Second), remoting.NewRequest(remoting.ReqConsumeMessageDirectly, nil))
	if err != nil || resp.Code != remoting.RespRequestCodeNotSupported {
		t.Fatalf("unhandled code answered %v, %v", resp, err)
	}
}
