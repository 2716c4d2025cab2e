package remoting

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestBadInputClosesOnlyThatConnection feeds each kind of bad input on its
// own connection and checks that it gets an error response or a closed
// connection while a healthy client on the same server keeps working.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux(), MaxFrameSize: 1 << 20})
	healthy := dial(t, srv, DialOptions{})
	checkAlive(t, healthy)

	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	good := mustEncode(t, NewRequest(ReqHeartBeat, map[string]string{"k": "v"}))

	// want lists the response codes that must arrive before the close; nil
	// means a plain close. anything accepts whatever random bytes produce.
	cases := []struct {
		name      string
		in        []byte
		halfClose bool   // end the stream after the bytes
		first     []byte // a request sent and answered before in
		want      []int16
		anything  bool
	}{
		{name: "random bytes", in: random, halfClose: true, anything: true},
		{name: "truncated frame", in: good[:len(good)/2], halfClose: true},
		{name: "claims 2 GiB", in: []byte{0x7f, 0xff, 0xff, 0xff}},
		{name: "over MaxFrameSize", in: []byte{0x00, 0x20, 0x00, 0x00, 0, 0, 0, 2}},
		{name: "negative length", in: []byte{0x80, 0, 0, 0}},
		{name: "header length beyond frame", in: []byte{0, 0, 0, 6, 0, 0, 0, 9, '{', '}'}},
		{name: "unknown serialize type", in: []byte{0, 0, 0, 6, 5, 0, 0, 2, '{', '}'}},
		{name: "JSON syntax error", in: jsonFrame(`{"code":34,"opaque":`, "")},
		{name: "JSON bad ext value", in: jsonFrame(`{"code":34,"opaque":5,"flag":0,"extFields":{"a":[1]}}`, ""), want: []int16{RespSystemError}},
		{name: "binary ext overrun", in: binaryFrame(binHeader(0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 'k'), []byte("12345678")), want: []int16{RespSystemError}},
		{name: "too many ext fields (JSON)", in: jsonFrame(extJSON(MaxExtFields+1), ""), want: []int16{RespSystemError}},
		{name: "too many ext fields (binary)", in: extBinary(MaxExtFields + 1), want: []int16{RespSystemError}},
		{name: "bad frame after a good one", first: good, in: []byte{0x7f, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := rawDial(t, srv)
			if tc.first != nil {
				if _, err := nc.Write(tc.first); err != nil {
					t.Fatal(err)
				}
				if resp, err := Decode(nc, 0); err != nil || resp.Code != RespSuccess {
					t.Fatalf("good request: %v, %v", resp, err)
				}
			}
			if _, err := nc.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				_ = nc.(*net.TCPConn).CloseWrite()
			}
			got := readUntilClosed(t, nc)
			if !tc.anything {
				codes := make([]int16, len(got))
				for i, c := range got {
					codes[i] = c.Code
				}
				if !slices.Equal(codes, tc.want) {
					t.Fatalf("responses before the close: %v, want codes %v", got, tc.want)
				}
			}
			checkAlive(t, healthy)
		})
	}
	waitFor(t, 5*time.Second, "only the healthy connection to remain", func() bool { return len(srv.Conns()) == 1 })
}

func TestIdleTimeout(t *testing.T) {
	conns := make(chan *Conn, 1)
	srv := startServer(t, ServerOptions{Handler: echoMux(), IdleTimeout: 100 * time.Millisecond,
		OnConnect: func(c *Conn) { conns <- c }})
	nc := rawDial(t, srv)
	serverSide := <-conns
	if got := readUntilClosed(t, nc); len(got) != 0 {
		t.Fatalf("idle connection got %v", got)
	}
	<-serverSide.Done()
	if !errors.Is(serverSide.Err(), ErrIdleTimeout) {
		t.Fatalf("close reason %v, want ErrIdleTimeout", serverSide.Err())
	}
	// A connection that keeps talking stays open past the timeout. Its
	// server's timeout is long enough that no round trip under -race on a
	// loaded machine spans it (100 ms did: the server closed a connection
	// whose next request was merely late), and the talk lasts two of them.
	const talkingIdle = time.Second
	talking := startServer(t, ServerOptions{Handler: echoMux(), IdleTimeout: talkingIdle})
	c := dial(t, talking, DialOptions{IdleTimeout: -1})
	start := time.Now()
	for time.Since(start) < 2*talkingIdle {
		checkAlive(t, c)
	}
}

// A client that sends half a frame and stalls (slow-loris) is closed once
// IdleTimeout has passed since the frame began, as an idle one is: the
// read deadline covers the whole frame, not each byte.
func TestIdleTimeoutClosesHalfFrame(t *testing.T) {
	conns := make(chan *Conn, 1)
	srv := startServer(t, ServerOptions{Handler: echoMux(), IdleTimeout: 200 * time.Millisecond,
		OnConnect: func(c *Conn) { conns <- c }})
	nc := rawDial(t, srv)
	serverSide := <-conns
	good := mustEncode(t, NewRequest(ReqHeartBeat, map[string]string{"k": "v"}))
	for _, part := range [][]byte{good[:2], good[2 : len(good)/2]} { // inside the prefix, then the header
		if _, err := nc.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if got := readUntilClosed(t, nc); len(got) != 0 {
		t.Fatalf("stalled half frame got %v", got)
	}
	<-serverSide.Done()
	if !errors.Is(serverSide.Err(), ErrIdleTimeout) {
		t.Fatalf("close reason %v, want ErrIdleTimeout", serverSide.Err())
	}
}

// A client that sends requests and never reads its answers holds no
// handler for ever: the first answer that cannot be written within
// WriteTimeout closes the connection, and every handler blocked behind it
// returns.
func TestClientThatNeverReadsIsClosed(t *testing.T) {
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(_ context.Context, _ *Conn, req *Command) *Command {
		resp := NewResponse(req, RespSuccess, "")
		resp.Body = make([]byte, 64<<10)
		return resp
	})
	conns := make(chan *Conn, 1)
	srv := startServer(t, ServerOptions{Handler: mux, WriteTimeout: 200 * time.Millisecond,
		OnConnect: func(c *Conn) { conns <- c }})
	nc := rawDial(t, srv)
	serverSide := <-conns
	frame := mustEncode(t, NewRequest(ReqPullMessage, nil))
	go func() {
		for range 1024 { // 64 MiB of answers: more than any socket buffers
			if _, err := nc.Write(frame); err != nil {
				return
			}
		}
	}()
	select {
	case <-serverSide.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("connection of a client that never reads still open after 20 s (err %v)", serverSide.Err())
	}
	var ne net.Error
	if err := serverSide.Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("close reason %v, want a write timeout", err)
	}
}

// Requests of one connection run concurrently and their answers, finished
// in the reverse order, each reach their own call by opaque, in the
// request's encoding.
func TestConcurrentRequestsAnsweredByOpaque(t *testing.T) {
	const n = 16
	entered := make(chan struct{}, n)
	gates := make([]chan struct{}, n)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(_ context.Context, _ *Conn, req *Command) *Command {
		i, _ := strconv.Atoi(req.Ext("i"))
		entered <- struct{}{}
		<-gates[i]
		resp := NewResponse(req, RespSuccess, req.Ext("i"))
		resp.Body = []byte(req.Ext("i"))
		return resp
	})
	srv := startServer(t, ServerOptions{Handler: mux})
	c := dial(t, srv, DialOptions{})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			req := NewRequest(ReqPullMessage, map[string]string{"i": strconv.Itoa(i)})
			if i%2 == 1 {
				req.SerializeType = SerializeRocketMQ
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.Invoke(ctx, req)
			switch {
			case err != nil:
				errs <- err
			case resp.Remark != strconv.Itoa(i) || string(resp.Body) != strconv.Itoa(i) || resp.SerializeType != req.SerializeType:
				errs <- fmt.Errorf("call %d (%v) got %v", i, req.SerializeType, resp)
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		<-entered // all n in their handlers at once
	}
	for i := n - 1; i >= 0; i-- {
		close(gates[i])
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestSystemBusyWhenInFlightFull(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(context.Context, *Conn, *Command) *Command {
		entered <- struct{}{}
		<-release
		return nil
	})
	srv := startServer(t, ServerOptions{Handler: mux, MaxInFlight: 1})
	c := dial(t, srv, DialOptions{})
	go func() { _ = c.InvokeOneway(NewRequest(ReqPullMessage, nil)) }()
	<-entered
	resp := invoke(t, c, NewRequest(ReqHeartBeat, nil))
	if resp.Code != RespSystemBusy || resp.Remark != overloadRemark {
		t.Fatalf("got %v, want SYSTEM_BUSY", resp)
	}
	close(release)
	waitFor(t, 5*time.Second, "slot to free", func() bool {
		return invoke(t, c, NewRequest(ReqHeartBeat, nil)).Code == RespSuccess
	})
}

func TestHandlerPanicAndOversizedResponse(t *testing.T) {
	mux := echoMux()
	mux.HandleFunc(ReqQueryMessage, func(context.Context, *Conn, *Command) *Command { panic("boom") })
	mux.HandleFunc(ReqPullMessage, func(_ context.Context, _ *Conn, req *Command) *Command {
		resp := NewResponse(req, RespSuccess, "")
		resp.Body = make([]byte, 4096)
		return resp
	})
	srv := startServer(t, ServerOptions{Handler: mux, MaxFrameSize: 1024})
	c := dial(t, srv, DialOptions{})
	if resp := invoke(t, c, NewRequest(ReqQueryMessage, nil)); resp.Code != RespSystemError {
		t.Fatalf("panicking handler: %v", resp)
	}
	if resp := invoke(t, c, NewRequest(ReqPullMessage, nil)); resp.Code != RespSystemError {
		t.Fatalf("oversized response: %v", resp)
	}
	checkAlive(t, c)
}

func TestLaterReplyAndOnClose(t *testing.T) {
	held := make(chan *Command, 1)
	var closed atomic.Int32
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(_ context.Context, _ *Conn, req *Command) *Command {
		held <- req
		return nil // answered later, as a long-polling pull is
	})
	srv := startServer(t, ServerOptions{Handler: mux, OnConnect: func(c *Conn) {
		c.OnClose(func(*Conn) { closed.Add(1) })
	}})
	c := dial(t, srv, DialOptions{})
	respc := make(chan *Command, 1)
	go func() {
		resp, err := c.Invoke(context.Background(), NewRequest(ReqPullMessage, nil))
		if err != nil {
			resp = &Command{Remark: err.Error()}
		}
		respc <- resp
	}()
	req := <-held
	serverSide := srv.Conns()[0]
	if err := serverSide.Reply(req, NewResponse(req, RespPullNotFound, "later")); err != nil {
		t.Fatal(err)
	}
	if resp := <-respc; resp.Code != RespPullNotFound || resp.Remark != "later" {
		t.Fatalf("later reply: %v", resp)
	}
	_ = c.Close()
	<-serverSide.Done()
	if closed.Load() != 1 {
		t.Fatalf("OnClose ran %d times", closed.Load())
	}
	serverSide.OnClose(func(*Conn) { closed.Add(1) }) // registered late: runs at once
	if closed.Load() != 2 {
		t.Fatal("late OnClose did not run")
	}
}

// TestCloseLeavesNoGoroutines runs clients with handlers in flight on
// both sides, closes everything and waits for the goroutine count to fall
// back to where it started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	entered := make(chan struct{}, 8)
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(ctx context.Context, _ *Conn, _ *Command) *Command {
		entered <- struct{}{}
		<-ctx.Done()
		return nil
	})
	srv, err := Listen(ServerOptions{Handler: mux, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var clients []*Conn
	for range 3 {
		c, err := Dial(context.Background(), srv.Addr().String(), DialOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		checkAlive(t, c)
		if err := c.InvokeOneway(NewRequest(ReqPullMessage, nil)); err != nil {
			t.Fatal(err)
		}
		<-entered
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		<-c.Done()
	}
	if _, err := Dial(context.Background(), srv.Addr().String(), DialOptions{}); err == nil {
		t.Fatal("Dial succeeded after Close")
	}
	waitFor(t, 5*time.Second, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]ServerOptions{
		"negative frame":    {MaxFrameSize: -1},
		"frame too small":   {MaxFrameSize: 10},
		"negative inflight": {MaxInFlight: -1},
	} {
		if _, err := Listen(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
