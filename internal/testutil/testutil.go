package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 2 * time.Millisecond

// WaitFor polls cond every PollInterval until it holds, and fails the test
// naming what it waited for if timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(PollInterval)
	}
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago,
// for a server (a child process, say) that must listen on an address
// known before it starts and kept across its restarts. The port is below
// the system's ephemeral range when that is known (Linux), so that no
// outgoing connection and no ":0" listener of another test or process
// takes it as its own between this call and the server's bind, or while
// a killed server is down: on a busy machine that happened (the child's
// "bind: address already in use"). One process never gets the same port
// twice (two servers started one after the other would race for it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	if lo, ok := ephemeralLow(); ok && lo > fixedPortFloor+1000 {
		for range 200 {
			port := fixedPortFloor + rand.IntN(lo-fixedPortFloor)
			if _, dup := handedOut.LoadOrStore(port, true); dup {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				addr := l.Addr().String()
				l.Close()
				return addr
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// handedOut holds the ports FreeAddr has returned (or found taken) in
// this process.
var handedOut sync.Map

// fixedPortFloor is the lowest port FreeAddr hands out from outside the
// ephemeral range: clear of the well-known and most registered services'.
const fixedPortFloor = 20000

// ephemeralLow is the first port of the system's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), if it can tell.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
}
