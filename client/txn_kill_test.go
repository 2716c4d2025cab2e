package client

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// The producer process of TestProducerKilledBetweenHalfAndEnd runs this
// test binary again with these set.
const (
	killChildNamesrv = "HALFBACK_CLIENT_KILL_NAMESRV"
	killChildRecords = "HALFBACK_CLIENT_KILL_RECORDS"
	killChildTopic   = "HALFBACK_CLIENT_KILL_TOPIC"
	killGroup        = "kill-pg"
)

func init() {
	if ns := os.Getenv(killChildNamesrv); ns != "" {
		if err := killChild(ns, os.Getenv(killChildRecords), os.Getenv(killChildTopic)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}

// killChild sends six half messages; the local transaction of the even
// ones commits (its transaction id is written and synced to the records
// file, the producer's "database"), the odd ones' fails (nothing
// written). It never ends a transaction: it waits to be killed.
func killChild(ns, records, topic string) error {
	c, err := New(Options{NamesrvAddrs: []string{ns}, Logger: testLogger()})
	if err != nil {
		return err
	}
	p, err := c.NewProducer(ProducerOptions{Group: killGroup})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(records, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for i := range 6 {
		key := fmt.Sprintf("order-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := p.SendHalf(ctx, &Message{Topic: topic, Body: []byte(key), Keys: []string{key}})
		cancel()
		if err != nil {
			return err
		}
		if i%2 == 0 {
			fmt.Fprintln(f, r.TransactionID)
			if err := f.Sync(); err != nil {
				return err
			}
		}
	}
	fmt.Println("ready")
	select {}
}

// A producer process SIGKILLed between SendHalf and EndTransaction: the
// broker checks the group back, a new producer process answers from the
// records the dead one left, and consumers see exactly the transactions
// whose local part committed — only once that answer came.
func TestProducerKilledBetweenHalfAndEnd(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn.Timeout, o.Txn.CheckInterval = 200*time.Millisecond, 200*time.Millisecond
	})
	records := filepath.Join(t.TempDir(), "local-txns")
	topic := uniq("orders")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildNamesrv+"="+cl.ns.Addr(), killChildRecords+"="+records, killChildTopic+"="+topic)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("producer process said %q, want ready", sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// Nobody to ask: the half messages wait, invisible.
	testutil.WaitFor(t, 10*time.Second, "checks that reach nobody", func() bool {
		return cl.b.Transactions().Stats().Unreached >= 6
	})
	if got := cl.stored(t, topic); len(got) != 0 {
		t.Fatalf("%d messages visible before any producer answered", len(got))
	}
	c := newClient(t, cl.ns.Addr(), nil)
	newProducer(t, c, ProducerOptions{Group: killGroup, CheckListener: CheckListenerFunc(
		func(_ context.Context, r *CheckRequest) TransactionState {
			b, err := os.ReadFile(records)
			if err != nil {
				return Unknown // ask again later
			}
			if slices.Contains(strings.Fields(string(b)), r.Receipt.TransactionID) {
				return Commit
			}
			return Rollback // no record: the local transaction never committed
		})})
	testutil.WaitFor(t, 30*time.Second, "every transaction resolved", func() bool {
		return cl.b.Transactions().Stats().Pending == 0
	})
	// Committed messages become visible once dispatched, just after.
	var keys []string
	testutil.WaitFor(t, 10*time.Second, "the committed messages visible", func() bool {
		keys = keys[:0]
		for _, m := range cl.stored(t, topic) {
			keys = append(keys, m.Keys...)
		}
		return len(keys) >= 3
	})
	slices.Sort(keys)
	if want := []string{"order-0", "order-2", "order-4"}; !slices.Equal(keys, want) {
		t.Fatalf("consumers see %v, want %v", keys, want)
	}
	if s := cl.b.Transactions().Stats(); s.CheckCommits != 3 || s.CheckRollbacks != 3 {
		t.Fatalf("stats %+v", s)
	}
}
