package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// TestRunGrantsCouponsUntilStopped runs the command against a real name
// server and broker: an OrderPaid event already in the topic gets its
// coupon in the order database the config names, and cancelling the
// context stops the command cleanly.
func TestRunGrantsCouponsUntilStopped(t *testing.T) {
	stack := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	dir := t.TempDir()
	dsn := "file:" + filepath.Join(dir, "orders.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	cfg := filepath.Join(dir, "config.yaml")
	// Not the worker's embedded broker: the consumer asks broker.namesrvAddr.
	body := fmt.Sprintf("store:\n  dataDir: %s\nbroker:\n  namesrvAddr: %s\nworker:\n  embeddedBroker: false\n"+
		"orders:\n  dsn: %q\nlog:\n  level: error\n", dir, stack.NamesrvAddr, dsn)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	p, err := txnbridgetest.NewClient(t, stack.NamesrvAddr).NewProducer(client.ProducerOptions{Group: "test-payer"})
	if err != nil {
		t.Fatal(err)
	}
	event, _ := json.Marshal(workflows.OrderEvent{OrderID: "order-7", User: "ann", Amount: 1999, PaymentID: "pay-7"})
	if _, err := p.Send(context.Background(), &client.Message{Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderPaid,
		Keys: []string{"order-7"}, Body: event}); err != nil {
		t.Fatal(err)
	}

	// The test reads the coupons through its own handle on the file.
	db, err := orders.Open(context.Background(), orders.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", cfg, "--group", "coupon-test"}, io.Discard) }()
	testutil.WaitFor(t, 30*time.Second, "the coupon of order-7", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the consumer stopped early: %v", err)
		default:
		}
		c, err := db.Coupons(context.Background())
		return err == nil && c["order-7"] == 1
	})
	stopRun(t, cancel, done)
}

func TestRunRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"prod.yaml"}, `unexpected argument "prod.yaml"`},
		{[]string{"--config", "/nonexistent.yaml"}, "no such file"},
	} {
		err := run(context.Background(), tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// --help prints the flags and is no error, as the worker's: main would
// otherwise print "flag: help requested" and exit 1.
func TestHelpIsNoError(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out); err != nil || !strings.Contains(out.String(), "-group") {
		t.Fatalf("--help: %v, output %q; want nil and the flags", err, out.String())
	}
}

// The consumer says "ready" (what scripts/demo.sh waits for) only once a
// name server answered; until then it says it is still trying.
func TestReadyOnlyOnceTheNameServerAnswers(t *testing.T) {
	addr := testutil.FreeAddr(t) // no name server there yet
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf("store:\n  dataDir: %s\nbroker:\n  namesrvAddr: %s\nworker:\n  embeddedBroker: false\nlog:\n  level: info\n", dir, addr)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { retryEvery = d }(retryEvery)
	retryEvery = 50 * time.Millisecond
	var logs testutil.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", cfg}, &logs) }()
	testutil.WaitFor(t, 30*time.Second, "a still-trying or a ready line", func() bool {
		return strings.Contains(logs.String(), "still trying") || strings.Contains(logs.String(), "coupon consumer ready")
	})
	if strings.Contains(logs.String(), "coupon consumer ready") {
		t.Fatalf("ready with no name server up; logs:\n%s", logs.String())
	}
	srv, err := namesrv.Open(namesrv.Options{ListenAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	testutil.WaitFor(t, 30*time.Second, "the ready line once the name server is up", func() bool {
		return strings.Contains(logs.String(), `msg="coupon consumer ready"`)
	})
	stopRun(t, cancel, done)
}

// stopRun cancels run's context and waits for it to return nil on done.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
