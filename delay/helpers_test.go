package delay

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// fakeClock is a controllable clock: After fires only when Advance passes it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_800_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// pending returns how many After channels have not fired yet.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is a store plus a scheduler sharing one clock.
type rig struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	st    *store.Store
	s     *Scheduler
	opts  Options
	async bool // an AsyncFlush store
}

func newRig(t *testing.T, levels string) *rig {
	t.Helper()
	return newRigFlush(t, levels, false)
}

// newRigFlush is newRig over an AsyncFlush store (async) or a SyncFlush one.
func newRigFlush(t *testing.T, levels string, async bool) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), clock: newFakeClock(), async: async}
	r.openStore()
	lv, err := ParseLevels(levels)
	if err != nil {
		t.Fatal(err)
	}
	r.opts = Options{Dir: r.dir + "/delay", Levels: lv, Clock: r.clock, Logger: quiet, BatchSize: 64}
	r.openScheduler()
	return r
}

func (r *rig) openStore() {
	o := store.Options{Dir: r.dir + "/store", FlushType: store.SyncFlush, SegmentSize: 8 << 20,
		MaxMessageSize: 64 << 10, Now: r.clock.Now, Logger: quiet}
	if r.async {
		// Fsynced only when something asks: the interval flush and the
		// store's checkpoint wait an hour.
		o.FlushType, o.FlushInterval, o.CheckpointInterval = store.AsyncFlush, time.Hour, time.Hour
	}
	st, err := store.Open(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = st
}

func (r *rig) openScheduler() {
	s, err := New(r.st, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.s = s
}

func (r *rig) close() {
	r.s.Close()
	r.st.Close()
}

// send prepares and stores a message with the given extra properties.
func (r *rig) send(body string, props message.Properties) store.AppendResult {
	r.t.Helper()
	props[message.PropertyUniqKey] = "ID-" + body
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(body), Properties: props.Encode()}
	if _, err := r.s.Prepare(m); err != nil {
		r.t.Fatalf("Prepare(%s): %v", body, err)
	}
	res, err := r.st.Append(context.Background(), m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.s.Scheduled(m)
	r.settle()
	return res
}

// settle waits until the store has dispatched everything appended.
func (r *rig) settle() {
	r.t.Helper()
	testutil.WaitFor(r.t, 5*time.Second, "the store to dispatch", func() bool {
		return r.st.DispatchedOffset() >= r.st.MaxPhysicalOffset()
	})
}

// step runs one delivery round and waits for the result to be visible.
func (r *rig) step() int {
	r.t.Helper()
	n, _, err := r.s.deliverDue(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	r.settle()
	return n
}

// delivered returns the bodies in the real topic, in queue order.
func (r *rig) delivered() []message.Ext {
	r.t.Helper()
	var out []message.Ext
	for off := int64(0); ; {
		g, err := r.st.GetMessages("orders", 1, off, store.GetOptions{MaxMessages: 64})
		if err != nil {
			r.t.Fatal(err)
		}
		if g.Count == 0 {
			return out
		}
		exts, err := message.DecodeAll(g.Records)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, exts...)
		off = g.NextBeginOffset
	}
}

func bodies(exts []message.Ext) []string {
	var out []string
	for _, e := range exts {
		out = append(out, string(e.Body))
	}
	return out
}

var storeGetAll = store.GetOptions{MaxMessages: 1000}

func openRealStore(dir string, notify func(topic string)) (*store.Store, error) {
	return store.Open(store.Options{Dir: dir + "/store", FlushType: store.SyncFlush, SegmentSize: 8 << 20,
		MaxMessageSize: 64 << 10, Logger: quiet,
		OnDispatch: func(topic string, _ int32, _ int64) { notify(topic) }})
}
