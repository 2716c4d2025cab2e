package remoting

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The server's handlers hold at most MaxInFlightBytes of request frames
// over all its connections: a connection whose next request would pass it
// is not read until calls return, so a producer pipelining large sends
// cannot make the broker hold more than that (each connection alone may
// have MaxInFlight calls of up to MaxFrameSize).
func TestMaxInFlightBytesHoldsReadingUntilCallsReturn(t *testing.T) {
	const frame = 400 << 10
	release := make(chan struct{})
	var arrived atomic.Int32
	mux := echoMux()
	mux.HandleFunc(ReqSendMessage, func(_ context.Context, _ *Conn, req *Command) *Command {
		arrived.Add(1)
		<-release
		return NewResponse(req, RespSuccess, "")
	})
	waits := make(chan struct{}, 8)
	testHookBudgetWait = func() { waits <- struct{}{} }
	t.Cleanup(func() { testHookBudgetWait = nil })
	srv := startServer(t, ServerOptions{Handler: mux, MaxFrameSize: 512 << 10, MaxInFlightBytes: 1 << 20})
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()

	a, b := dial(t, srv, DialOptions{}), dial(t, srv, DialOptions{})
	send := func(c *Conn) chan error {
		done := make(chan error, 1)
		go func() {
			req := NewRequest(ReqSendMessage, nil)
			req.Body = make([]byte, frame)
			_, err := c.Invoke(context.Background(), req)
			done <- err
		}()
		return done
	}
	first, second := send(a), send(b)
	waitFor(t, 5*time.Second, "two calls in handlers", func() bool { return arrived.Load() == 2 })
	third := send(a) // 1.2 MiB with the other two: waits
	select {
	case <-waits:
	case <-time.After(5 * time.Second):
		t.Fatal("the third request was not held at MaxInFlightBytes")
	}
	if n := arrived.Load(); n != 2 {
		t.Fatalf("%d calls in handlers, want 2 while the third waits for room", n)
	}
	release <- struct{}{} // one call returns: the third is read
	waitFor(t, 5*time.Second, "the third call in its handler", func() bool { return arrived.Load() == 3 })
	stop()
	for i, done := range []chan error{first, second, third} {
		if err := <-done; err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	checkAlive(t, b)
}

func TestMaxInFlightBytesBelowMaxFrameSizeIsRefused(t *testing.T) {
	for _, o := range []ServerOptions{
		{MaxInFlightBytes: -1},
		{MaxFrameSize: 1 << 20, MaxInFlightBytes: 1<<20 - 1},
		{MaxInFlightBytes: DefaultMaxFrameSize - 1},
	} {
		if _, err := Listen(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Listen(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

// A handler that calls its peer (the broker pushing a reply message to the
// requesting client, PUSH_REPLY_MESSAGE_TO_CLIENT, and waiting for its
// answer) holds its request's bytes until the peer answers. The answer is a
// response frame: it must be read even when a request waits for room
// before it, or the two wait for each other (the waiting request for the
// handler's bytes, the handler for the answer behind that request).
func TestMaxInFlightBytesResponsesToServerCallsAreRead(t *testing.T) {
	const limit = 64 << 10
	waits := make(chan struct{}, 8)
	testHookBudgetWait = func() { waits <- struct{}{} }
	t.Cleanup(func() { testHookBudgetWait = nil })
	mux := echoMux()
	mux.HandleFunc(ReqSendReplyMessage, func(ctx context.Context, c *Conn, req *Command) *Command {
		// As handleReply: push to the requester and wait for its answer.
		resp, err := c.Invoke(ctx, NewRequest(ReqPushReplyMessageToClient, nil))
		if err != nil {
			return NewResponse(req, RespSystemError, err.Error())
		}
		return NewResponse(req, resp.Code, "")
	})
	srv := startServer(t, ServerOptions{Handler: mux, MaxFrameSize: limit, MaxInFlightBytes: limit})

	pushed := make(chan struct{})
	answer := make(chan struct{})
	client := NewMux()
	client.HandleFunc(ReqPushReplyMessageToClient, func(_ context.Context, _ *Conn, req *Command) *Command {
		close(pushed)
		<-answer
		return NewResponse(req, RespSuccess, "")
	})
	a := dial(t, srv, DialOptions{Handler: client})
	b := dial(t, srv, DialOptions{})

	replied := make(chan *Command, 1)
	go func() {
		resp, err := a.Invoke(context.Background(), NewRequest(ReqSendReplyMessage, nil))
		if err != nil {
			resp = NewResponse(NewRequest(0, nil), RespSystemError, err.Error())
		}
		replied <- resp
	}()
	<-pushed // the server's handler holds its request and waits for a's answer
	// A request of the whole budget waits for the handler's bytes.
	big := NewRequest(ReqSendMessage, nil)
	big.Body = make([]byte, limit-len(mustEncode(t, big))) // a frame of exactly the budget
	go func() { _, _ = b.Invoke(context.Background(), big) }()
	<-waits
	close(answer)
	select {
	case resp := <-replied:
		if resp.Code != RespSuccess {
			t.Fatalf("reply push answered %d %q", resp.Code, resp.Remark)
		}
	case <-waits:
		// a's answer waits for room behind b's request, which waits for
		// the handler that waits for a's answer.
		_ = a.Close()
		_ = b.Close()
		t.Fatal("the answer to the server's own call waits for MaxInFlightBytes: the handler waiting for it never returns")
	}
}

// A frame up to MaxFrameSize can always be read: with MaxFrameSize past
// DefaultMaxInFlightBytes and no MaxInFlightBytes, the budget must still
// hold one frame, or reading it waits for room that never comes (nothing
// else is in flight) and the connection hangs, past its idle timeout too.
func TestMaxInFlightBytesDefaultHoldsMaxFrameSize(t *testing.T) {
	waits := make(chan struct{}, 8)
	testHookBudgetWait = func() { waits <- struct{}{} }
	t.Cleanup(func() { testHookBudgetWait = nil })
	srv := startServer(t, ServerOptions{Handler: echoMux(), MaxFrameSize: DefaultMaxInFlightBytes + 16<<20})
	nc := rawDial(t, srv)
	// A frame of DefaultMaxInFlightBytes + 8 MiB whose header word names
	// no serialize type: Decode refuses it after 8 bytes.
	var frame [8]byte
	binary.BigEndian.PutUint32(frame[:4], DefaultMaxInFlightBytes+8<<20)
	binary.BigEndian.PutUint32(frame[4:], 9<<24)
	if _, err := nc.Write(frame[:]); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, nc)
	}()
	select {
	case <-closed: // read, refused, closed
	case <-waits:
		_ = nc.Close()
		<-closed
		t.Fatal("a frame within MaxFrameSize waits for room in an empty MaxInFlightBytes budget")
	}
}
