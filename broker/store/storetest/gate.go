package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// FlushGateTimeout is the SyncFlushTimeout FlushGate.Tune sets: short,
// so that a held append times out quickly.
const FlushGateTimeout = 200 * time.Millisecond

// FlushGate holds a store's writer right after an fsync (through
// store.Options.OnFlush) while it is shut: appends queued behind it stay
// in memory, unwritten, and their sync flush times out.
type FlushGate struct {
	shut atomic.Pointer[chan struct{}]
	held chan struct{}
}

// NewFlushGate returns an open gate; Tune attaches it to a store.
func NewFlushGate() *FlushGate { return &FlushGate{held: make(chan struct{}, 1)} }

// Tune sets o's OnFlush to the gate and its SyncFlushTimeout to
// FlushGateTimeout.
func (g *FlushGate) Tune(o *store.Options) {
	o.SyncFlushTimeout = FlushGateTimeout
	o.OnFlush = func(time.Duration) {
		if c := g.shut.Load(); c != nil {
			select {
			case g.held <- struct{}{}:
			default:
			}
			<-*c
		}
	}
}

// Hold shuts the gate and returns once the writer of st (opened with
// Tune) is held after another append's fsync; open lets it go, and runs
// at the test's end too.
func (g *FlushGate) Hold(t testing.TB, st *store.Store) (open func()) {
	t.Helper()
	c := make(chan struct{})
	g.shut.Store(&c)
	var once sync.Once
	open = func() {
		once.Do(func() {
			g.shut.Store(nil)
			close(c)
		})
	}
	t.Cleanup(open)
	go st.Append(context.Background(), &message.Message{Topic: "other", Body: []byte("x")})
	select {
	case <-g.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the store's writer never flushed")
	}
	return open
}
