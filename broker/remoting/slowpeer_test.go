package remoting

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// A peer that accepts and never reads: Invoke's ctx bounds the call, also
// while the frame write is blocked on the full socket (a client's
// RequestTimeout does not stretch to WriteTimeout).
func TestInvokeHonoursCtxWhenPeerDoesNotRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		accepted <- nc // never read
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String(), DialOptions{Logger: quiet, WriteTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc := <-accepted
	defer nc.Close()

	body := make([]byte, 4<<20)
	for i := range 6 {
		req := NewRequest(ReqHeartBeat, nil)
		req.Body = body
		ictx, icancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		began := time.Now()
		_, err := c.Invoke(ictx, req)
		icancel()
		took := time.Since(began)
		if err == nil {
			t.Fatalf("invoke %d answered by a peer that never reads", i)
		}
		if took > 2*time.Second {
			t.Fatalf("Invoke with a 200ms context returned after %v (err %v): the blocked write ignores ctx", took.Round(time.Millisecond), err)
		}
		if c.Err() != nil {
			break
		}
	}
}

// An Invoke whose context has already expired fails with that context's
// error and leaves the (healthy, shared) connection open: nothing was
// written, so no frame is torn. (A write deadline in the past failed the
// Write at once, and the connection was closed under every other call in
// flight on it.)
func TestExpiredInvokeKeepsTheConnection(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	c := dial(t, srv, DialOptions{})
	for i := range 64 {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		_, err := c.Invoke(ctx, NewRequest(ReqHeartBeat, nil))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("invoke %d with an expired ctx: %v", i, err)
		}
		if cerr := c.Err(); cerr != nil {
			t.Fatalf("invoke %d with an expired ctx (nothing written) closed the healthy connection: %v", i, cerr)
		}
	}
	checkAlive(t, c)
}
