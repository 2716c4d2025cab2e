package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// `halfback broker` with its embedded name server on a namesrv.listenAddr
// other than the default registers there only (broker.namesrvAddr is not
// read). The commands that go through the name server of the same config,
// `cluster list`, `--cluster` and `halfback mirror`, must find it there
// too, as the worker does, rather than ask broker.namesrvAddr's default
// 127.0.0.1:9876, where nothing (or another cluster) answers.
func TestCommandsFindTheEmbeddedNamesrvOnItsListenAddr(t *testing.T) {
	clearEnv(t)
	kafka := startKafka(t, "events-v1")
	cluster := uniqName("embedded-ns")
	path := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf("store:\n  segmentSize: 8388608\n  queueEntriesPerFile: 1000\n"+
		"broker:\n  listenAddr: %s\n  clusterName: %s\nnamesrv:\n  listenAddr: %s\n"+
		"mirror:\n  kafka:\n    brokers: %s\n    topics: events=events-v1\n",
		testutil.FreeAddr(t), cluster, testutil.FreeAddr(t), kafka)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	bout, bdone := start(ctx, "broker", "--config", path, "--data-dir", filepath.Join(t.TempDir(), "data"))
	waitFor(t, 10*time.Second, "the broker", func() bool { return strings.Contains(bout.String(), "halfback broker ready") })

	out, err := run(t, "cluster", "list", "--config", path, "--json")
	var rows []clusterBroker
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Cluster != cluster {
		t.Errorf("cluster list: %v\n%s\nwant the broker of cluster %s", err, out, cluster)
	}
	out, err = run(t, "topic", "list", "--cluster", cluster, "--config", path, "--json")
	var res []clusterResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].Error != "" {
		t.Errorf("topic list --cluster %s: %v\n%s", cluster, err, out)
	}

	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	mout, mdone := start(mctx, "mirror", "--config", path)
	waitFor(t, 15*time.Second, "the mirror ready or failed", func() bool {
		select {
		case err := <-mdone:
			t.Fatalf("mirror: %v\n%s", err, mout)
		default:
		}
		return strings.Contains(mout.String(), "halfback mirror ready")
	})
	if out, err := run(t, "send", "--config", path, "--topic", "events", "e1"); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if recs := readKafka(t, kafka, "events-v1", 1); string(recs[0].Value) != "e1" {
		t.Errorf("kafka record %q, want e1", recs[0].Value)
	}
	var st mirrorStatus
	waitFor(t, 15*time.Second, "mirror status with no lag", func() bool {
		out, err := run(t, "mirror", "status", "--config", path, "--json")
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Lag == 0 && len(st.Topics) == 1 && len(st.Topics[0].Queues) > 0
	})

	for _, p := range []struct {
		name   string
		cancel context.CancelFunc
		done   <-chan error
	}{{"mirror", mcancel, mdone}, {"broker", cancel, bdone}} {
		p.cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s returned %v", p.name, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop", p.name)
		}
	}
}

// --cluster against a name server no broker has registered with (a
// standalone one whose brokers point elsewhere, say) says so, rather than
// ending on "knows " and nothing.
func TestClusterUnknownToAnEmptyNamesrv(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr := testutil.FreeAddr(t)
	out, done := start(ctx, "namesrv", "--config", "", "--listen", addr)
	waitFor(t, 10*time.Second, "the name server", func() bool { return strings.Contains(out.String(), "halfback namesrv ready") })
	_, err := run(t, "topic", "list", "--cluster", "C1", "--namesrv", addr)
	if err == nil || !strings.Contains(err.Error(), "knows no cluster") {
		t.Errorf("topic list --cluster C1 against an empty name server: %v, want it to say the name server knows no cluster", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("namesrv returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("namesrv did not stop")
	}
}
