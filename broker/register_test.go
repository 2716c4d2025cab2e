package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/namesrv"
)

// startNamesrv opens a name server on port 0 that does not auto-route
// unknown topics, so a route proves a registration.
func startNamesrv(t testing.TB, expiry time.Duration) *namesrv.Server {
	t.Helper()
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", BrokerExpiry: expiry, DisableAutoCreateTopic: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("namesrv.Open: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// goClientRoute is a topic route read the way the official Go client
// v2.1.2 reads it (internal/route.go): queueDatas decoded, brokerAddrs
// split by hand on ',' and the first ':'.
type goClientRoute struct {
	queues []struct {
		BrokerName     string `json:"brokerName"`
		ReadQueueNums  int    `json:"readQueueNums"`
		WriteQueueNums int    `json:"writeQueueNums"`
		Perm           int    `json:"perm"`
	}
	masters map[string]string // broker name → id 0's address
}

// nsRoute asks the name server for topic's route; ok is false on
// TOPIC_NOT_EXIST.
func nsRoute(t testing.TB, c *remoting.Conn, topic string) (r goClientRoute, ok bool) {
	t.Helper()
	resp := call(t, c, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
	if resp.Code == remoting.RespTopicNotExist {
		return r, false
	}
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("route %s: code %d %q", topic, resp.Code, resp.Remark)
	}
	var doc struct {
		QueueDatas  json.RawMessage `json:"queueDatas"`
		BrokerDatas []struct {
			BrokerName  string          `json:"brokerName"`
			BrokerAddrs json.RawMessage `json:"brokerAddrs"`
		} `json:"brokerDatas"`
	}
	if err := json.Unmarshal(resp.Body, &doc); err != nil {
		t.Fatalf("route body %s: %v", resp.Body, err)
	}
	if err := json.Unmarshal(doc.QueueDatas, &r.queues); err != nil {
		t.Fatalf("queueDatas %s: %v", doc.QueueDatas, err)
	}
	r.masters = map[string]string{}
	for _, bd := range doc.BrokerDatas {
		addrs := string(bd.BrokerAddrs)
		if len(addrs) < 2 {
			t.Fatalf("brokerAddrs %q would crash the Go client", addrs)
		}
		for _, s := range strings.Split(addrs[1:len(addrs)-1], ",") {
			i := strings.Index(s, ":")
			if i < 0 {
				continue
			}
			if id, _ := strconv.ParseInt(strings.ReplaceAll(s[:i], `"`, ""), 10, 64); id == 0 {
				r.masters[bd.BrokerName] = strings.ReplaceAll(s[i+1:], `"`, "")
			}
		}
	}
	return r, true
}

func dialAddr(t testing.TB, addr string) *remoting.Conn {
	t.Helper()
	c, err := remoting.Dial(t.Context(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRegistersWithNamesrv(t *testing.T) {
	ns := startNamesrv(t, 0)
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	b := startBroker(t, o)
	nc := dialAddr(t, ns.Addr())

	// Registered before Open returned: TBW102, the client's fallback route
	// for new topics, and the system topics are there at once.
	r, ok := nsRoute(t, nc, autoCreateTopicKey)
	if !ok {
		t.Fatal("no route for TBW102 right after Open")
	}
	if r.masters[DefaultBrokerName] != b.Addr() || len(r.queues) != 1 || r.queues[0].WriteQueueNums != DefaultQueueNums {
		t.Fatalf("TBW102 route %+v, want %d queues on %s", r, DefaultQueueNums, b.Addr())
	}

	// A topic created on the broker is routed promptly, with its counts.
	bc := dial(t, b)
	resp := call(t, bc, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "Orders", "readQueueNums": "3", "writeQueueNums": "5", "perm": "6"}, nil)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("create topic: code %d %q", resp.Code, resp.Remark)
	}
	waitFor(t, "the new topic's route", func() bool {
		r, ok = nsRoute(t, nc, "Orders")
		return ok
	})
	if r.masters[DefaultBrokerName] != b.Addr() || len(r.queues) != 1 ||
		r.queues[0].ReadQueueNums != 3 || r.queues[0].WriteQueueNums != 5 || r.queues[0].Perm != PermRW {
		t.Fatalf("Orders route %+v, want 3/5 queues on %s", r, b.Addr())
	}

	// Deleted on the broker: gone from the name server.
	if resp := call(t, bc, remoting.ReqDeleteTopicInBroker, map[string]string{"topic": "Orders"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("delete topic: code %d %q", resp.Code, resp.Remark)
	}
	waitFor(t, "the deleted topic's route to go", func() bool {
		_, ok := nsRoute(t, nc, "Orders")
		return !ok
	})

	// Close unregisters before it returns.
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := nsRoute(t, nc, autoCreateTopicKey); ok {
		t.Fatal("broker still routed after Close")
	}
}

func TestRegistrationHeartbeat(t *testing.T) {
	// An expiry far above the interval: on a loaded machine a 500 ms
	// expiry passed between two registrations.
	const expiry = 2 * time.Second
	ns := startNamesrv(t, expiry)
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	o.RegisterInterval = 20 * time.Millisecond
	o.DisableAutoCreateTopic = true
	b := startBroker(t, o)
	nc := dialAddr(t, ns.Addr())

	// No admin request: the periodic registration carries the new topic.
	if err := b.topics.put(TopicConfig{TopicName: "Quiet", ReadQueueNums: 2, WriteQueueNums: 2, Perm: PermRW}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the periodic registration", func() bool {
		_, ok := nsRoute(t, nc, "Quiet")
		return ok
	})
	// Re-registration keeps the broker routed at every look through three
	// expiry periods.
	start := time.Now()
	testutil.WaitFor(t, 10*expiry, "three expiry periods to pass", func() bool {
		if _, ok := nsRoute(t, nc, "Quiet"); !ok {
			t.Fatalf("broker expired %v in, although it re-registers every 20 ms", time.Since(start))
		}
		return time.Since(start) > 3*expiry
	})
	if _, ok := nsRoute(t, nc, autoCreateTopicKey); ok {
		t.Error("TBW102 registered by a broker that does not auto-create topics")
	}
}

func TestRegistrationOnFirstDispatch(t *testing.T) {
	ns := startNamesrv(t, 0)
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	b := startBroker(t, o)
	nc := dialAddr(t, ns.Addr())

	// A topic created on its first send is announced by the dispatch that
	// follows, long before the 30 s registration interval.
	if _, err := b.topics.getOrCreate("FirstSend"); err != nil {
		t.Fatal(err)
	}
	r := b.reg.Load()
	if r == nil {
		t.Fatal("no registrar for a broker with name servers")
	}
	r.noteDispatch("FirstSend", 0, 1)
	waitFor(t, "the first-send topic's route", func() bool {
		_, ok := nsRoute(t, nc, "FirstSend")
		return ok
	})
}

func TestRegistrationSurvivesNamesrvDown(t *testing.T) {
	ns := startNamesrv(t, 0)
	addr := ns.Addr()
	ns.Close()
	o := testOptions(t)
	o.NamesrvAddrs = []string{addr}
	b := startBroker(t, o) // Open must not fail or hang on a dead name server
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestRegistersAdvertisedNameAndAddress(t *testing.T) {
	ns := startNamesrv(t, 0)
	o := testOptions(t)
	o.NamesrvAddrs = []string{ns.Addr()}
	o.AdvertiseAddr, o.BrokerName, o.ClusterName = "10.9.8.7:10911", "broker-b", "orders"
	b := startBroker(t, o)
	if b.Addr() != o.AdvertiseAddr {
		t.Fatalf("Addr %q, want the advertised %q", b.Addr(), o.AdvertiseAddr)
	}
	r, ok := nsRoute(t, dialAddr(t, ns.Addr()), autoCreateTopicKey)
	if !ok || r.masters["broker-b"] != "10.9.8.7:10911" || len(r.masters) != 1 {
		t.Fatalf("TBW102 route %+v; want broker-b at 10.9.8.7:10911", r)
	}
	res, err := b.Store().Append(context.Background(), &message.Message{Topic: "Orders", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if host, _, err := message.ParseOffsetMsgID(res.MsgID); err != nil || host != netip.MustParseAddrPort("10.9.8.7:10911") {
		t.Fatalf("message id %s carries store host %v (%v), want the advertised address", res.MsgID, host, err)
	}
}

func TestAdvertisedAddress(t *testing.T) {
	lan := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.IPv4(192, 168, 1, 20), Mask: net.CIDRMask(24, 32)}}, nil
	}
	if got := localIPv4(lan); got != netip.MustParseAddr("192.168.1.20") {
		t.Errorf("localIPv4 = %v, want the first non-loopback IPv4 address", got)
	}
	loopbackOnly := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}}, nil
	}
	if got := localIPv4(loopbackOnly); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("localIPv4 without a LAN address = %v, want 127.0.0.1", got)
	}

	for _, listened := range []string{"0.0.0.0:10911", "[::]:10911"} {
		got, loopback := advertised("", net.TCPAddrFromAddrPort(netip.MustParseAddrPort(listened)))
		ap, err := netip.ParseAddrPort(got)
		if err != nil || ap.Addr().IsUnspecified() || !ap.Addr().Is4() || ap.Port() != 10911 || loopback != ap.Addr().IsLoopback() {
			t.Errorf("advertised for %s = %q (loopback %v), want an IPv4 address clients can dial, port 10911", listened, got, loopback)
		}
	}
	specific := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:10911"))
	if got, loopback := advertised("", specific); got != "127.0.0.1:10911" || loopback {
		t.Errorf("advertised for a specific address = %q (loopback fallback %v)", got, loopback)
	}
	if got, _ := advertised("mq.internal:9000", specific); got != "mq.internal:9000" {
		t.Errorf("advertised with AdvertiseAddr set = %q", got)
	}

	// Message ids carry an IP address: a host name is resolved ("localhost"
	// resolves without a network), and one that does not resolve gives
	// the machine's address with the advertised port.
	if got := storeHost("10.9.8.7:10911", testLogger()); got != netip.MustParseAddrPort("10.9.8.7:10911") {
		t.Errorf("storeHost of an IP address = %v", got)
	}
	if got := storeHost("localhost:9000", testLogger()); got != netip.MustParseAddrPort("127.0.0.1:9000") {
		t.Errorf("storeHost of localhost = %v, want 127.0.0.1:9000", got)
	}
	if got := storeHost("no-such-host.invalid:9000", testLogger()); !got.Addr().Is4() || got.Port() != 9000 {
		t.Errorf("storeHost of a name that does not resolve = %v, want the machine's IPv4 address, port 9000", got)
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Options)
		want string
	}{
		{"every interface", func(o *Options) { o.AdvertiseAddr = "0.0.0.0:10911" }, "AdvertiseAddr"},
		{"no port", func(o *Options) { o.AdvertiseAddr = "10.0.0.1" }, "AdvertiseAddr"},
		{"port 0", func(o *Options) { o.AdvertiseAddr = "10.0.0.1:0" }, "AdvertiseAddr"},
		{"broker name with a slash", func(o *Options) { o.BrokerName = "a/b" }, "BrokerName"},
		{"cluster name too long", func(o *Options) { o.ClusterName = strings.Repeat("c", 128) }, "ClusterName"},
		{"message size above a frame", func(o *Options) {
			o.Store.SegmentSize, o.Store.MaxMessageSize = 64<<20, 32<<20
		}, "MaxMessageSize"},
		{"in-flight bytes below a frame", func(o *Options) { o.MaxInFlightBytes = 1 << 20 }, "MaxInFlightBytes"},
		{"negative in-flight bytes", func(o *Options) { o.MaxInFlightBytes = -1 }, "MaxInFlightBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.set(&o)
			b, err := Open(o)
			if err == nil {
				b.Close()
				t.Fatal("Open accepted it")
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want ErrInvalidOptions naming %s", err, tc.want)
			}
		})
	}
}

// As RocketMQ's updateAndCreateTopic, the broker registers a created
// topic with the name servers before it answers: a client that asks for
// the topic's route right after creating it finds it. (It answered first
// and registered in the background: a consumer started at once could get
// TBW102's default route, four queues, and pull from three that do not
// exist until its next rebalance.) The name server here answers each
// registration 300 ms late and notes the topics of those it answered.
func TestCreatedTopicIsRegisteredBeforeTheAnswer(t *testing.T) {
	var mu sync.Mutex
	answered := map[string]bool{}
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqRegisterBroker, func(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		var body namesrv.RegisterBrokerBody
		if err := json.Unmarshal(req.Body, &body); err != nil {
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
		select {
		case <-time.After(300 * time.Millisecond): // a slow name server, not a wait for something
		case <-ctx.Done():
		}
		mu.Lock()
		for name := range body.TopicConfigSerializeWrapper.TopicConfigTable {
			answered[name] = true
		}
		mu.Unlock()
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	mux.HandleFunc(remoting.ReqUnregisterBroker, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		return remoting.NewResponse(req, remoting.RespSuccess, "")
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: mux, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	o := testOptions(t)
	o.NamesrvAddrs = []string{srv.Addr().String()}
	b := startBroker(t, o)
	bc := dial(t, b)
	for _, topic := range []string{"Orders", "Payments"} {
		resp := call(t, bc, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": topic, "readQueueNums": "1", "writeQueueNums": "1"}, nil)
		if resp.Code != remoting.RespSuccess {
			t.Fatalf("create %s: code %d %q", topic, resp.Code, resp.Remark)
		}
		mu.Lock()
		ok := answered[topic]
		mu.Unlock()
		if !ok {
			t.Fatalf("UPDATE_AND_CREATE_TOPIC %s answered before the name server had the topic's registration", topic)
		}
	}
}
