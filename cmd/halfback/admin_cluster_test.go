package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
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
