package testutil

import (
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, 5*time.Second, "three polls", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("polled %d times, want 3", n.Load())
	}
}

func TestWaitForFailsAfterTheTimeout(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(ft, 20*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("WaitFor did not fail after its timeout")
	}
}

// fakeT records Fatalf instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}

// FreeAddr's port is free, and outside the ephemeral range where the
// system says what that is, so that no outgoing connection takes it.
func TestFreeAddrIsFreeAndNotEphemeral(t *testing.T) {
	lo, known := ephemeralLow()
	for range 20 {
		addr := FreeAddr(t)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which is taken: %v", addr, err)
		}
		l.Close()
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); known && (p >= lo || p < fixedPortFloor) {
			t.Fatalf("FreeAddr gave port %d, want one in [%d, %d) (below the ephemeral range)", p, fixedPortFloor, lo)
		}
	}
}

// FreeAddr never hands the same port out twice in one process: two
// servers started one after the other would otherwise race for it (their
// ports are bound only later).
func TestFreeAddrNeverRepeatsAPort(t *testing.T) {
	seen := make(map[string]bool)
	for i := range 3000 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("call %d returned %s again", i+1, addr)
		}
		seen[addr] = true
	}
}
