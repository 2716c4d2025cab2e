package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// mixedKind says what the mixed crash test does with id: a plain send, a
// delay-level send, or a transaction (txnFate says how it ends). It
// hashes id on its own, so that it does not decide the fate too.
func mixedKind(id string) string {
	switch sha256.Sum256([]byte("kind " + id))[0] % 4 {
	case 0:
		return "delay"
	case 1:
		return "txn"
	default:
		return "plain"
	}
}

// Every kind of state the broker keeps beside its commit log, exercised
// at once while its process is SIGKILLed at random moments: plain,
// delay-level and transactional sends acknowledged before a kill are
// delivered after the restart (a rolled-back one never); a transaction
// whose END_TRANSACTION was acknowledged before a kill is never checked
// back after it; and a SyncCommit group that consumed through the kills
// never has a committed offset past what it handled, nor gets a queue
// position again beyond the one call in flight at each kill.
func TestCrashE2EMixedStateSurvivesSIGKILL(t *testing.T) {
	cb := startCrashBroker(t, "HALFBACK_TELEMETRY_METRICSADDR="+testutil.FreeAddr(t))
	c := cb.client()
	topic := uniqName("crash-mixed")
	group := uniqName("mixed")
	var mu sync.Mutex
	endedAt := map[string]time.Time{} // id -> when its END_TRANSACTION was acknowledged
	var restartedAt time.Time         // when the last restart was ready
	var resurrected []string
	p := newProducer(t, c, client.ProducerOptions{RetryTimes: -1, Group: uniqName("mixed-pg"),
		CheckListener: client.CheckListenerFunc(func(_ context.Context, r *client.CheckRequest) client.TransactionState {
			id, ok := crashBodyID(r.Message.Body)
			if !ok {
				t.Errorf("check-back of a corrupted half message %.40q", r.Message.Body)
				return client.Unknown
			}
			mu.Lock()
			if at, ok := endedAt[id]; ok && at.Before(restartedAt) {
				resurrected = append(resurrected, id)
			}
			mu.Unlock()
			if commit, _ := txnFate(id); commit {
				return client.Commit
			}
			return client.Rollback
		})})
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("first")}); err != nil {
		t.Fatal(err)
	}

	ty := newTally()
	cb.logGroupOffsets(group)
	startTallyConsumer(t, c, group, topic, ty, func(o *client.ConsumerOptions) { o.Concurrency, o.SyncCommit = 1, true })

	// checkOffsets fails the test if a committed offset of the group is
	// past what its handler returned from (the commit follows the return),
	// or below atLeast's offset for its queue.
	checkOffsets := func(when string, atLeast map[queuePos]int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ac, err := admin.Dial(ctx, cb.addr)
		if err != nil {
			t.Errorf("%s: offsets not checked: %v", when, err)
			return
		}
		defer ac.Close()
		qs, err := ac.GroupOffsets(ctx, group)
		if err != nil {
			t.Errorf("%s: offsets not checked: %v", when, err)
			return
		}
		ty.mu.Lock()
		defer ty.mu.Unlock()
		committed := map[queuePos]int64{} // a queue the answer leaves out has none
		for _, q := range qs {
			if q.Topic == topic {
				committed[queuePos{topic: q.Topic, qid: q.QueueID}] = q.ConsumerOffset
			}
		}
		for k, low := range atLeast {
			if off := committed[k]; off < low {
				t.Errorf("%s: queue %d: committed offset %d went back below %d, the highest offset handled (and committed, "+
					"but for the one call in flight) before the kill", when, k.qid, off, low)
			}
		}
		for _, q := range qs {
			if q.Topic != topic {
				continue
			}
			k := queuePos{topic: q.Topic, qid: q.QueueID}
			if off, ok := ty.handled[k]; q.ConsumerOffset > 0 && (!ok || q.ConsumerOffset > off+1) {
				t.Errorf("%s: queue %d: committed offset %d is past the %d handled (highest %d, known %v)",
					when, q.QueueID, q.ConsumerOffset, off+1, off, ok)
			}
		}
	}

	s := startCrashSender(4, "x", func(ctx context.Context, id string) error {
		m := &client.Message{Topic: topic, Body: crashBody(id)}
		switch mixedKind(id) {
		case "delay":
			m.DelayLevel = 1 + int(crashBody(id)[len(id)+1])%3
		case "txn":
			r, err := p.SendHalf(ctx, m)
			if err != nil {
				return err
			}
			if commit, byEnd := txnFate(id); byEnd {
				st := client.Rollback
				if commit {
					st = client.Commit
				}
				if p.EndTransaction(ctx, r, st) == nil {
					mu.Lock()
					endedAt[id] = time.Now()
					mu.Unlock()
				}
			}
			return nil
		}
		_, err := p.Send(ctx, m)
		return err
	})
	// Lives of 0.1 s to about 1.5 s: kills fall before and after the
	// scheduler's and the transactions' checkpoints (1 s).
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	rounds := 5
	for round := range rounds {
		target := s.ackedCount() + 40 + rng.IntN(1000)
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: %d acknowledged sends", round, target),
			func() bool { return s.ackedCount() >= target })
		checkOffsets(fmt.Sprintf("round %d, before the kill", round), nil)
		s.mu.Lock()
		s.kills = append(s.kills, time.Now())
		s.mu.Unlock()
		cb.kill()
		// SyncCommit: every call but the one in flight had its offset
		// on disk before the next call began.
		ty.mu.Lock()
		handled := maps.Clone(ty.handled)
		ty.mu.Unlock()
		cb.start()
		mu.Lock()
		restartedAt = time.Now()
		mu.Unlock()
		checkOffsets(fmt.Sprintf("round %d, after the restart", round), handled)
	}
	target := s.ackedCount() + 40
	testutil.WaitFor(t, 30*time.Second, "sends acknowledged after the last restart",
		func() bool { return s.ackedCount() >= target })
	s.halt()

	acked := append(s.ackedIDs(), "first")
	var want, rolledBack []string
	for _, id := range acked {
		if id != "first" && mixedKind(id) == "txn" {
			if commit, _ := txnFate(id); !commit {
				rolledBack = append(rolledBack, id)
				continue
			}
		}
		want = append(want, id)
	}
	ty.waitAll(t, "acknowledged plain, delayed and committed messages", 30*time.Second, want)
	testutil.WaitFor(t, 30*time.Second, "no half message pending", func() bool {
		return cb.metric("halfback_txn_half_pending") == 0
	})
	// One more plain message: once it is consumed, everything stored
	// before it was too.
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("last")}); err != nil {
		t.Fatal(err)
	}
	ty.waitAll(t, "a message sent after the others", 30*time.Second, []string{"last"})
	checkOffsets("at the end", nil)

	for _, id := range rolledBack {
		if ty.has(id) {
			t.Errorf("rolled-back transaction %s delivered", id)
		}
	}
	mu.Lock()
	if len(resurrected) > 0 {
		t.Errorf("%d transactions ended before a kill were checked back after it, e.g. %v", len(resurrected), resurrected[:min(len(resurrected), 5)])
	}
	nEnded := len(endedAt)
	mu.Unlock()
	ty.mu.Lock()
	again := 0
	for _, n := range ty.at {
		again += n - 1
	}
	dupsBy := map[string]int{}
	for id, n := range ty.count {
		if n > 1 && id != "first" && id != "last" {
			dupsBy[mixedKind(id)] += n - 1
			if mixedKind(id) == "txn" {
				t.Errorf("committed transaction %s delivered %d times", id, n)
			}
		}
	}
	// A delayed message may be delivered again only after a kill, and
	// only if the delivery before was within the scheduler's checkpoint
	// interval (1 s; 3 s allowed for a slow machine) before that kill.
	hist := map[int]int{}
	var worst time.Duration
	for id, ts := range ty.times { // the broker's store time of each delivery
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		hist[len(ts)]++
		for i := 1; i < len(ts); i++ {
			j := slices.IndexFunc(s.kills, func(k time.Time) bool { return k.After(ts[i-1]) && k.Before(ts[i]) })
			if j < 0 {
				t.Errorf("%s (%s) delivered again with no kill between: %v (kills %v)", id, mixedKind(id), ts, s.kills)
				continue
			}
			before := s.kills[j].Sub(ts[i-1])
			worst = max(worst, before)
			if before > 3*time.Second {
				t.Errorf("%s (%s) delivered %v before a kill, then again", id, mixedKind(id), before)
			}
		}
	}
	ty.mu.Unlock()
	t.Logf("duplicate deliveries by kind: %v; deliveries per id: %v; a delivery repeated after a kill was at most %v before it", dupsBy, hist, worst)
	sent, _, failed := s.counts()
	distinct, dups, corrupted := ty.figures()
	t.Logf("%d sends, %d acknowledged (%d rolled back), %d failed, %d END_TRANSACTION acknowledged; "+
		"%d distinct delivered, %d duplicate ids, %d queue positions delivered again", sent, len(acked), len(rolledBack), failed, nEnded,
		distinct, dups, again)
	if len(corrupted) > 0 {
		t.Errorf("%d corrupted bodies delivered, e.g. %v", len(corrupted), corrupted[:min(len(corrupted), 5)])
	}
	// SyncCommit with Concurrency 1: each kill may deliver again the one
	// call in flight (a batch of one message).
	if again > rounds {
		t.Errorf("%d queue positions delivered again to a SyncCommit group over %d kills, want at most %d", again, rounds, rounds)
	}
}
