package delay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// A level message whose stored
// properties are within the record limit grows on delivery (DELAY removed,
// TIMER_OUT_MS added). If the grown copy is over the limit, the scheduler
// must not stop delivering every other delayed message.
func TestDeliveryGrowthDoesNotJamScheduler(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	// The largest padding whose scheduled form the store accepts.
	pad := 0
	for n := message.MaxPropertiesLength; n > 0; n-- {
		p := message.Properties{message.PropertyDelayTimeLevel: "1", message.PropertyUniqKey: "ID-big", "pad": strings.Repeat("x", n)}
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("big"), Properties: p.Encode()}
		if _, err := r.s.Prepare(m); err != nil {
			t.Fatal(err)
		}
		if _, err := message.SealableRecordSize(m); err == nil {
			pad = n
			break
		}
	}
	r.send("big", message.Properties{message.PropertyDelayTimeLevel: "1", "pad": strings.Repeat("x", pad)})
	r.send("small", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.clock.Advance(time.Second)
	lastErr := deliverRounds(r, 3)
	got := bodies(r.delivered())
	if !slices.Contains(got, "small") {
		t.Fatalf("after 3 rounds delivered %v; the other delayed message is stuck behind the grown one (round error: %v)", got, lastErr)
	}
}

// A TIMER_DELAY_MS so large that it exceeds
// the maximum delay must be refused, never wrapped into a past (or random)
// delivery time.
func TestTimerDelayMsOverflow(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	for _, v := range []string{"9223372036855", "18446744073710"} { // ~292 and ~584 years
		m := &message.Message{Topic: "orders", QueueID: 1, Properties: message.Properties{message.PropertyTimerDelayMS: v}.Encode()}
		delayed, err := r.s.Prepare(m)
		if !errors.Is(err, ErrBadDelay) {
			t.Errorf("TIMER_DELAY_MS=%s: delayed=%v err=%v topic=%s props=%q; want ErrBadDelay (over the %v maximum)",
				v, delayed, err, m.Topic, m.Properties, r.s.opts.MaxDelay)
		}
	}
}

// RocketMQ treats DELAY <= 0 as "no delay
// level" and then honours the timer properties (HookUtils.checkIfTimerMessage
// only skips the timer when getDelayTimeLevel() > 0).
func TestZeroLevelWithTimer(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	for _, lvl := range []string{"0", "-1"} {
		m := &message.Message{Topic: "orders", QueueID: 1,
			Properties: message.Properties{message.PropertyDelayTimeLevel: lvl, message.PropertyTimerDelaySec: "10"}.Encode()}
		delayed, err := r.s.Prepare(m)
		if err != nil || !delayed || m.Topic != TimerTopic {
			t.Errorf("DELAY=%s TIMER_DELAY_SEC=10: delayed=%v err=%v topic=%s; want a timer message due in 10 s", lvl, delayed, err, m.Topic)
		}
	}
}

// RocketMQ reads TIMER_DELAY_SEC first,
// then TIMER_DELAY_MS, then TIMER_DELIVER_MS (HookUtils.transformTimerMessage).
func TestTimerPropertyPrecedence(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	now := r.clock.Now()
	m := &message.Message{Topic: "orders", QueueID: 1, Properties: message.Properties{
		message.PropertyTimerDeliverMS: strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10),
		message.PropertyTimerDelaySec:  "10",
	}.Encode()}
	if _, err := r.s.Prepare(m); err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.ParseInt(mustProp(m.Properties, message.PropertyTimerDeliverMS), 10, 64)
	if want := now.Add(10 * time.Second).UnixMilli(); got != want {
		t.Fatalf("TIMER_DELIVER_MS=now+1h and TIMER_DELAY_SEC=10: due %v after now, want 10s (RocketMQ's precedence)",
			time.UnixMilli(got).Sub(now))
	}
}

func mustProp(props, name string) string {
	v, _ := message.Property(props, name)
	return v
}

// A level in days that overflows a
// time.Duration must be a start-up error, not a wrapped duration.
func TestParseLevelsDayOverflow(t *testing.T) {
	for _, s := range []string{"106752d", "213504d"} {
		if lv, err := ParseLevels(s); err == nil {
			t.Errorf("ParseLevels(%q) = %v, nil; want an error (overflows a duration)", s, lv)
		}
	}
}

// Restarting with fewer delay
// levels than messages were scheduled with leaves the messages of the
// dropped levels undelivered, with neither an error from New nor delivery.
func TestFewerLevelsStrandsScheduledMessages(t *testing.T) {
	r := newRig(t, "1s 5s")
	r.send("level2", message.Properties{message.PropertyDelayTimeLevel: "2"})
	r.close()
	r.openStore()
	lv, _ := ParseLevels("1s")
	r.opts.Levels = lv
	s, err := New(r.st, r.opts)
	if err != nil {
		r.st.Close()
		return // a clear start-up error is a fine answer
	}
	r.s = s
	defer r.close()
	r.clock.Advance(time.Hour)
	r.step()
	if got := bodies(r.delivered()); len(got) != 1 {
		t.Fatalf("restarted with 1 level: New succeeded but the level-2 message is never delivered (delivered %v)", got)
	}
}

// A delayed message stored under one MaxMessageSize and due after a
// restart with a smaller one is refused by the store on delivery: it is
// dropped (and logged), and the delayed messages behind it are delivered
// (they were stuck behind it for good).
func TestLoweredMaxMessageSizeDoesNotJamDelivery(t *testing.T) {
	r := newRig(t, "1s")
	big := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(strings.Repeat("x", 40<<10)),
		Properties: message.Properties{message.PropertyDelayTimeLevel: "1"}.Encode()}
	if _, err := r.s.Prepare(big); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	r.send("small", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.close()
	st, err := store.Open(store.Options{Dir: r.dir + "/store", FlushType: store.SyncFlush, SegmentSize: 8 << 20,
		MaxMessageSize: 32 << 10, Now: r.clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r.st = st
	r.openScheduler()
	defer r.close()
	r.clock.Advance(time.Second)
	lastErr := deliverRounds(r, 3)
	got := bodies(r.delivered())
	if !slices.Contains(got, "small") {
		t.Fatalf("delivered %d messages; the small one is stuck behind the big one (round error: %v)", len(got), lastErr)
	}
	// The big one is dropped, and not counted as written to its topic.
	if d := r.s.Stats().Delivered; d != uint64(len(got)) {
		t.Fatalf("%d messages written to the real topic (%v), Stats.Delivered = %d", len(got), got, d)
	}
}

// Shortening the delay levels after every message of the dropped levels was
// delivered is accepted, also on the next restart: the progress file keeps
// the dropped levels' cursors (it kept only the configured ones, and the
// second restart found the delivered messages from offset 0 and refused).
func TestShortenedLevelsSurviveASecondRestart(t *testing.T) {
	r := newRig(t, "1s 5s")
	r.send("level2", message.Properties{message.PropertyDelayTimeLevel: "2"})
	r.clock.Advance(10 * time.Second)
	r.step()
	if got := bodies(r.delivered()); len(got) != 1 {
		t.Fatalf("delivered %v, want the level-2 message", got)
	}
	r.close()
	lv, _ := ParseLevels("1s")
	r.opts.Levels = lv
	for i := 1; i <= 2; i++ {
		r.openStore()
		s, err := New(r.st, r.opts)
		if err != nil {
			r.st.Close()
			t.Fatalf("restart %d with 1 level, every level-2 message delivered: %v", i, err)
		}
		r.s = s
		r.close()
	}
}

// deliverRounds runs n delivery rounds, settling each, and returns the
// last round's error.
func deliverRounds(r *rig, n int) error {
	var last error
	for range n {
		if _, _, err := r.s.deliverDue(context.Background()); err != nil {
			last = err
		}
		r.settle()
	}
	return last
}

// RocketMQ fixes a level message's due time when it is stored (the
// schedule queue's tag code is its store time plus the level's delay then,
// ScheduleMessageService.computeDeliverTimestamp), and delivers one due
// later than now plus its level's current delay at once
// (correctDeliverTimestamp). So a level lengthened between restarts does
// not hold back what was scheduled before, and one shortened does not keep
// new messages behind the old ones.
func TestLevelDelayIsTheOneWhenStored(t *testing.T) {
	r := newRig(t, "1s 5s")
	r.send("old", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.close()
	r.openStore()
	r.opts.Levels, _ = ParseLevels("1h 5s") // level 1 lengthened
	r.openScheduler()
	r.send("new", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.clock.Advance(2 * time.Second)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("2 s after the sends, level 1 lengthened from 1s to 1h on a restart between them: delivered %v, want [old] (scheduled for 1 s)", got)
	}
	for _, e := range r.delivered() {
		if e.Properties != "UNIQ_KEY\x01ID-old\x02REAL_TOPIC\x01orders\x02REAL_QID\x011\x02TIMER_OUT_MS\x01"+
			strconv.FormatInt(r.clock.Now().Add(-time.Second).UnixMilli(), 10)+"\x02" {
			t.Errorf("delivered properties %q: only the real topic, queue and due time may be added", e.Properties)
		}
	}
	r.clock.Advance(time.Hour)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"old", "new"}) {
		t.Fatalf("an hour later delivered %v, want [old new]", got)
	}

	r.send("long", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.close()
	r.openStore()
	r.opts.Levels, _ = ParseLevels("1s 5s") // shortened again
	r.openScheduler()
	defer r.close()
	r.send("short", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.clock.Advance(time.Second)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"old", "new", "long", "short"}) {
		t.Fatalf("level 1 shortened from 1h to 1s: 1 s later delivered %v; want long (due later than now + 1 s) at once and short behind it", got)
	}
}

// RocketMQ's correctDeliverTimestamp is checked each time the schedule
// looks at a level message: one read ahead of its due time before the
// clock stepped back is due at once as well, not only one read after
// (else it, and the whole level behind it, waits out the step).
func TestLevelMessageReadBeforeTheClockStepsBackIsDueAtOnce(t *testing.T) {
	r := newRig(t, "1h")
	defer r.close()
	r.send("a", message.Properties{message.PropertyDelayTimeLevel: "1"})
	if n := r.step(); n != 0 { // a read ahead, due in an hour
		t.Fatalf("delivered %d at once, want a held for its hour", n)
	}
	r.clock.Advance(-2 * time.Hour) // NTP steps the clock back
	r.send("b", message.Properties{message.PropertyDelayTimeLevel: "1"})
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the clock stepped back 2 h delivered %v, want [a] (due later than now + its level's 1 h)", got)
	}
	r.clock.Advance(time.Hour)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("an hour later delivered %v, want [a b]", got)
	}
}

// hookClock is the rig's clock for the scheduler, which runs hook (once
// armed) right after the Now that reads it: between a delivery round's
// reading of the clock and its reads of the level queues.
type hookClock struct {
	*fakeClock
	armed atomic.Bool
	hook  func()
}

func (c *hookClock) Now() time.Time {
	t := c.fakeClock.Now()
	if c.armed.CompareAndSwap(true, false) {
		c.hook()
	}
	return t
}

// A level message stored while a delivery round runs, after the round read
// the clock, has a store time later than that reading. RocketMQ's
// correction (due later than its level's delay from now: due now) must
// not take it for one whose level was shortened: it was delivered at once,
// its whole delay early (a SIGKILL test over the protocol saw one 608 ms
// early).
func TestLevelMessageStoredDuringARoundKeepsItsDelay(t *testing.T) {
	r := newRig(t, "1s")
	defer r.close()
	hc := &hookClock{fakeClock: r.clock}
	hc.hook = func() {
		r.clock.Advance(time.Millisecond) // the producer's store comes later
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("late"),
			Properties: message.Properties{message.PropertyDelayTimeLevel: "1", message.PropertyUniqKey: "ID-late"}.Encode()}
		if _, err := r.s.Prepare(m); err != nil {
			t.Error(err)
		}
		if _, err := r.st.Append(context.Background(), m); err != nil {
			t.Error(err)
		}
		r.settle()
	}
	r.s.Close()
	r.opts.Clock = hc
	r.openScheduler()
	hc.armed.Store(true)
	if n := r.step(); n != 0 || hc.armed.Load() {
		t.Fatalf("delivered %d in the round the message was stored in (hook run: %v), want 0: it is due in 1 s", n, !hc.armed.Load())
	}
	r.clock.Advance(999 * time.Millisecond)
	if n := r.step(); n != 0 {
		t.Fatalf("delivered %d 1 ms before its 1 s were over, want 0", n)
	}
	r.clock.Advance(time.Millisecond)
	r.step()
	if got := bodies(r.delivered()); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("delivered %v once its 1 s were over, want [late]", got)
	}
}
