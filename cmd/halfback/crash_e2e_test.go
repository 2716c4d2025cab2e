package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// tally records what a consumer group was given, by message id.
type tally struct {
	mu        sync.Mutex
	count     map[string]int
	first     map[string]time.Time   // when each id was first delivered
	times     map[string][]time.Time // the broker's store time of each delivery
	reconsume map[string]int32       // the highest ReconsumeTimes seen per id
	corrupted []string
	// at counts the deliveries of each queue position (a consumer offset
	// that went back delivers one again), and handled is the highest
	// offset delivered per topic queue (recorded before the handler
	// returns, so before its offset is committed).
	at      map[queuePos]int
	handled map[queuePos]int64
}

// queuePos is a message's place: its topic and queue, and its offset
// there (0 in handled's keys).
type queuePos struct {
	topic string
	qid   int32
	off   int64
}

func newTally() *tally {
	return &tally{count: map[string]int{}, first: map[string]time.Time{}, reconsume: map[string]int32{}, times: map[string][]time.Time{},
		at: map[queuePos]int{}, handled: map[queuePos]int64{}}
}

func (ty *tally) record(msgs []*client.MessageExt) {
	now := time.Now()
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for _, m := range msgs {
		ty.at[queuePos{m.Topic, m.QueueID, m.QueueOffset}]++
		if q := (queuePos{topic: m.Topic, qid: m.QueueID}); m.QueueOffset >= ty.handled[q] {
			ty.handled[q] = m.QueueOffset
		}
		id, ok := crashBodyID(m.Body)
		if !ok {
			ty.corrupted = append(ty.corrupted, fmt.Sprintf("%s/%d@%d: %.40q", m.Topic, m.QueueID, m.QueueOffset, m.Body))
			continue
		}
		if ty.count[id] == 0 {
			ty.first[id] = now
		}
		ty.count[id]++
		ty.times[id] = append(ty.times[id], m.StoreTimestamp) // for a delayed message: when the scheduler delivered it
		ty.reconsume[id] = max(ty.reconsume[id], m.ReconsumeTimes)
	}
}

func (ty *tally) handler() client.MessageHandler {
	return func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		ty.record(msgs)
		return client.ConsumeSuccess, nil
	}
}

func (ty *tally) has(id string) bool {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return ty.count[id] > 0
}

// missing returns the ids of want not delivered yet.
func (ty *tally) missing(want []string) []string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	var out []string
	for _, id := range want {
		if ty.count[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// waitAll waits until every id of want was delivered, failing with the
// missing ones.
func (ty *tally) waitAll(t *testing.T, what string, timeout time.Duration, want []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		miss := ty.missing(want)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(miss)
			_, _, bad := ty.figures()
			t.Fatalf("%s: %d of %d acknowledged messages never delivered, e.g. %v (%d corrupted bodies delivered, e.g. %v)",
				what, len(miss), len(want), miss[:min(len(miss), 10)], len(bad), bad[:min(len(bad), 3)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// figures returns how many distinct ids were delivered, how many
// deliveries were duplicates, and the corrupted bodies.
func (ty *tally) figures() (distinct, dups int, corrupted []string) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for _, n := range ty.count {
		distinct++
		dups += n - 1
	}
	return distinct, dups, append([]string(nil), ty.corrupted...)
}

// ctxT returns a context that ends after d or with the test.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newProducer creates a producer of a group of its own unless o names one.
func newProducer(t *testing.T, c *client.Client, o client.ProducerOptions) *client.Producer {
	t.Helper()
	if o.Group == "" {
		o.Group = uniqName("pg")
	}
	p, err := c.NewProducer(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startTallyConsumer starts a clustering consumer of topic in group that
// records into ty, committing offsets every 100 ms.
func startTallyConsumer(t *testing.T, c *client.Client, group, topic string, ty *tally, mod func(*client.ConsumerOptions)) *client.PushConsumer {
	t.Helper()
	o := client.ConsumerOptions{Group: group, PersistInterval: 100 * time.Millisecond, RebalanceInterval: 500 * time.Millisecond,
		LongPollTimeout: time.Second, SuspendInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	pc, err := c.NewPushConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	h := ty.handler()
	if err := pc.Subscribe(topic, "*", h); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// crashSender sends messages from several goroutines until halted, and
// keeps the ids of those acknowledged.
type crashSender struct {
	mu     sync.Mutex
	acked  []string
	sent   int // attempts
	failed int
	stop   chan struct{}
	wg     sync.WaitGroup
	kills  []time.Time // when each SIGKILL was sent
}

// startCrashSender starts workers goroutines that each call send(id) in a
// loop; send returns nil when the broker acknowledged id.
func startCrashSender(workers int, prefix string, send func(ctx context.Context, id string) error) *crashSender {
	s := &crashSender{stop: make(chan struct{})}
	for w := range workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-s.stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := send(ctx, id)
				cancel()
				s.mu.Lock()
				s.sent++
				if err == nil {
					s.acked = append(s.acked, id)
				} else {
					s.failed++
				}
				s.mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the broker is down: do not spin
				}
			}
		}()
	}
	return s
}

func (s *crashSender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *crashSender) halt() {
	close(s.stop)
	s.wg.Wait()
}

func (s *crashSender) counts() (sent, acked, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, len(s.acked), s.failed
}

func (s *crashSender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

// crashRounds runs rounds kill-and-restart rounds of cb, each after a
// random 50 to 150 further acknowledged sends, while s sends.
func crashRounds(t *testing.T, cb *crashBroker, s *crashSender, rounds int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range rounds {
		target := s.ackedCount() + 50 + rng.IntN(100)
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: %d acknowledged sends", round, target),
			func() bool { return s.ackedCount() >= target })
		s.mu.Lock()
		s.kills = append(s.kills, time.Now())
		s.mu.Unlock()
		cb.restart()
		sent, acked, failed := s.counts()
		t.Logf("round %d: SIGKILL after %d sends, %d acknowledged, %d failed", round, sent, acked, failed)
	}
	target := s.ackedCount() + 50
	testutil.WaitFor(t, 30*time.Second, "sends acknowledged after the last restart",
		func() bool { return s.ackedCount() >= target })
	s.halt()
}

// Every send the producer saw SEND_OK for, across SIGKILLs of the broker
// process, is delivered with its body intact to a clustering group that
// consumed through the kills (resuming at or before its committed
// offsets) and to a new group afterwards.
func TestCrashE2ESendOKSurvivesSIGKILL(t *testing.T) {
	testSendOKSurvivesSIGKILL(t, startCrashBroker(t))
}

// The same with small commit-log segments and consume-queue files, so that
// kills fall on their rolls too, and frequent checkpoints.
func TestCrashE2ESendOKSurvivesSIGKILLSmallFiles(t *testing.T) {
	testSendOKSurvivesSIGKILL(t, startCrashBroker(t, "HALFBACK_STORE_SEGMENTSIZE=262144",
		"HALFBACK_STORE_MAXMESSAGESIZE=65536", "HALFBACK_STORE_QUEUEENTRIESPERFILE=64", "HALFBACK_STORE_CHECKPOINTINTERVALMS=20"))
}

func testSendOKSurvivesSIGKILL(t *testing.T, cb *crashBroker) {
	c := cb.client()
	topic := uniqName("crash-send")
	p := newProducer(t, c, client.ProducerOptions{RetryTimes: -1})
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("first")}); err != nil {
		t.Fatal(err)
	}
	live := newTally()
	startTallyConsumer(t, c, uniqName("live"), topic, live, nil)
	s := startCrashSender(4, "m", func(ctx context.Context, id string) error {
		_, err := p.Send(ctx, &client.Message{Topic: topic, Body: crashBody(id)})
		return err
	})
	crashRounds(t, cb, s, 3)
	acked := append(s.ackedIDs(), "first")
	live.waitAll(t, "the group that consumed through the kills", 30*time.Second, acked)
	after := newTally()
	startTallyConsumer(t, c, uniqName("after"), topic, after, nil)
	after.waitAll(t, "a new group", 30*time.Second, acked)
	sent, _, failed := s.counts()
	for _, g := range []struct {
		name string
		ty   *tally
	}{{"live", live}, {"after", after}} {
		distinct, dups, corrupted := g.ty.figures()
		t.Logf("group %s: %d sent, %d acknowledged, %d failed; %d distinct delivered, %d duplicate deliveries",
			g.name, sent+1, len(acked), failed, distinct, dups)
		if len(corrupted) > 0 {
			t.Errorf("group %s: %d corrupted bodies delivered, e.g. %v", g.name, len(corrupted), corrupted[:min(len(corrupted), 5)])
		}
	}
}

// delayOf is the child's delay of level n (crashE2ELevels).
func delayOf(t *testing.T, n int) time.Duration {
	t.Helper()
	fields := strings.Fields(crashE2ELevels)
	d, err := time.ParseDuration(fields[min(n, len(fields))-1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Delay-level messages (and a quarter at an arbitrary time) acknowledged
// before a SIGKILL are delivered after the restart, at least once, and
// none before its delay.
func TestCrashE2EDelayLevelsSurviveSIGKILL(t *testing.T) {
	cb := startCrashBroker(t, "HALFBACK_TELEMETRY_METRICSADDR="+testutil.FreeAddr(t))
	c := cb.client()
	topic := uniqName("crash-delay")
	p := newProducer(t, c, client.ProducerOptions{RetryTimes: -1})
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("first")}); err != nil {
		t.Fatal(err)
	}
	ty := newTally()
	startTallyConsumer(t, c, uniqName("delay"), topic, ty, nil)
	var mu sync.Mutex
	earliest := map[string]time.Time{} // no delivery before this
	s := startCrashSender(4, "d", func(ctx context.Context, id string) error {
		m := &client.Message{Topic: topic, Body: crashBody(id)}
		sum := crashBody(id)[len(id)+1]
		if sum%4 == 0 { // a quarter at an arbitrary time
			m.DeliverAt = time.Now().Add(time.Duration(100+int(sum)*5) * time.Millisecond)
			mu.Lock()
			earliest[id] = m.DeliverAt.Truncate(time.Millisecond) // TIMER_DELIVER_MS
			mu.Unlock()
		} else {
			m.DelayLevel = 1 + int(sum)%5
			mu.Lock()
			earliest[id] = time.Now().Add(delayOf(t, m.DelayLevel))
			mu.Unlock()
		}
		_, err := p.Send(ctx, m)
		return err
	})
	crashRounds(t, cb, s, 3)
	deliveredBefore := cb.metric("halfback_delay_delivered_total")
	acked := s.ackedIDs()
	ty.waitAll(t, "delayed messages", 30*time.Second, acked)
	ty.mu.Lock()
	early := 0
	for id, at := range ty.first {
		mu.Lock()
		e, ok := earliest[id]
		mu.Unlock()
		if ok && at.Before(e) {
			early++
			if early <= 5 {
				t.Errorf("%s delivered %v before its delay was over", id, e.Sub(at))
			}
		}
	}
	ty.mu.Unlock()
	// Which deliveries came again after a kill, and how long before it the
	// first one was.
	ty.mu.Lock()
	hist := map[int]int{}
	var oldest time.Duration
	for id, ts := range ty.times {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		hist[len(ts)]++
		if len(ts) < 2 {
			continue
		}
		for _, k := range s.kills {
			if k.After(ts[0]) && k.Before(ts[1]) {
				oldest = max(oldest, k.Sub(ts[0]))
				if k.Sub(ts[0]) > 3*time.Second {
					t.Logf("%s first delivered %v before a kill, then again", id, k.Sub(ts[0]))
				}
			}
		}
	}
	lastKill := s.kills[len(s.kills)-1]
	after, both := 0, 0
	for _, ts := range ty.times {
		if ts[len(ts)-1].After(lastKill) {
			after++
			if ts[0].Before(lastKill) {
				both++
			}
		}
	}
	ty.mu.Unlock()
	t.Logf("after the last restart the scheduler delivered %d messages again that it had delivered before the kill, and %d for the first time",
		both, after-both)
	t.Logf("deliveries per message: %v; a duplicate's first delivery was at most %v before the kill", hist, oldest)
	sent, _, failed := s.counts()
	distinct, dups, corrupted := ty.figures()
	t.Logf("%d delayed sends, %d acknowledged, %d failed; %d distinct delivered, %d duplicate deliveries, %d early; "+
		"scheduler after the last restart: %v delivered when all had been sent, %v at the end",
		sent, len(acked), failed, distinct, dups, early, deliveredBefore, cb.metric("halfback_delay_delivered_total"))
	if len(corrupted) > 0 {
		t.Errorf("%d corrupted bodies delivered, e.g. %v", len(corrupted), corrupted[:min(len(corrupted), 5)])
	}
}

// txnFate says how the transaction of id ends: committed or rolled back,
// by END_TRANSACTION or left to the check-back.
func txnFate(id string) (commit, byEnd bool) {
	sum := crashBody(id)[len(id)+1]
	return sum%2 == 0, sum%4 < 2
}

// Half messages acknowledged before a SIGKILL are committed or rolled
// back after the restart, by END_TRANSACTION or by the check-back: a
// committed one is delivered (duplicates counted), a rolled-back one never.
func TestCrashE2ETransactionsSurviveSIGKILL(t *testing.T) {
	cb := startCrashBroker(t, "HALFBACK_TELEMETRY_METRICSADDR="+testutil.FreeAddr(t))
	c := cb.client()
	topic := uniqName("crash-txn")
	var checks sync.Map // id -> answers given
	p := newProducer(t, c, client.ProducerOptions{RetryTimes: -1, Group: uniqName("txn-pg"),
		CheckListener: client.CheckListenerFunc(func(_ context.Context, r *client.CheckRequest) client.TransactionState {
			id, ok := crashBodyID(r.Message.Body)
			if !ok {
				t.Errorf("check-back of a corrupted half message %.40q", r.Message.Body)
				return client.Unknown
			}
			n, _ := checks.LoadOrStore(id, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			if commit, _ := txnFate(id); commit {
				return client.Commit
			}
			return client.Rollback
		})})
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("first")}); err != nil {
		t.Fatal(err)
	}
	ty := newTally()
	startTallyConsumer(t, c, uniqName("txn"), topic, ty, nil)
	var mu sync.Mutex
	var ended, endFailed int
	s := startCrashSender(4, "t", func(ctx context.Context, id string) error {
		r, err := p.SendHalf(ctx, &client.Message{Topic: topic, Body: crashBody(id)})
		if err != nil {
			return err
		}
		if commit, byEnd := txnFate(id); byEnd {
			st := client.Rollback
			if commit {
				st = client.Commit
			}
			err := p.EndTransaction(ctx, r, st)
			mu.Lock()
			if err == nil {
				ended++
			} else {
				endFailed++
			}
			mu.Unlock()
		}
		return nil
	})
	crashRounds(t, cb, s, 3)
	var commits []string
	for _, id := range s.ackedIDs() {
		if commit, _ := txnFate(id); commit {
			commits = append(commits, id)
		}
	}
	ty.waitAll(t, "committed transactions", 30*time.Second, commits)
	testutil.WaitFor(t, 30*time.Second, "no half message pending", func() bool {
		return cb.metric("halfback_txn_half_pending") == 0
	})
	// A rolled-back message would be visible by now: the commits are.
	ty.mu.Lock()
	var rolledBackSeen []string
	dups := 0
	for id, n := range ty.count {
		if commit, _ := txnFate(id); !commit && id != "first" {
			rolledBackSeen = append(rolledBackSeen, id)
		}
		dups += n - 1
	}
	ty.mu.Unlock()
	nChecks := 0
	checks.Range(func(_, _ any) bool { nChecks++; return true })
	sent, acked, failed := s.counts()
	mu.Lock()
	t.Logf("%d half sends, %d acknowledged (%d to commit), %d failed; %d END_TRANSACTION acknowledged, %d failed; "+
		"%d transactions checked back; %d distinct delivered, %d duplicate deliveries",
		sent, acked, len(commits), failed, ended, endFailed, nChecks, len(ty.count), dups)
	mu.Unlock()
	if len(rolledBackSeen) > 0 {
		t.Errorf("%d rolled-back messages delivered, e.g. %v", len(rolledBackSeen), rolledBackSeen[:min(len(rolledBackSeen), 5)])
	}
	if dups > 0 {
		t.Errorf("%d committed messages delivered more than once", dups)
	}
}

// Messages a consumer returned ConsumeRetryLater for before a SIGKILL come
// back through the group's retry topic after the restart.
func TestCrashE2ERetriesSurviveSIGKILL(t *testing.T) {
	cb := startCrashBroker(t)
	c := cb.client()
	topic := uniqName("crash-retry")
	p := newProducer(t, c, client.ProducerOptions{})
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	retried := newTally()
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: uniqName("retry"), PersistInterval: 100 * time.Millisecond,
		RebalanceInterval: 500 * time.Millisecond, LongPollTimeout: time.Second, SuspendInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, "*", func(_ context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		m := msgs[0]
		id, ok := crashBodyID(m.Body)
		if ok && m.ReconsumeTimes == 0 {
			mu.Lock()
			failedOnce[id] = true
			mu.Unlock()
			return client.ConsumeRetryLater, nil
		}
		retried.record(msgs)
		return client.ConsumeSuccess, nil
	}); err != nil {
		t.Fatal(err)
	}
	var all []string
	for round := range 3 {
		var ids []string
		for i := range 100 {
			id := fmt.Sprintf("r%d-%d", round, i)
			if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody(id)}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if round == 0 {
			if err := pc.Start(ctxT(t, 30*time.Second)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
		}
		all = append(all, ids...)
		// Kill once the consumer failed them all: their retries wait in
		// the schedule topic (level 3, 1 s).
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: 100 messages failed once", round), func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if !failedOnce[id] {
					return false
				}
			}
			return true
		})
		cb.restart()
	}
	retried.waitAll(t, "retried messages", 30*time.Second, all)
	distinct, dups, corrupted := retried.figures()
	low := 0
	retried.mu.Lock()
	for _, n := range retried.reconsume {
		if n < 1 {
			low++
		}
	}
	retried.mu.Unlock()
	t.Logf("%d sent, all failed once before a SIGKILL; %d distinct came back, %d duplicate deliveries, %d with ReconsumeTimes 0",
		len(all), distinct, dups, low)
	if len(corrupted) > 0 {
		t.Errorf("%d corrupted bodies delivered, e.g. %v", len(corrupted), corrupted[:min(len(corrupted), 5)])
	}
}

// A group whose consumer goes away with the broker (SIGKILL) resumes, in a
// new consumer, at or before its last committed offsets: every message the
// first one had not consumed reaches the second.
func TestCrashE2EOffsetsResumeAfterSIGKILL(t *testing.T) {
	testOffsetsResumeAfterSIGKILL(t, false)
}

// The same with SyncCommit, which promises that a crash delivers again at
// most the handler calls in flight.
func TestCrashE2ESyncCommitOffsetsResumeAfterSIGKILL(t *testing.T) {
	testOffsetsResumeAfterSIGKILL(t, true)
}

func testOffsetsResumeAfterSIGKILL(t *testing.T, syncCommit bool) {
	cb := startCrashBroker(t)
	c := cb.client()
	topic := uniqName("crash-offsets")
	p := newProducer(t, c, client.ProducerOptions{})
	var ids []string
	for i := range 400 {
		id := fmt.Sprintf("o-%d", i)
		if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody(id)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	group := uniqName("offsets")
	seen := newTally()
	total := 0
	redelivered := map[string][]int{} // ids delivered more than once: the rounds that had them again (3: the last consumer)
	for round := range 3 {
		// Each round's consumer has a client of its own, closed after the
		// kill: its last commits reach no broker, as if it crashed too.
		cc := cb.client()
		ty := newTally()
		pc := startTallyConsumer(t, cc, group, topic, ty, func(o *client.ConsumerOptions) { o.Concurrency, o.SyncCommit = 1, syncCommit })
		target := 100 * (round + 1)
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: %d consumed", round, target), func() bool {
			d, _, _ := seen.figures()
			d2 := 0
			ty.mu.Lock()
			for id := range ty.count {
				if !seen.has(id) {
					d2++
				}
			}
			ty.mu.Unlock()
			return d+d2 >= target
		})
		cb.kill()
		pc.Close()
		cc.Close()
		d, dups, _ := ty.figures()
		ty.mu.Lock()
		for id, n := range ty.count {
			seen.mu.Lock()
			if seen.count[id] > 0 || n > 1 {
				redelivered[id] = append(redelivered[id], round)
			}
			seen.count[id] += n
			seen.mu.Unlock()
		}
		ty.mu.Unlock()
		total += d + dups
		cb.start()
	}
	last := newTally()
	cb.logGroupOffsets(group)
	startTallyConsumer(t, c, group, topic, last, func(o *client.ConsumerOptions) { o.SyncCommit = syncCommit })
	var left []string
	for _, id := range ids {
		if !seen.has(id) {
			left = append(left, id)
		}
	}
	last.waitAll(t, "the messages the killed consumers had not consumed", 30*time.Second, left)
	d, dups, _ := last.figures()
	again := 0
	last.mu.Lock() // the consumer still runs: a late redelivery may come
	for id := range last.count {
		if seen.has(id) {
			again++
			redelivered[id] = append(redelivered[id], 3)
		}
	}
	last.mu.Unlock()
	t.Logf("400 sent; consumed %d times before the kills, %d distinct; the last consumer got %d (%d duplicates), %d of them consumed before",
		total, len(seen.count), d+dups, dups, again)
	if syncCommit {
		// Each kill may deliver again what was in its one handler call
		// per queue (Concurrency 1: one call at a time).
		if limit := 3; total-len(seen.count)+again > limit {
			t.Errorf("%d messages delivered again with SyncCommit, want at most %d (one call in flight per kill); "+
				"by the rounds that had them again (3: the last consumer): %v", total-len(seen.count)+again, limit, redelivered)
		}
	}
}

// Receipts of half messages stored before a SIGKILL, some of them ended
// before it, end their transactions after the restart: a commit is
// delivered once, a rollback never, a repeated outcome writes nothing, and
// the other outcome is refused.
func TestCrashE2EEndTransactionAfterSIGKILL(t *testing.T) {
	cb := startCrashBroker(t)
	c := cb.client()
	topic := uniqName("crash-end")
	// No check listener: only END_TRANSACTION ends these transactions.
	p := newProducer(t, c, client.ProducerOptions{})
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("first")}); err != nil {
		t.Fatal(err)
	}
	ty := newTally()
	startTallyConsumer(t, c, uniqName("end"), topic, ty, nil)
	const n = 200
	receipts := make([]client.HalfReceipt, n)
	ids := make([]string, n)
	state := func(i int) client.TransactionState {
		if i%2 == 0 {
			return client.Commit
		}
		return client.Rollback
	}
	for i := range n {
		ids[i] = fmt.Sprintf("e-%d", i)
		r, err := p.SendHalf(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody(ids[i])})
		if err != nil {
			t.Fatal(err)
		}
		receipts[i] = r
		if i < n/2 { // the first half ended before the kill
			if err := p.EndTransaction(ctxT(t, 10*time.Second), r, state(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cb.restart()
	for i := range n {
		if err := p.EndTransaction(ctxT(t, 10*time.Second), receipts[i], state(i)); err != nil {
			t.Fatalf("%s: END_TRANSACTION %v after the restart: %v", ids[i], state(i), err)
		}
	}
	conflicts := 0
	for i := range n {
		other := client.Commit
		if state(i) == client.Commit {
			other = client.Rollback
		}
		if err := p.EndTransaction(ctxT(t, 10*time.Second), receipts[i], other); errors.Is(err, client.ErrTransactionConflict) {
			conflicts++
		} else {
			t.Errorf("%s: END_TRANSACTION %v after %v: %v, want ErrTransactionConflict", ids[i], other, state(i), err)
		}
	}
	var commits []string
	for i := 0; i < n; i += 2 {
		commits = append(commits, ids[i])
	}
	ty.waitAll(t, "committed transactions", 30*time.Second, commits)
	// A second message of the group's: once it is consumed, everything
	// stored before it was dispatched too.
	if _, err := p.Send(ctxT(t, 10*time.Second), &client.Message{Topic: topic, Body: crashBody("last")}); err != nil {
		t.Fatal(err)
	}
	ty.waitAll(t, "a message sent after the transactions", 30*time.Second, []string{"last"})
	distinct, dups, _ := ty.figures()
	bad := 0
	for i := 1; i < n; i += 2 {
		if ty.has(ids[i]) {
			bad++
		}
	}
	t.Logf("%d halves, %d ended before the kill; after it: %d ended again, %d conflicts; %d distinct delivered, %d duplicates, %d rolled back delivered",
		n, n/2, n, conflicts, distinct, dups, bad)
	if bad > 0 || dups > 0 {
		t.Errorf("%d rolled-back messages delivered, %d duplicate deliveries", bad, dups)
	}
}
