package delay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

func TestLevelsDeliverAtDueTimeInFIFOOrder(t *testing.T) {
	r := newRig(t, "1s 5s")
	defer r.close()
	for i := 0; i < 3; i++ {
		r.send(fmt.Sprintf("five-%d", i), message.Properties{message.PropertyDelayTimeLevel: "2", "traceparent": "00-aa-bb-01"})
	}
	r.send("one", message.Properties{message.PropertyDelayTimeLevel: "1"})

	r.clock.Advance(999 * time.Millisecond)
	if n := r.step(); n != 0 || len(r.delivered()) != 0 {
		t.Fatalf("delivered %d before the 1 s level fell due", n)
	}
	r.clock.Advance(time.Millisecond)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("at 1 s delivered %v, want [one]", got)
	}
	r.clock.Advance(3999 * time.Millisecond)
	if r.step(); len(r.delivered()) != 1 {
		t.Fatal("a 5 s message was delivered before 5 s")
	}
	r.clock.Advance(time.Millisecond)
	r.step()
	got := r.delivered()
	if b := bodies(got); !slices.Equal(b, []string{"one", "five-0", "five-1", "five-2"}) {
		t.Fatalf("delivered %v, want FIFO within the level", b)
	}
	e := got[1]
	if e.Topic != "orders" || e.QueueID != 1 || e.Property(message.PropertyDelayTimeLevel) != "" ||
		e.Property(message.PropertyUniqKey) != "ID-five-0" || e.Property("traceparent") != "00-aa-bb-01" {
		t.Fatalf("delivered message %+v lost or kept the wrong properties", e)
	}
	if due, _ := strconv.ParseInt(e.Property(propTimerOut), 10, 64); e.StoreTimestamp < due {
		t.Fatalf("stored at %d, before its due time %d", e.StoreTimestamp, due)
	}
	st := r.s.Stats()
	if st.Scheduled[1] != 1 || st.Scheduled[2] != 3 || st.Delivered != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTimersDeliverInDueOrderWithLevels(t *testing.T) {
	r := newRig(t, "1s 5s")
	defer r.close()
	now := r.clock.Now()
	r.send("t-3000", message.Properties{message.PropertyTimerDeliverMS: strconv.FormatInt(now.Add(3*time.Second).UnixMilli(), 10)})
	r.send("t-2000", message.Properties{message.PropertyTimerDelayMS: "2000"})
	r.send("t-4000", message.Properties{message.PropertyTimerDelaySec: "4"})
	r.send("lvl-1000", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.send("lvl-5000", message.Properties{message.PropertyDelayTimeLevel: "2"})
	r.send("t-1500", message.Properties{message.PropertyTimerDelayMS: "1500"})

	r.clock.Advance(1999 * time.Millisecond)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"lvl-1000", "t-1500"}) {
		t.Fatalf("at 1.999 s delivered %v", got)
	}
	r.clock.Advance(10 * time.Second)
	r.step()
	want := []string{"lvl-1000", "t-1500", "t-2000", "t-3000", "t-4000", "lvl-5000"}
	if got := bodies(r.delivered()); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want due-time order %v", got, want)
	}
	for _, e := range r.delivered() {
		if e.Property(message.PropertyTimerDeliverMS) != "" || e.Property(message.PropertyTimerDelayMS) != "" {
			t.Fatalf("%s kept a timer property: %q", e.Body, e.Properties)
		}
	}
}

func TestPrepareRejectsBadInputAndStoresNothing(t *testing.T) {
	r := newRig(t, "1s 5s")
	defer r.close()
	far := strconv.FormatInt(r.clock.Now().Add(73*time.Hour).UnixMilli(), 10)
	cases := []struct {
		name  string
		topic string
		props message.Properties
		want  error
	}{
		{"unknown level", "orders", message.Properties{message.PropertyDelayTimeLevel: "abc"}, ErrBadDelay},
		{"negative delay", "orders", message.Properties{message.PropertyTimerDelayMS: "-5"}, ErrBadDelay},
		{"garbage seconds", "orders", message.Properties{message.PropertyTimerDelaySec: "1e3"}, ErrBadDelay},
		{"over maximum", "orders", message.Properties{message.PropertyTimerDeliverMS: far}, ErrBadDelay},
		{"over maximum seconds", "orders", message.Properties{message.PropertyTimerDelaySec: "999999999"}, ErrBadDelay},
		{"schedule topic without real topic", ScheduleTopic, message.Properties{}, ErrNoRealTopic},
		{"timer topic without real topic", TimerTopic, message.Properties{}, ErrNoRealTopic},
		{"schedule queue beyond levels", ScheduleTopic, message.Properties{message.PropertyRealTopic: "orders", message.PropertyRealQueueID: "0"}, ErrBadDelay},
	}
	for _, c := range cases {
		m := &message.Message{Topic: c.topic, QueueID: 7, Properties: c.props.Encode()}
		before := *m
		if _, err := r.s.Prepare(m); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if m.Topic != before.Topic || m.QueueID != before.QueueID || m.Properties != before.Properties {
			t.Errorf("%s: Prepare changed the message on error", c.name)
		}
	}
	if r.st.MaxPhysicalOffset() != 0 {
		t.Fatal("something was stored")
	}
}

func TestPrepareEdges(t *testing.T) {
	r := newRig(t, "1s 5s")
	defer r.close()
	m := &message.Message{Topic: "orders", Properties: message.Properties{message.PropertyDelayTimeLevel: "99"}.Encode()}
	if ok, err := r.s.Prepare(m); !ok || err != nil || m.Topic != ScheduleTopic || m.QueueID != 1 {
		t.Fatalf("level 99: %v %v -> %s/%d, want clamped to level 2 (queue 1)", ok, err, m.Topic, m.QueueID)
	}
	for _, lvl := range []string{"0", "-3"} {
		m := &message.Message{Topic: "orders", Properties: message.Properties{message.PropertyDelayTimeLevel: lvl}.Encode()}
		if ok, err := r.s.Prepare(m); ok || err != nil || m.Topic != "orders" {
			t.Fatalf("level %s: delayed=%v err=%v topic %s; want no delay", lvl, ok, err, m.Topic)
		}
	}
	past := strconv.FormatInt(r.clock.Now().Add(-time.Minute).UnixMilli(), 10)
	m = &message.Message{Topic: "orders", Properties: message.Properties{message.PropertyTimerDeliverMS: past}.Encode()}
	if ok, err := r.s.Prepare(m); ok || err != nil || m.Topic != "orders" || m.Properties != "" {
		t.Fatalf("past delivery time: delayed=%v err=%v %s %q; want immediate", ok, err, m.Topic, m.Properties)
	}
}

func TestRestartResumesWithoutLossOrDuplicates(t *testing.T) {
	r := newRig(t, "1s 5s")
	for i := 0; i < 10; i++ {
		r.send(fmt.Sprintf("a%d", i), message.Properties{message.PropertyDelayTimeLevel: "1"})
		r.send(fmt.Sprintf("t%d", i), message.Properties{message.PropertyTimerDelayMS: strconv.Itoa(1000 + 1000*i)})
	}
	r.clock.Advance(1500 * time.Millisecond) // all a*, t0 due
	r.step()
	if n := len(r.delivered()); n != 11 {
		t.Fatalf("delivered %d before restart, want 11", n)
	}
	r.close() // clean: final checkpoint
	r.openStore()
	r.openScheduler()
	defer r.close()
	r.clock.Advance(20 * time.Second)
	r.step()
	got := bodies(r.delivered())
	if len(got) != 20 {
		t.Fatalf("delivered %d after restart, want 20 exactly once: %v", len(got), got)
	}
}

func TestCrashRedeliversOnlySinceCheckpoint(t *testing.T) {
	r := newRig(t, "1s")
	for i := 0; i < 6; i++ {
		r.send(fmt.Sprintf("m%d", i), message.Properties{message.PropertyTimerDelayMS: strconv.Itoa(1000 * (i + 1))})
	}
	r.clock.Advance(2 * time.Second)
	r.step() // m0, m1
	if err := r.s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Second)
	r.step() // m2, m3: delivered after the checkpoint
	// Crash: no final checkpoint.
	r.s.idx.close()
	r.st.Close()
	r.openStore()
	r.openScheduler()
	defer r.close()
	r.clock.Advance(10 * time.Second)
	r.step()
	got := bodies(r.delivered())
	want := []string{"m0", "m1", "m2", "m3", "m2", "m3", "m4", "m5"}
	if !slices.Equal(got, want) {
		t.Fatalf("after crash delivered %v, want %v (m2, m3 again: delivered after the last checkpoint)", got, want)
	}
}

func TestBurstDrainsInBatches(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	due := strconv.FormatInt(r.clock.Now().Add(time.Second).UnixMilli(), 10)
	const n = 3000
	msgs := make([]*message.Message, 0, n)
	for i := 0; i < n; i++ {
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(strconv.Itoa(i)),
			Properties: message.Properties{message.PropertyTimerDeliverMS: due}.Encode()}
		if _, err := r.s.Prepare(m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if _, err := r.st.AppendBatch(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	r.settle()
	r.clock.Advance(time.Second)
	rounds := 0
	for r.step() > 0 {
		rounds++
	}
	got := r.delivered()
	if len(got) != n {
		t.Fatalf("delivered %d of %d", len(got), n)
	}
	for i, e := range got {
		if string(e.Body) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: same-due messages must keep store order", i, e.Body)
		}
	}
	if rounds > n/(64*8)+1 {
		t.Fatalf("%d rounds for %d messages: the burst was not drained in batches", rounds, n)
	}
}

func TestRunDeliversOnTheRealClock(t *testing.T) {
	dir := t.TempDir()
	var sched *Scheduler
	st, err := openRealStore(dir, func(topic string) {
		if sched != nil {
			sched.Notify(topic)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lv, _ := ParseLevels("50ms")
	sched, err = New(st, Options{Dir: dir + "/delay", Levels: lv, Logger: quiet, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sched.Start()
	defer sched.Close()
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("x"), Properties: message.Properties{message.PropertyDelayTimeLevel: "1"}.Encode()}
	sched.Prepare(m)
	sent := time.Now()
	if _, err := st.Append(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	var g store.GetResult
	testutil.WaitFor(t, 5*time.Second, "the delayed message delivered", func() bool {
		g, _ = st.GetMessages("orders", 1, 0, storeGetAll)
		return g.Count == 1
	})
	e, _ := message.DecodeAll(g.Records)
	if time.UnixMilli(e[0].StoreTimestamp).Before(sent.Add(50*time.Millisecond - time.Millisecond)) {
		t.Fatalf("delivered %v after sending, before the 50 ms level", time.UnixMilli(e[0].StoreTimestamp).Sub(sent))
	}
}

// A timer indexed after the delivery cursor passed its due time (it was
// stored while a backlog was draining) must still be delivered, even when
// a round is cut short by the batch limit.
func TestLateIndexedTimersSurviveTruncatedRounds(t *testing.T) {
	r := newRig(t, "1s")
	r.s.Close()
	r.opts.BatchSize = 2 // a round delivers at most 16
	r.openScheduler()
	defer r.close()
	t0 := r.clock.Now()
	for i := 0; i < 20; i++ {
		r.send(fmt.Sprintf("x%02d", i), message.Properties{message.PropertyTimerDelayMS: "1000"})
	}
	r.clock.Advance(time.Second)
	if n := r.step(); n != 16 {
		t.Fatalf("first round delivered %d, want the 16-message limit", n)
	}
	// Stored late: due half a second before the cursor.
	for i := 0; i < 20; i++ {
		p := message.Properties{
			message.PropertyTimerDeliverMS: strconv.FormatInt(t0.Add(500*time.Millisecond).UnixMilli(), 10),
			message.PropertyRealTopic:      "orders", message.PropertyRealQueueID: "1",
		}
		m := &message.Message{Topic: TimerTopic, Body: []byte(fmt.Sprintf("late%02d", i)), Properties: p.Encode()}
		if _, err := r.st.Append(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	r.settle()
	for r.step() > 0 {
	}
	got := bodies(r.delivered())
	if len(got) != 40 {
		t.Fatalf("delivered %d of 40: %v", len(got), got)
	}
	seen := map[string]bool{}
	for _, b := range got {
		if seen[b] {
			t.Fatalf("%s delivered twice", b)
		}
		seen[b] = true
	}
}

// TestRandomScheduleDeliversEverythingOnce interleaves stores (levels,
// timers, timers stored late as after a backlog) with delivery rounds that
// the batch limit cuts short, and checks that every message is delivered
// exactly once and never before it is due.
func TestRandomScheduleDeliversEverythingOnce(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := newRig(t, "100ms 300ms")
			r.s.Close()
			r.opts.BatchSize = 2 // rounds of at most 16
			r.openScheduler()
			defer r.close()
			rng := rand.New(rand.NewPCG(seed, 9))
			sent := 0
			for step := 0; step < 60; step++ {
				var msgs []*message.Message
				for k := rng.IntN(40); k > 0; k-- {
					id := fmt.Sprintf("m%04d", sent)
					sent++
					now := r.clock.Now()
					p := message.Properties{message.PropertyRealTopic: "orders", message.PropertyRealQueueID: "1"}
					topic, qid := TimerTopic, int32(0)
					switch rng.IntN(3) {
					case 0:
						topic, qid = ScheduleTopic, int32(rng.IntN(2))
						p[message.PropertyDelayTimeLevel] = strconv.Itoa(int(qid) + 1)
					case 1: // due now-ish, on a shared millisecond
						p[message.PropertyTimerDeliverMS] = strconv.FormatInt(now.UnixMilli()-int64(rng.IntN(3)), 10)
					default:
						p[message.PropertyTimerDeliverMS] = strconv.FormatInt(now.UnixMilli()+int64(rng.IntN(200)), 10)
					}
					p["due"] = p[message.PropertyTimerDeliverMS]
					msgs = append(msgs, &message.Message{Topic: topic, QueueID: qid, Body: []byte(id), Properties: p.Encode()})
				}
				if len(msgs) > 0 {
					if _, err := r.st.AppendBatch(t.Context(), msgs); err != nil {
						t.Fatal(err)
					}
					r.settle()
				}
				r.clock.Advance(time.Duration(rng.IntN(30)) * time.Millisecond)
				r.step()
			}
			r.clock.Advance(time.Second)
			for r.step() > 0 {
			}
			got := r.delivered()
			seen := map[string]int{}
			for _, e := range got {
				seen[string(e.Body)]++
				if due, err := strconv.ParseInt(e.Property("due"), 10, 64); err == nil && e.StoreTimestamp < due {
					t.Fatalf("%s stored at %d, before due %d", e.Body, e.StoreTimestamp, due)
				}
			}
			for i := 0; i < sent; i++ {
				if id := fmt.Sprintf("m%04d", i); seen[id] != 1 {
					t.Fatalf("%s delivered %d times (of %d sent)", id, seen[id], sent)
				}
			}
		})
	}
}

// The backlog a start finds due is checkpointed once it is delivered, not
// a CheckpointInterval later: a broker crashing again within the interval
// would deliver the same backlog again on every start (a crash loop).
func TestStartBacklogIsCheckpointedOnceDelivered(t *testing.T) {
	r := newRig(t, "1s")
	for i := range 5 {
		r.send(fmt.Sprintf("m%d", i), message.Properties{message.PropertyDelayTimeLevel: "1"})
	}
	r.s.Close() // as if the broker went down with the messages not yet due
	r.clock.Advance(time.Minute)
	r.openScheduler()
	defer r.close()
	var checkpoints atomic.Int32
	r.s.checkpointed = func(time.Time) { checkpoints.Add(1) }
	r.s.Start()
	testutil.WaitFor(t, 10*time.Second, "the backlog delivered and checkpointed (the clock stands still)", func() bool {
		return len(r.delivered()) == 5 && checkpoints.Load() == 1
	})
}
