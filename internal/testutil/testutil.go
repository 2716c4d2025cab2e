package testutil

import (
	"net"
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
// known before it starts and kept across its restarts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
