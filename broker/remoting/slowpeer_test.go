package remoting

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
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

// A frame the caller's deadline cuts short is finished in the background:
// the caller gets its deadline, the connection stays open, and once the
// peer reads again it gets the whole frame, then the next one, intact.
func TestWriteCutShortByTheDeadlineIsFinished(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resume := make(chan struct{})
	got := make(chan *Command, 2)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		<-resume // not reading until then
		for range 2 {
			cmd, err := Decode(nc, 16<<20)
			if err != nil {
				return
			}
			got <- cmd
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String(), DialOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := NewRequest(ReqHeartBeat, nil)
	big.Body = make([]byte, 8<<20)
	for i := range big.Body {
		big.Body[i] = byte(i)
	}
	// 3 s: encoding 8 MiB alone took 0.2 s on this machine.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	err = c.InvokeOnewayContext(short, big)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unfinished") {
		t.Fatalf("an 8 MiB frame to a peer not reading, with 3 s: %v, want its write cut short by the deadline", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection closed: %v", err)
	}
	close(resume)
	small := NewRequest(ReqHeartBeat, nil)
	small.Body = []byte("after")
	if err := c.InvokeOnewayContext(ctx, small); err != nil {
		t.Fatalf("the next frame: %v", err)
	}
	for i, want := range [][]byte{big.Body, small.Body} {
		select {
		case cmd := <-got:
			if !bytes.Equal(cmd.Body, want) {
				t.Fatalf("frame %d arrived with a %d-byte body, want the %d bytes sent", i, len(cmd.Body), len(want))
			}
		case <-ctx.Done():
			t.Fatalf("frame %d never arrived whole", i)
		}
	}
}
