package compat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// fateTxns answers for transactional messages by their body's first
// word: commit and rollback answer so at once, ucommit and urollback
// answer unknown at once and so on a check-back.
type fateTxns struct{}

func (fateTxns) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	switch kind(m.Body) {
	case "commit":
		return primitive.CommitMessageState
	case "rollback":
		return primitive.RollbackMessageState
	}
	return primitive.UnknowState
}

func (fateTxns) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	if strings.HasSuffix(kind(m.Body), "commit") {
		return primitive.CommitMessageState
	}
	return primitive.RollbackMessageState
}

// kind is a body's first word.
func kind(body []byte) string { k, _, _ := strings.Cut(string(body), " "); return k }

// TestOfficialClientDelayTxnRetrySurviveSIGKILL drives the broker process
// with the official Go client while it is SIGKILLed and restarted: delayed
// sends, transactions (ended at once, or by check-back) and messages the
// consumer fails once. Every acknowledged delayed message arrives, none
// before its delay; every committed transaction arrives, no rolled-back
// one; every failed message comes back.
func TestOfficialClientDelayTxnRetrySurviveSIGKILL(t *testing.T) {
	c := startCluster(t) // its name server
	// Only the child serves: a new topic would otherwise have queues on
	// the cluster's broker too, which is never killed (and has other
	// delay levels).
	c.b.Close()
	dir, addr, name := t.TempDir(), testutil.FreeAddr(t), uniq("killed")
	topic := uniq("kill-mix")
	levels, _ := delay.ParseLevels(shortLevels)
	child := startChild(t, dir, addr, c.nsAddr, name, childShortEnv+"=1")
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	p := newProducer(t, c)
	txnGroup := uniq("tpg")
	tp := newTxnProducer(t, c, txnGroup, fateTxns{})
	defer tp.Shutdown()

	// The topic exists before the consumer starts: the official client
	// looks its route up at its start, and then every 30 s. (The group's
	// retry topic, made by its first heartbeat, after that look-up, is
	// found only 30 s later: the retried messages take that long.)
	if r, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("first"))); err != nil || r.Status != primitive.SendOK {
		t.Fatalf("first send: %v %v", r, err)
	}
	got := newReceived()
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	firstAt := map[string]time.Time{}
	pc := newPushConsumer(t, c, uniq("mix"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range ms {
				if kind(m.Body) == "retry" && m.ReconsumeTimes == 0 {
					mu.Lock()
					failedOnce[string(m.Body)] = true
					mu.Unlock()
					return consumer.ConsumeRetryLater, nil
				}
			}
			now := time.Now()
			mu.Lock()
			for _, m := range ms {
				if _, ok := firstAt[string(m.Body)]; !ok {
					firstAt[string(m.Body)] = now
				}
			}
			mu.Unlock()
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()

	var (
		amu      sync.Mutex
		acked    []string
		earliest = map[string]time.Time{}
		attempts int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	send := func(kindOf func(i int) string, do func(ctx context.Context, body string, i int) bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("%s %d", kindOf(i), i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				ok := do(ctx, body, i)
				cancel()
				amu.Lock()
				attempts++
				if ok {
					acked = append(acked, body)
				}
				amu.Unlock()
				if !ok {
					time.Sleep(10 * time.Millisecond) // the broker is down: do not spin
				}
			}
		}()
	}
	send(func(i int) string { return fmt.Sprintf("delay%d", 1+i%5) }, func(ctx context.Context, body string, i int) bool {
		m := primitive.NewMessage(topic, []byte(body))
		m.WithDelayTimeLevel(1 + i%5)
		amu.Lock()
		earliest[body] = time.Now().Add(levels[i%5])
		amu.Unlock()
		r, err := p.SendSync(ctx, m)
		return err == nil && r.Status == primitive.SendOK
	})
	send(func(i int) string { return []string{"commit", "rollback", "ucommit", "urollback"}[i%4] }, func(ctx context.Context, body string, _ int) bool {
		r, err := tp.SendMessageInTransaction(ctx, primitive.NewMessage(topic, []byte(body)))
		return err == nil && r.Status == primitive.SendOK
	})
	send(func(int) string { return "retry" }, func(ctx context.Context, body string, _ int) bool {
		r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
		return err == nil && r.Status == primitive.SendOK
	})
	ackedCount := func() int { amu.Lock(); defer amu.Unlock(); return len(acked) }
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for round := range 2 {
		target := ackedCount() + 50 + rng.IntN(100)
		waitFor(t, 60*time.Second, fmt.Sprintf("round %d: %d acknowledged sends", round, target), func() bool { return ackedCount() >= target })
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		child = startChild(t, dir, addr, c.nsAddr, name, childShortEnv+"=1")
		t.Logf("round %d: SIGKILL after %d acknowledged sends", round, ackedCount())
	}
	target := ackedCount() + 30
	waitFor(t, 60*time.Second, "sends acknowledged after the last restart", func() bool { return ackedCount() >= target })
	close(stop)
	wg.Wait()
	// The client heartbeats its producer group every 30 s; a producer of
	// the group started now is known to the broker at once, and answers
	// the check-backs of what the kills left open.
	tp2 := newTxnProducer(t, c, txnGroup, fateTxns{})
	defer tp2.Shutdown()

	want := []string{"first"}
	for _, b := range acked {
		if k := kind([]byte(b)); !strings.HasSuffix(k, "rollback") {
			want = append(want, b)
		}
	}
	// The retried ones come once the client found the retry topic, up to
	// 40 s after the consumer's start (a route poll, then a rebalance),
	// however soon the rounds above were done.
	waitFor(t, 90*time.Second, fmt.Sprintf("%d acknowledged messages consumed", len(want)), func() bool {
		for _, b := range want {
			if !got.has(b) {
				return false
			}
		}
		return true
	})
	// Rolled-back ones would be visible by now.
	got.mu.Lock()
	defer got.mu.Unlock()
	dups := map[string]int{}
	for b, n := range got.msgs {
		k := kind([]byte(b))
		if strings.HasSuffix(k, "rollback") {
			t.Errorf("rolled-back %q delivered", b)
		}
		if n > 1 {
			dups[strings.TrimRight(k, "012345")] += n - 1
		}
		if e, ok := earliest[b]; ok && firstAt[b].Before(e) {
			t.Errorf("%q delivered %v early", b, e.Sub(firstAt[b]))
		}
	}
	t.Logf("%d sends, %d acknowledged (%d to deliver); %d distinct delivered, duplicates by kind %v",
		attempts, len(acked), len(want), len(got.msgs), dups)
}
