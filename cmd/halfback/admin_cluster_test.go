package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/namesrv"
)

// startTestCluster starts a name server and two brokers of cluster C1
// registered with it, and returns the name server's address and the
// brokers' addresses once the name server lists both.
func startTestCluster(t *testing.T) (string, []string) {
	t.Helper()
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	levels, err := delay.ParseLevels("100ms 200ms")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, name := range []string{"broker-a", "broker-b"} {
		b, err := broker.Open(broker.Options{
			Store:      store.Options{Dir: t.TempDir(), FlushType: store.SyncFlush, SegmentSize: 16 << 20},
			Delay:      delay.Options{Levels: levels},
			ListenAddr: "127.0.0.1:0", NamesrvAddrs: []string{ns.Addr()}, BrokerName: name, ClusterName: "C1",
			RegisterInterval: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		addrs = append(addrs, b.Addr())
	}
	waitFor(t, 10*time.Second, "both brokers registered", func() bool {
		bs, err := admin.ClusterBrokers(context.Background(), []string{ns.Addr()}, "C1")
		return err == nil && len(bs) == 2
	})
	return ns.Addr(), addrs
}

func TestAdminClusterWide(t *testing.T) {
	clearEnv(t)
	ns, addrs := startTestCluster(t)
	clusterArgs := func(args ...string) []string { return append(args, "--cluster", "C1", "--namesrv", ns, "--json") }
	runJSON := func(v any, args ...string) {
		t.Helper()
		out, err := run(t, clusterArgs(args...)...)
		if err != nil {
			t.Fatalf("halfback %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("halfback %s: not one JSON value: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var created []clusterResult
	runJSON(&created, "topic", "create", "shared", "--queues", "2")
	if len(created) != 2 || created[0].Broker != "broker-a" || created[1].Broker != "broker-b" || created[1].Addr != addrs[1] {
		t.Fatalf("topic create --cluster: %+v, want one result per broker", created)
	}
	for _, addr := range addrs {
		var topics []admin.Topic
		runAdmin(t, addr, &topics, "topic", "list")
		if tp, ok := topicNames(topics)["shared"]; !ok || tp.WriteQueueNums != 2 {
			t.Errorf("broker %s: topic shared %+v (%v), want 2 queues", addr, tp, ok)
		}
	}
	var updated []struct {
		Broker string            `json:"brokerName"`
		Result admin.GroupConfig `json:"result"`
	}
	runJSON(&updated, "group", "update", "everywhere", "--consume=false")
	if len(updated) != 2 || updated[0].Result.ConsumeEnable || updated[1].Result.ConsumeEnable {
		t.Fatalf("group update --cluster: %+v, want the group paused on both", updated)
	}

	// mirror status asks each broker of the cluster for the mirror's
	// topics: here the group has consumed nothing, so every queue of
	// each broker is behind.
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("mirror:\n  kafka:\n    topics: shared=shared-v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mirrored []struct {
		Broker string       `json:"brokerName"`
		Result mirrorStatus `json:"result"`
	}
	runJSON(&mirrored, "mirror", "status", "--config", cfgPath)
	if len(mirrored) != 2 || mirrored[0].Broker != "broker-a" || mirrored[1].Broker != "broker-b" {
		t.Fatalf("mirror status --cluster: %+v, want one result per broker", mirrored)
	}
	for _, m := range mirrored {
		if ts := m.Result.Topics; len(ts) != 1 || ts[0].KafkaTopic != "shared-v1" || len(ts[0].Queues) != 2 || ts[0].Queues[0].Broker != m.Broker {
			t.Errorf("mirror status of %s: %+v, want topic shared's 2 queues on that broker", m.Broker, m.Result)
		}
	}

	// Every broker refuses: each one's error is reported, and the command fails.
	out, err := run(t, clusterArgs("topic", "status", "missing")...)
	var failed []clusterResult
	if err == nil || !strings.Contains(err.Error(), "2 of 2 brokers of C1 failed") || json.Unmarshal([]byte(out), &failed) != nil ||
		len(failed) != 2 || !strings.Contains(failed[0].Error, "not exist") {
		t.Errorf("topic status of a missing topic: %v\n%s", err, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "list", "--cluster", "C9", "--namesrv", ns}, "C9 (name server " + ns + " knows C1)"},
		{[]string{"topic", "list", "--cluster", "C1", "--namesrv", ns, "--broker", addrs[0]}, "exclude each other"},
		{[]string{"topic", "list", "--cluster", "C1", "--namesrv", "127.0.0.1:1"}, "connect to name server"},
	} {
		if _, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("halfback %s: %v, want it to mention %q", strings.Join(c.args, " "), err, c.want)
		}
	}

	// Without --json: one section per broker.
	out, err = run(t, "topic", "status", "shared", "--cluster", "C1", "--namesrv", ns)
	if err != nil || !strings.Contains(out, "== broker-a ("+addrs[0]+")") || !strings.Contains(out, "== broker-b ("+addrs[1]+")") {
		t.Errorf("topic status --cluster: %v\n%s", err, out)
	}
}

// A broker group of the cluster whose master is down while its slave is
// still registered has no master to address: a cluster run must not
// report success as if every broker of the cluster had been reached.
func TestAdminClusterMasterlessBrokerFails(t *testing.T) {
	clearEnv(t)
	ns, _ := startTestCluster(t)
	conn, err := remoting.Dial(context.Background(), ns, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqRegisterBroker, map[string]string{
		"brokerName": "broker-c", "brokerAddr": "127.0.0.1:1", "clusterName": "C1", "brokerId": "1", "compressed": "false"}))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("register a slave of broker-c: %v %+v", err, resp)
	}

	out, err := run(t, "topic", "create", "everywhere", "--cluster", "C1", "--namesrv", ns, "--json")
	var results []clusterResult
	if jerr := json.Unmarshal([]byte(out), &results); jerr != nil {
		t.Fatalf("not one JSON value: %v\n%s", jerr, out)
	}
	if err == nil || !strings.Contains(err.Error(), "broker-c") {
		t.Errorf("topic create --cluster with broker-c's master down: err %v, want a failure naming broker-c\n%s", err, out)
	}
	if len(results) != 3 || results[2].Broker != "broker-c" || results[2].Error == "" {
		t.Errorf("results %+v, want broker-c listed with an error", results)
	}
	out, err = run(t, "cluster", "list", "--namesrv", ns, "--json")
	var rows []clusterBroker
	if jerr := json.Unmarshal([]byte(out), &rows); jerr != nil || err == nil || len(rows) != 3 ||
		rows[2].Broker != "broker-c" || !strings.Contains(rows[2].Error, "no master") || rows[0].Runtime == nil {
		t.Errorf("cluster list with broker-c's master down: %v\n%s", err, out)
	}
}

// --queue N --offset K moves one queue; with --cluster every broker has
// its own queue N, so the reset is refused rather than moving each.
func TestAdminClusterResetOneQueueRefused(t *testing.T) {
	clearEnv(t)
	ns, addrs := startTestCluster(t)
	if out, err := run(t, "topic", "create", "one", "--queues", "1", "--cluster", "C1", "--namesrv", ns); err != nil {
		t.Fatalf("topic create: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var clients []*admin.Client
	for _, addr := range addrs {
		c, err := admin.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		for range 2 {
			if _, err := c.Send(ctx, admin.SendRequest{Topic: "one", Body: []byte("m")}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 10*time.Second, "two messages in queue 0", func() bool {
			_, maxOff, err := c.QueueBounds(ctx, "one", 0)
			return err == nil && maxOff == 2
		})
		if err := c.CommitOffset(ctx, "G", "one", 0, 2); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "group", "reset", "G", "--topic", "one", "--queue", "0", "--offset", "1", "--cluster", "C1", "--namesrv", ns)
	if err == nil {
		t.Errorf("group reset --queue 0 --offset 1 --cluster succeeded, want it refused:\n%s", out)
	}
	for i, c := range clients {
		if off, ok, err := c.QueryOffset(ctx, "G", "one", 0); err != nil || !ok || off != 2 {
			t.Errorf("broker %s queue 0: offset %d (%v, %v), want 2 (untouched)", addrs[i], off, ok, err)
		}
	}
}

func TestClusterList(t *testing.T) {
	clearEnv(t)
	ns, addrs := startTestCluster(t)
	var sent admin.SendResult
	runAdmin(t, addrs[1], &sent, "send", "--topic", "counted", "one")

	out, err := run(t, "cluster", "list", "--namesrv", ns, "--json")
	var rows []clusterBroker
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("cluster list: %v\n%s", err, out)
	}
	if len(rows) != 2 || rows[0].Broker != "broker-a" || rows[1].Addr != addrs[1] || rows[1].Cluster != "C1" {
		t.Fatalf("cluster list: %+v, want broker-a and broker-b of C1", rows)
	}
	if rows[0].Runtime["putMessageTimesTotal"] != "0" || rows[1].Runtime["putMessageTimesTotal"] != "1" ||
		!strings.HasPrefix(rows[1].Runtime["brokerVersionDesc"], "halfback ") {
		t.Errorf("runtime figures: %v / %v, want one message stored on broker-b", rows[0].Runtime, rows[1].Runtime)
	}
	if f := strings.Fields(rows[1].Runtime["putTps"]); len(f) != 3 || f[0] == "0.00" {
		t.Errorf("broker-b's putTps %q, want three rates, the first positive", rows[1].Runtime["putTps"])
	}
	out, err = run(t, "cluster", "list", "--namesrv", ns)
	if err != nil || !strings.Contains(out, "broker-b") || !strings.Contains(out, "halfback ") || !strings.Contains(out, "IN/S") {
		t.Errorf("cluster list table: %v\n%s", err, out)
	}
	if got := firstRate(""); got != "-" {
		t.Errorf("firstRate of a broker without the figure = %q, want -", got)
	}
	if _, err := run(t, "cluster", "list", "--namesrv", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "connect to name server") {
		t.Errorf("cluster list against no name server: %v", err)
	}
}

// cluster config shows each master's settings (GET_BROKER_CONFIG), of
// every broker the name server knows or of --broker alone; a broker that
// does not answer fails the command.
func TestClusterConfig(t *testing.T) {
	clearEnv(t)
	ns, addrs := startTestCluster(t)
	out, err := run(t, "cluster", "config", "--namesrv", ns, "--json")
	var rows []brokerConfig
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("cluster config: %v\n%s", err, out)
	}
	if len(rows) != 2 || rows[0].Broker != "broker-a" || rows[1].Addr != addrs[1] || rows[1].Cluster != "C1" ||
		rows[0].Config["brokerName"] != "broker-a" || rows[1].Config["brokerClusterName"] != "C1" ||
		rows[1].Config["flushDiskType"] != "SYNC_FLUSH" {
		t.Fatalf("cluster config: %+v, want the settings of broker-a and broker-b of C1", rows)
	}
	out, err = run(t, "cluster", "config", "--broker", addrs[0])
	if err != nil || !strings.Contains(out, "== "+addrs[0]) || !regexp.MustCompile(`(?m)^brokerName +broker-a$`).MatchString(out) ||
		strings.Contains(out, "broker-b") {
		t.Fatalf("cluster config --broker %s: %v\n%s", addrs[0], err, out)
	}
	if out, err := run(t, "cluster", "config", "--broker", "127.0.0.1:1"); err == nil || !strings.Contains(out, "error: ") {
		t.Fatalf("cluster config of a broker that is not there: %v\n%s", err, out)
	}
}

// routePerm returns the permission broker has for topic in the name
// server's route, and false if the route has no queues of it.
func routePerm(t *testing.T, ns, topic, broker string) (int, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := remoting.Dial(ctx, ns, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}))
	if err != nil {
		t.Fatal(err)
	}
	var rd namesrv.TopicRouteData
	if resp.Code != remoting.RespSuccess || json.Unmarshal(resp.Body, &rd) != nil {
		return 0, false
	}
	for _, q := range rd.QueueDatas {
		if q.BrokerName == broker {
			return q.Perm, true
		}
	}
	return 0, false
}

// cluster wipe-write-perm takes the write permission off a broker group's
// topics in the routes (producers drain from it, consumers still read
// it); add-write-perm gives it back. A broker name no name server routes
// is an error, not "0 topics changed".
func TestClusterWipeAndAddWritePerm(t *testing.T) {
	clearEnv(t)
	ns, addrs := startTestCluster(t)
	var sent admin.SendResult
	runAdmin(t, addrs[0], &sent, "send", "--topic", "drained", "one")
	// Until broker-a registers the topic, the name server answers a route
	// of every broker that may create it (TBW102's): both.
	waitFor(t, 10*time.Second, "drained routed to broker-a alone", func() bool {
		_, a := routePerm(t, ns, "drained", "broker-a")
		_, b := routePerm(t, ns, "drained", "broker-b")
		return a && !b
	})

	out, err := run(t, "cluster", "wipe-write-perm", "broker-a", "--namesrv", ns, "--json")
	var res []admin.WritePermResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("wipe-write-perm: %v\n%s", err, out)
	}
	if len(res) != 1 || res[0].Namesrv != ns || res[0].Topics < 1 || res[0].Error != "" {
		t.Fatalf("wipe-write-perm: %+v, want broker-a's topics changed on %s", res, ns)
	}
	if perm, _ := routePerm(t, ns, "drained", "broker-a"); perm != namesrv.PermRead {
		t.Fatalf("broker-a's perm for drained after the wipe: %d, want read only (%d)", perm, namesrv.PermRead)
	}
	if perm, _ := routePerm(t, ns, "drained", "broker-b"); perm != 0 {
		t.Fatalf("broker-b routes drained (perm %d): the wipe touched another broker", perm)
	}

	out, err = run(t, "cluster", "add-write-perm", "broker-a", "--namesrv", ns)
	if err != nil || !strings.Contains(out, ns) || !strings.Contains(out, "TOPICS CHANGED") {
		t.Fatalf("add-write-perm: %v\n%s", err, out)
	}
	if perm, _ := routePerm(t, ns, "drained", "broker-a"); perm != namesrv.PermRW {
		t.Fatalf("broker-a's perm for drained after add-write-perm: %d, want %d", perm, namesrv.PermRW)
	}

	for args, want := range map[string]string{
		"cluster wipe-write-perm broker-x --namesrv " + ns:          `no name server routes a topic of broker "broker-x"`,
		"cluster add-write-perm broker-a --namesrv 127.0.0.1:1":     "connect to name server",
		"cluster wipe-write-perm broker-a --namesrv " + ns + " two": "accepts 1 arg",
	} {
		if _, err := run(t, strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	if _, err := run(t, "cluster", "wipe-write-perm", "broker a", "--namesrv", ns); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("a broker name with a space: %v, want ErrInvalid", err)
	}
}
