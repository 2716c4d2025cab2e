package lifecycle

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, clk *fakeClock) *Recorder {
	t.Helper()
	r, err := Open(Options{Dir: t.TempDir(), Retention: time.Hour, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRecordLookupInOrder(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := open(t, clk)
	tid := "4bf92f3577b34da6a3ce929d0e0e4736"
	r.Record(Event{MsgID: "m1", Kind: HalfStored, Keys: "order-42 user-7", TraceID: tid})
	clk.add(time.Second)
	r.Record(Event{MsgID: "m1", Kind: CheckedBack, Check: 1})
	r.Record(Event{MsgID: "m1", Kind: Committed, From: FromCheck, Check: 1}) // same time: kept in record order
	clk.add(time.Second)
	r.Record(Event{MsgID: "m2", Kind: Stored, Keys: "order-42"})
	r.Record(Event{Kind: Stored}) // no id: ignored
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	for q, wantIDs := range map[string][]string{"m1": {"m1"}, "user-7": {"m1"}, "order-42": {"m1", "m2"}, tid: {"m1"}, "nope": nil} {
		msgs, err := r.Lookup(q, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.MsgID)
		}
		if len(ids) != len(wantIDs) || (len(ids) > 0 && (ids[0] != wantIDs[0] || ids[len(ids)-1] != wantIDs[len(wantIDs)-1])) {
			t.Fatalf("Lookup(%q) = %v, want %v", q, ids, wantIDs)
		}
	}
	msgs, _ := r.Lookup("m1", 0)
	if ev := msgs[0].Events; len(ev) != 3 || ev[0].Kind != HalfStored || ev[1].Kind != CheckedBack || ev[2].Kind != Committed ||
		!ev[1].Time.After(ev[0].Time) {
		t.Fatalf("events of m1: %+v", ev)
	}
}

func TestExpire(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := open(t, clk)
	r.Record(Event{MsgID: "old", Kind: Stored, Keys: "k"})
	r.Sync()
	clk.add(50 * time.Minute)
	r.Record(Event{MsgID: "new", Kind: Stored, Keys: "k"})
	r.Sync()
	clk.add(20 * time.Minute) // "old" is 70 min old, "new" 20 min
	if err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := r.Lookup("old", 0); len(msgs) != 0 {
		t.Fatalf("expired message still there: %+v", msgs)
	}
	msgs, _ := r.Lookup("k", 0)
	if len(msgs) != 1 || msgs[0].MsgID != "new" {
		t.Fatalf("by key after expiry: %+v", msgs)
	}
}

func TestRecordAfterCloseIsDropped(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r.Record(Event{MsgID: "m", Kind: Stored})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r.Record(Event{MsgID: "m", Kind: Delivered}) // no panic
	if err := r.Sync(); err != ErrClosed {
		t.Fatalf("Sync after Close: %v", err)
	}
	var nilRec *Recorder
	nilRec.Record(Event{MsgID: "m"})

	// Reopened, the history holds what was recorded before Close only.
	r, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	msgs, err := r.Lookup("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || len(msgs[0].Events) != 1 || msgs[0].Events[0].Kind != Stored {
		t.Fatalf("history after reopening: %+v, want the one stored event", msgs)
	}
}

func TestTraceIDOf(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"garbage": "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "",
	} {
		if got := TraceIDOf(in); got != want {
			t.Errorf("TraceIDOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEventsSurviveAProcessCrash checks that recorded events reach the
// files within SyncInterval: Pebble keeps unsynced writes in the process
// until its log block fills, so without the periodic sync a killed broker
// lost every event since it started. The files are copied while the
// Recorder runs, which is what a killed process leaves behind.
func TestEventsSurviveAProcessCrash(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(Options{Dir: dir, SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Record(Event{MsgID: "m1", Kind: Stored, Keys: "order-1"})
	if err := r.Sync(); err != nil { // written (not yet synced)
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		found := func() bool {
			copyDir := filepath.Join(t.TempDir(), "copy")
			if err := os.CopyFS(copyDir, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(copyDir, "LOCK"))
			c, err := Open(Options{Dir: copyDir})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msgs, err := c.Lookup("order-1", 0)
			if err != nil {
				t.Fatal(err)
			}
			return len(msgs) == 1
		}()
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d copies in 10 s the files still hold no event recorded before", n+1)
		}
	}
}

// While Paused reports true (the broker's disk is full) events are
// dropped and counted, and nothing is written; afterwards they are
// recorded again.
func TestRecordPaused(t *testing.T) {
	var paused atomic.Bool
	r, err := Open(Options{Dir: t.TempDir(), Paused: paused.Load})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	paused.Store(true)
	r.Record(Event{MsgID: "m1", Kind: Stored})
	paused.Store(false)
	r.Record(Event{MsgID: "m2", Kind: Stored})
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := r.Dropped(); got != 1 {
		t.Fatalf("Dropped() = %d, want 1", got)
	}
	for id, want := range map[string]int{"m1": 0, "m2": 1} {
		if msgs, err := r.Lookup(id, 0); err != nil || len(msgs) != want {
			t.Fatalf("Lookup(%s) = %d messages, %v; want %d", id, len(msgs), err, want)
		}
	}
}

// TestExpireABatch checks that the events one write batch holds, and
// their secondary keys, expire together, while a key a later batch wrote
// again stays with the later message.
func TestExpireABatch(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := open(t, clk)
	var batch []*item
	for i := range 50 {
		id := "m" + strconv.Itoa(i)
		batch = append(batch, &item{ev: Event{MsgID: id, Time: clk.now(), Kind: Stored, Keys: "shared k" + id,
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}})
	}
	r.write(batch) // the writer goroutine's call, made here so that all 50 share one batch
	clk.add(50 * time.Minute)
	r.Record(Event{MsgID: "late", Kind: Stored, Keys: "shared"})
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	clk.add(20 * time.Minute) // the batch is 70 min old, "late" 20 min
	if err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"m0", "m49", "km7", "4bf92f3577b34da6a3ce929d0e0e4736"} {
		if msgs, err := r.Lookup(q, 0); err != nil || len(msgs) != 0 {
			t.Fatalf("Lookup(%q) after the batch expired: %+v, %v", q, msgs, err)
		}
	}
	if msgs, _ := r.Lookup("shared", 0); len(msgs) != 1 || msgs[0].MsgID != "late" {
		t.Fatalf("Lookup(shared) after the batch expired: %+v, want only late", msgs)
	}
	left := 0
	if err := r.scan([]byte{prefixExpiry}, func(_, _ []byte) bool { left++; return true }); err != nil {
		t.Fatal(err)
	}
	if left != 1 {
		t.Fatalf("%d expiry entries left, want 1 (late's batch)", left)
	}
}
