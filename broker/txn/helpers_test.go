package txn

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable clock shared by the store and the service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.UnixMilli(1_800_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is a Checker that records checks and answers reached (or not).
type recorder struct {
	mu      sync.Mutex
	reached bool
	got     []CheckRequest
}

func (r *recorder) Check(req CheckRequest) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	return r.reached
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) last() CheckRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// rig is a store and a service over one directory.
type rig struct {
	t     testing.TB
	dir   string
	clock *clock
	check *recorder
	st    *store.Store
	svc   *Service
	// tune, if set, changes the store's options (fault hooks).
	tune func(*store.Options)
}

var testOpts = Options{Timeout: 6 * time.Second, CheckInterval: 30 * time.Second, CheckMax: 3}

func newRig(t testing.TB) *rig { return newRigWith(t, nil) }

// newRigWith is newRig with the store's options changed by tune.
func newRigWith(t testing.TB, tune func(*store.Options)) *rig {
	r := &rig{t: t, dir: t.TempDir(), clock: newClock(), check: &recorder{reached: true}, tune: tune}
	r.open()
	t.Cleanup(r.close)
	return r
}

// storeOptions are the options the rig opens its store with.
func (r *rig) storeOptions() store.Options {
	so := store.Options{Dir: r.dir + "/store", FlushType: store.SyncFlush, SegmentSize: 1 << 20,
		MaxMessageSize: 64 << 10, Logger: quiet, Now: r.clock.Now}
	if r.tune != nil {
		r.tune(&so)
	}
	return so
}

func (r *rig) open() {
	r.t.Helper()
	st, err := store.Open(r.storeOptions())
	if err != nil {
		r.t.Fatal(err)
	}
	o := testOpts
	o.Dir, o.Checker, o.Now, o.Logger = r.dir+"/txn", r.check, r.clock.Now, quiet
	svc, err := Open(st, o)
	if err != nil {
		st.Close()
		r.t.Fatal(err)
	}
	r.st, r.svc = st, svc
}

func (r *rig) close() {
	if r.svc != nil {
		r.svc.Close()
		r.st.Close()
		r.svc, r.st = nil, nil
	}
}

func (r *rig) reopen() {
	r.close()
	r.open()
}

// half sends a half message to topic "orders" queue 1 with id as UNIQ_KEY.
func (r *rig) half(id string, extra ...string) store.AppendResult {
	r.t.Helper()
	p := message.Properties{message.PropertyUniqKey: id, message.PropertyKeys: "order-" + id,
		message.PropertyTransactionPrepared: "true", message.PropertyProducerGroup: "pg"}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i]] = extra[i+1]
	}
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("body-" + id), Properties: p.Encode(),
		SysFlag: message.TransactionPreparedType}
	res, err := r.svc.SendHalf(context.Background(), m, "")
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *rig) end(res store.AppendResult, o Outcome) (EndResult, error) {
	return r.svc.End(context.Background(), EndRequest{Group: "pg", HalfOffset: res.PhysicalOffset,
		QueueOffset: res.QueueOffset, Outcome: o})
}

// delivered returns the UNIQ_KEYs visible in orders queue 1.
func (r *rig) delivered() []string {
	r.t.Helper()
	_, maxOff := r.st.QueueBounds("orders", 1)
	var ids []string
	for off := int64(0); off < maxOff; {
		g, err := r.st.GetMessages("orders", 1, off, store.GetOptions{MaxMessages: 64})
		if err != nil {
			r.t.Fatal(err)
		}
		exts, err := message.DecodeAll(g.Records)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, e := range exts {
			ids = append(ids, e.Property(message.PropertyUniqKey))
		}
		if g.NextBeginOffset <= off {
			break
		}
		off = g.NextBeginOffset
	}
	return ids
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "tx-" + strconv.Itoa(i)
	}
	return out
}

// waitDelivered waits until orders queue 1 holds n messages and returns
// their UNIQ_KEYs.
func (r *rig) waitDelivered(n int) []string {
	r.t.Helper()
	var got []string
	testutil.WaitFor(r.t, 5*time.Second, "committed messages visible", func() bool {
		got = r.delivered()
		return len(got) >= n
	})
	return got
}

// useUpChecks runs check rounds, an interval apart, until every pending
// transaction's checks are used up and it is parked.
func (r *rig) useUpChecks() {
	for range testOpts.CheckMax + 1 {
		r.clock.Advance(testOpts.CheckInterval)
		r.svc.checkRound()
	}
}
