package namesrv

import (
	"encoding/json"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// testLogger is silent unless NAMESRV_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("NAMESRV_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startServer opens a name server on port 0 and closes it when the test
// ends.
func startServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dial connects a raw remoting client, closed when the test ends.
func dial(t testing.TB, s *Server) *remoting.Conn {
	t.Helper()
	return remotetest.Dial(t, s.Addr())
}

// call invokes a request and fails the test on a transport error.
func call(t testing.TB, c *remoting.Conn, code int16, ext map[string]string, body []byte) *remoting.Command {
	t.Helper()
	return remotetest.Call(t, c, code, ext, body)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, what, cond)
}

// brokerReg describes a REGISTER_BROKER request.
type brokerReg struct {
	cluster, name, addr string
	id                  int64
	topics              map[string][2]int // topic → read, write queue counts
	full                bool              // the table is whole (a halfback broker's)
}

// register sends a REGISTER_BROKER with a RegisterBrokerBody and its CRC,
// as a Java broker of 4.x does, and requires SUCCESS.
func register(t testing.TB, c *remoting.Conn, r brokerReg) *remoting.Command {
	t.Helper()
	table := map[string]TopicConfig{}
	for name, q := range r.topics {
		table[name] = TopicConfig{TopicName: name, ReadQueueNums: q[0], WriteQueueNums: q[1], Perm: PermRW}
	}
	body, err := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: table, DataVersion: DataVersion{Timestamp: time.Now().UnixMilli(), Counter: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := call(t, c, remoting.ReqRegisterBroker, registerExt(r, body), body)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("REGISTER_BROKER %s: code %d %q", r.addr, resp.Code, resp.Remark)
	}
	return resp
}

func registerExt(r brokerReg, body []byte) map[string]string {
	if r.cluster == "" {
		r.cluster = "DefaultCluster"
	}
	ext := map[string]string{
		"brokerName": r.name, "brokerAddr": r.addr, "clusterName": r.cluster,
		"brokerId": strconv.FormatInt(r.id, 10), "haServerAddr": r.addr, "compressed": "false",
		"bodyCrc32": strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)&0x7fffffff), 10),
	}
	if r.full {
		ext[remoting.ExtFullTopicTable] = "true"
	}
	return ext
}

// clientRoute is a route as the official Go client v2.1.2 reads it
// (internal/route.go TopicRouteData.decode): queueDatas through a JSON
// decoder, brokerAddrs split by hand on ',' and the first ':'.
type clientRoute struct {
	queues  []clientQueue
	brokers map[string]map[int64]string // broker name → id → address
}

type clientQueue struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSynFlag   int    `json:"topicSynFlag"`
}

// parseLikeGoClient fails the test where the Go client would fail (or
// panic: it slices brokerAddrs' text without checking it).
func parseLikeGoClient(t testing.TB, body []byte) clientRoute {
	t.Helper()
	var doc struct {
		OrderTopicConf string          `json:"orderTopicConf"`
		QueueDatas     json.RawMessage `json:"queueDatas"`
		BrokerDatas    []struct {
			BrokerName  string          `json:"brokerName"`
			BrokerAddrs json.RawMessage `json:"brokerAddrs"`
		} `json:"brokerDatas"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("route body %s: %v", body, err)
	}
	var r clientRoute
	if err := json.Unmarshal(doc.QueueDatas, &r.queues); err != nil {
		t.Fatalf("queueDatas %s: %v", doc.QueueDatas, err)
	}
	// routeData2PublishInfo: "name:n" pairs split on ';' and ':', item[1]
	// read unchecked, n queues allocated.
	if doc.OrderTopicConf != "" {
		for _, b := range strings.Split(doc.OrderTopicConf, ";") {
			item := strings.Split(b, ":")
			if len(item) < 2 {
				t.Fatalf("orderTopicConf %q would crash the Go client", doc.OrderTopicConf)
			}
			if n, _ := strconv.Atoi(item[1]); n > maxRegisteredQueueNums {
				t.Fatalf("orderTopicConf %q makes the Go client allocate %d queues", doc.OrderTopicConf, n)
			}
		}
	}
	r.brokers = map[string]map[int64]string{}
	for _, bd := range doc.BrokerDatas {
		addrs := string(bd.BrokerAddrs)
		if len(addrs) < 2 || addrs[0] != '{' {
			t.Fatalf("brokerAddrs %q would crash the Go client", addrs)
		}
		m := map[int64]string{}
		for _, s := range strings.Split(addrs[1:len(addrs)-1], ",") {
			i := strings.Index(s, ":")
			if i < 0 {
				continue
			}
			id, _ := strconv.ParseInt(strings.ReplaceAll(s[:i], `"`, ""), 10, 64)
			m[id] = strings.ReplaceAll(s[i+1:], `"`, "")
		}
		r.brokers[bd.BrokerName] = m
	}
	return r
}

// route asks for topic's route and parses it as the Go client does; ok is
// false on TOPIC_NOT_EXIST.
func route(t testing.TB, c *remoting.Conn, topic string) (clientRoute, bool) {
	t.Helper()
	resp := call(t, c, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
	switch resp.Code {
	case remoting.RespSuccess:
		return parseLikeGoClient(t, resp.Body), true
	case remoting.RespTopicNotExist:
		return clientRoute{}, false
	}
	t.Fatalf("GET_ROUTEINFO_BY_TOPIC %s: code %d %q", topic, resp.Code, resp.Remark)
	return clientRoute{}, false
}
