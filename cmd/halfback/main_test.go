package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// checkpointFile is the file broker/store writes on Close (RocketMQ's name).
const checkpointFile = "checkpoint"

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// start runs the root command with args in a goroutine and returns its
// output and a channel that receives its result.
func start(ctx context.Context, args ...string) (*testutil.Buffer, <-chan error) {
	out := new(testutil.Buffer)
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return out, done
}

// startReady is start, waiting for the broker's ready line (failing the
// test if the command returns first).
func startReady(t *testing.T, ctx context.Context, args ...string) (*testutil.Buffer, <-chan error) {
	t.Helper()
	out, done := start(ctx, args...)
	waitFor(t, 10*time.Second, "the ready line", func() bool {
		select {
		case err := <-done:
			t.Fatalf("halfback %s returned before it was ready: %v\n%s", strings.Join(args, " "), err, out)
		default:
		}
		return strings.Contains(out.String(), `msg="halfback broker ready"`)
	})
	return out, done
}

// run runs the root command with args to completion.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, done := start(t.Context(), args...)
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(10 * time.Second):
		t.Fatalf("halfback %s did not return", strings.Join(args, " "))
		return "", nil
	}
}

// clearEnv unsets the HALFBACK_* variables the environment may hold, for
// the test: an empty one would be an override to "".
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), config.EnvPrefix+"_") {
			t.Setenv(name, "") // registers the restore
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// smallStoreConfig writes a config file with small files, so the test does
// not create a 1 GiB segment.
func smallStoreConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	body := "store:\n  segmentSize: 8388608\n  queueEntriesPerFile: 1000\n  flushType: SYNC_FLUSH\n" +
		"broker:\n  listenAddr: 127.0.0.1:0\nnamesrv:\n  listenAddr: 127.0.0.1:0\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBrokerRunsUntilCancelled(t *testing.T) {
	clearEnv(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	out, done := startReady(t, ctx, "broker", "--config", smallStoreConfig(t), "--data-dir", dataDir, "--flush", "async")
	ready := out.String()
	if !strings.Contains(ready, "dataDir="+dataDir) || !strings.Contains(ready, "flush=ASYNC_FLUSH") {
		t.Errorf("ready line lacks dataDir=%s or flush=ASYNC_FLUSH (the flag wins over the file):\n%s", dataDir, ready)
	}
	if n := strings.Count(ready, "halfback broker ready"); n != 1 {
		t.Errorf("ready logged %d times, want once", n)
	}
	// It serves the protocol, with its own name server routing to it.
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(ready)
	ns := regexp.MustCompile(`namesrv=(\S+)`).FindStringSubmatch(ready)
	if addr == nil || ns == nil {
		t.Fatalf("ready line lacks addr= or namesrv=:\n%s", ready)
	}
	conn, err := remoting.Dial(ctx, addr[1], remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqGetAllTopicConfig, nil))
	conn.Close()
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("GET_ALL_TOPIC_CONFIG = %v, %v", resp, err)
	}
	nsConn, err := remoting.Dial(ctx, ns[1], remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route, err := nsConn.Invoke(ctx, remoting.NewRequest(remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": "orders"}))
	nsConn.Close()
	if err != nil || route.Code != remoting.RespSuccess || !strings.Contains(string(route.Body), addr[1]) {
		t.Fatalf("embedded name server route for orders = %v %s, %v; want the broker %s", route, route.Body, err, addr[1])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker returned %v after cancel, want nil\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not stop after cancel")
	}
	if !strings.Contains(out.String(), `msg="halfback broker stopped"`) {
		t.Errorf("no stop line:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, checkpointFile)); err != nil {
		t.Errorf("no checkpoint after a clean stop: %v", err)
	}
}

// A data directory written under one store.segmentSize or
// store.queueEntriesPerFile and started under another is refused with an
// error naming the key (the store cannot read it; RocketMQ refuses too).
func TestBrokerRefusesChangedFileSizes(t *testing.T) {
	clearEnv(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(t.Context())
	out, done := startReady(t, ctx, "broker", "--config", smallStoreConfig(t), "--data-dir", dataDir)
	addr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(out.String())
	if addr == nil {
		t.Fatalf("ready line lacks addr=:\n%s", out)
	}
	for i := range 8 { // two in each queue's file
		if sent, err := run(t, "send", "--broker", addr[1], "--topic", "orders", fmt.Sprint("o-", i)); err != nil {
			t.Fatalf("send: %v\n%s", err, sent)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("broker stop: %v", err)
	}
	for _, c := range []struct {
		env []string
		key string
	}{
		// smaller than the 8 MiB segment written (a larger one is taken
		// while the log has one segment), with room for a message
		{[]string{"HALFBACK_STORE_SEGMENTSIZE=6291456", "HALFBACK_STORE_MAXMESSAGESIZE=1048576"}, "store.segmentSize"},
		{[]string{"HALFBACK_STORE_QUEUEENTRIESPERFILE=1"}, "store.queueEntriesPerFile"},
	} {
		for _, kv := range c.env {
			name, value, _ := strings.Cut(kv, "=")
			t.Setenv(name, value)
		}
		_, err := run(t, "broker", "--config", smallStoreConfig(t), "--data-dir", dataDir)
		var ke *config.KeyError
		if !errors.As(err, &ke) || ke.Key != c.key || !errors.Is(err, config.ErrInvalid) ||
			!strings.Contains(err.Error(), "written with") {
			t.Errorf("%s: err = %v, want a config error naming %s, the value the data was written with", c.env, err, c.key)
		}
		for _, kv := range c.env {
			name, _, _ := strings.Cut(kv, "=")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestBrokerRejectsBadFlush(t *testing.T) {
	clearEnv(t)
	_, err := run(t, "broker", "--config", "", "--data-dir", t.TempDir(), "--flush", "bogus")
	if err == nil || !strings.Contains(err.Error(), "flush") || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v, want an ErrInvalid naming --flush", err)
	}
}

// --data-dir "" is the flag's fault: the error names it and the key it
// overrides, as namesrv's --listen does.
func TestBrokerRejectsEmptyDataDir(t *testing.T) {
	clearEnv(t)
	_, err := run(t, "broker", "--config", "", "--data-dir", "")
	if err == nil || !strings.Contains(err.Error(), `--data-dir ""`) || !strings.Contains(err.Error(), "store.dataDir") || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v, want an ErrInvalid naming --data-dir and the key it overrides", err)
	}
}

func TestBrokerRejectsBadConfig(t *testing.T) {
	clearEnv(t)
	t.Setenv("HALFBACK_STORE_FLUSHTYPE", "sometimes")
	_, err := run(t, "broker", "--config", "", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "store.flushType") {
		t.Fatalf("err = %v, want one naming store.flushType", err)
	}
}

func TestExplicitConfigMustExist(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := run(t, "broker", "--config", missing, "--data-dir", t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist for an explicit --config", err)
	}
}

func TestDefaultConfigMayBeMissing(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir()) // no config.yaml here
	cmd := newRootCmd()
	broker, _, err := cmd.Find([]string{"broker"})
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(broker)
	if err != nil {
		t.Fatalf("loadConfig without config.yaml: %v", err)
	}
	if cfg.Store.FlushType != "SYNC_FLUSH" {
		t.Errorf("flush type %q, want the default SYNC_FLUSH", cfg.Store.FlushType)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "halfback ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestUnknownFlag(t *testing.T) {
	_, err := run(t, "broker", "--no-such-flag")
	if err == nil || !strings.Contains(err.Error(), "--help") {
		t.Fatalf("err = %v, want an unknown-flag error pointing at --help", err)
	}
}
