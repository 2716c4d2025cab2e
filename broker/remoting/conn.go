package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Conn is one remoting connection, on either side: [Listen]'s server
// accepts them and [Dial] opens them. A Conn reads frames on its own
// goroutine, hands requests to its Handler, matches responses to
// [Conn.Invoke] calls by opaque, and serializes writes. All methods are
// safe for concurrent use.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	cfg    connConfig
	ctx    context.Context // cancelled on close; handlers get it
	cancel context.CancelFunc
	sem    chan struct{} // one slot per handler call in flight
	wslot  chan struct{} // one slot: held while a frame is written
	idle   chan call     // handler goroutines waiting for a request (worker)

	mu       sync.Mutex
	pending  map[int32]chan result // Invoke calls awaiting a response
	closed   bool
	reason   error
	onClose  []func(*Conn)
	finished bool // read loop and handlers done; callbacks ran

	handlers sync.WaitGroup // handler calls and worker goroutines
	done     chan struct{}
}

type result struct {
	cmd *Command
	err error
}

func newConn(parent context.Context, nc net.Conn, cfg connConfig) *Conn {
	ctx, cancel := context.WithCancel(parent)
	return &Conn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 32<<10),
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, cfg.maxInFlight),
		wslot:   make(chan struct{}, 1),
		idle:    make(chan call),
		pending: make(map[int32]chan result),
		done:    make(chan struct{}),
	}
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns this side's address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Close closes the connection. Calls in flight fail with ErrConnClosed and
// handlers' contexts are cancelled. Close does not wait; see [Conn.Done].
// It may be called from a handler, and more than once.
func (c *Conn) Close() error {
	c.closeWith(ErrConnClosed)
	return nil
}

// Done is closed once the connection is closed, its read loop, every
// handler call and every handler goroutine have returned, and the OnClose
// callbacks have run.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then why it closed:
// ErrConnClosed after Close, ErrServerClosed after Server.Close,
// ErrIdleTimeout, io.EOF when the peer hung up, a [*DecodeError] for bad
// input, or a network error.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// OnClose registers f to be called once the connection has closed and no
// handler call for it is running any more, so state f removes cannot be
// re-added by a late request. Callbacks run in registration order on the
// connection's goroutine; f registered after that has happened runs at once.
func (c *Conn) OnClose(f func(*Conn)) {
	c.mu.Lock()
	if !c.finished {
		c.onClose = append(c.onClose, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.runCallback(f)
}

// closeWith closes the connection once, recording reason.
func (c *Conn) closeWith(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.reason = reason
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	c.cancel()
	_ = c.nc.Close()
	err := c.closedErr()
	for _, ch := range pending {
		ch <- result{err: err}
	}
}

// closedErr is the error calls get on a closed connection: ErrConnClosed,
// also wrapping the close reason.
func (c *Conn) closedErr() error {
	reason := c.Err()
	if reason == nil || errors.Is(reason, ErrConnClosed) {
		return ErrConnClosed
	}
	return fmt.Errorf("%w: %w", ErrConnClosed, reason)
}

// finish runs when the read loop exits: wait for handlers, run callbacks.
func (c *Conn) finish() {
	c.handlers.Wait()
	c.mu.Lock()
	callbacks := c.onClose
	c.onClose = nil
	c.finished = true
	c.mu.Unlock()
	for _, f := range callbacks {
		c.runCallback(f)
	}
	close(c.done)
}

func (c *Conn) runCallback(f func(*Conn)) {
	defer func() {
		if p := recover(); p != nil {
			c.cfg.logger.Error("remoting: OnClose callback panicked", "remote", c.RemoteAddr(), "panic", p)
		}
	}()
	f(c)
}

// Invoke sends req and waits for its response, until ctx ends or the
// connection closes. It sets req.Opaque to a fresh id and clears the
// response and oneway flags. The error wraps ctx.Err() on timeout and
// ErrConnClosed when the connection closed first. ctx bounds the write
// too: a peer that stops reading holds the call no longer than ctx's
// deadline (not WriteTimeout); the frame is then finished in the background,
// and the connection closed only if that fails within WriteTimeout.
func (c *Conn) Invoke(ctx context.Context, req *Command) (*Command, error) {
	req.Opaque = nextOpaque()
	req.Flag &^= FlagResponse | FlagOneway
	frame, err := c.encode(req)
	if err != nil {
		return nil, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	c.pending[req.Opaque] = ch
	c.mu.Unlock()

	if err := c.write(ctx, frame); err != nil {
		c.forget(req.Opaque)
		return nil, fmt.Errorf("remoting: invoke code %d opaque %d: %w", req.Code, req.Opaque, err)
	}
	select {
	case r := <-ch:
		return r.cmd, r.err
	case <-ctx.Done():
		c.forget(req.Opaque)
		return nil, fmt.Errorf("remoting: invoke code %d opaque %d: %w", req.Code, req.Opaque, ctx.Err())
	}
}

// InvokeOneway sends req as a oneway request (fresh opaque, oneway flag
// set) and returns once it is written.
func (c *Conn) InvokeOneway(req *Command) error {
	req.Opaque = nextOpaque()
	req.Flag = req.Flag&^FlagResponse | FlagOneway
	return c.send(req)
}

// InvokeOnewayContext is InvokeOneway bounded by ctx, as Invoke's write
// is: it returns by ctx's deadline, and a frame the deadline cut short is
// finished in the background.
func (c *Conn) InvokeOnewayContext(ctx context.Context, req *Command) error {
	req.Opaque = nextOpaque()
	req.Flag = req.Flag&^FlagResponse | FlagOneway
	frame, err := c.encode(req)
	if err != nil {
		return err
	}
	if err := c.write(ctx, frame); err != nil {
		return fmt.Errorf("remoting: oneway code %d: %w", req.Code, err)
	}
	return nil
}

// Reply sends resp as the response to req: it sets resp's opaque and header
// encoding to req's and marks it a response. A oneway req gets nothing. If
// resp cannot be sent as it is (too large, unencodable), a SYSTEM_ERROR
// response saying why is sent instead and the error is returned.
func (c *Conn) Reply(req, resp *Command) error {
	if req.IsOneway() {
		return nil
	}
	resp.Opaque = req.Opaque
	resp.Flag |= FlagResponse
	resp.SerializeType = req.SerializeType
	err := c.send(resp)
	if errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrFrameTooLarge) {
		fallback := NewResponse(req, RespSystemError, "response not sent: "+err.Error())
		if err2 := c.send(fallback); err2 != nil {
			return errors.Join(err, err2)
		}
	}
	return err
}

func (c *Conn) forget(opaque int32) {
	c.mu.Lock()
	delete(c.pending, opaque)
	c.mu.Unlock()
}

// complete hands a response (or its decode error) to the waiting Invoke.
func (c *Conn) complete(opaque int32, r result) {
	c.mu.Lock()
	ch := c.pending[opaque]
	delete(c.pending, opaque)
	c.mu.Unlock()
	if ch == nil {
		c.cfg.logger.Debug("remoting: response with no waiting call", "remote", c.RemoteAddr(), "opaque", opaque)
		return
	}
	ch <- r
}
