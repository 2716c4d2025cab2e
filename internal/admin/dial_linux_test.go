package admin

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// blackhole returns a loopback address whose SYNs the kernel drops: a
// listening socket with a zero backlog that never accepts, its queue
// filled, as a broker host that is down or firewalled (no RST) looks.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	for range 4 { // fill the accept queue
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Close(c) })
		if err := syscall.SetNonblock(c, true); err != nil {
			t.Fatal(err)
		}
		_ = syscall.Connect(c, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// Every admin command dials with cmd.Context(), which has no deadline:
// DefaultTimeout bounds the connect too, so a broker host that does not
// answer fails the command after it rather than after the kernel's SYN
// retries (over 2 minutes on Linux).
func TestDialIsBoundedWithoutADeadline(t *testing.T) {
	addr := blackhole(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := Dial(context.Background(), addr)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("Dial of a blackholed address succeeded")
		}
		t.Logf("Dial failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(DefaultTimeout + 5*time.Second):
		t.Fatalf("Dial of a broker that does not answer still running after %v; want it to fail within DefaultTimeout (%v)",
			DefaultTimeout+5*time.Second, DefaultTimeout)
	}
}
