package remoting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"time"
)

// overloadRemark is Java's remark when its request executor is full.
const overloadRemark = "[OVERLOAD]system busy, start flow control for a while"

// readLoop reads frames until the connection fails or closes.
func (c *Conn) readLoop() {
	defer c.finish()
	for {
		if c.cfg.idleTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.idleTimeout))
		}
		n, err := c.frameSize()
		if err != nil {
			if c.readFailed(err) {
				continue
			}
			return
		}
		cmd, err := Decode(c.br, c.cfg.maxFrameSize)
		if err != nil {
			if c.readFailed(err) {
				continue
			}
			return
		}
		if cmd.IsResponse() {
			c.complete(cmd.Opaque, result{cmd: cmd})
			continue
		}
		if err := c.reserve(n); err != nil {
			c.readFailed(err)
			return
		}
		c.dispatch(cmd, n)
	}
}

// readFailed handles a read error and reports whether reading may go on.
func (c *Conn) readFailed(err error) bool {
	var derr *DecodeError
	if errors.As(err, &derr) {
		return c.badFrame(derr)
	}
	reason := err
	var ne net.Error
	switch {
	case c.ctx.Err() != nil:
		// Closed on purpose; the reason is already recorded.
	case errors.As(err, &ne) && ne.Timeout():
		reason = ErrIdleTimeout
		c.cfg.logger.Info("remoting: closing idle connection", "remote", c.RemoteAddr(), "idle", c.cfg.idleTimeout)
	case errors.Is(err, io.EOF):
		c.cfg.logger.Debug("remoting: peer closed connection", "remote", c.RemoteAddr())
	default:
		c.cfg.logger.Warn("remoting: read failed, closing connection", "remote", c.RemoteAddr(), "err", err)
	}
	c.closeWith(reason)
	return false
}

// badFrame answers what can be answered about a bad frame. A code outside
// int16 in an otherwise good frame gets REQUEST_CODE_NOT_SUPPORTED and the
// connection lives on; anything else closes the connection, after a
// SYSTEM_ERROR response when the frame's request could be identified.
func (c *Conn) badFrame(derr *DecodeError) bool {
	req := &Command{Opaque: derr.Opaque, Flag: derr.Flag, SerializeType: derr.SerializeType}
	if errors.Is(derr, ErrCodeOutOfRange) && derr.InSync {
		switch {
		case derr.HeaderKnown && req.IsResponse():
			c.complete(req.Opaque, result{err: derr})
		case derr.respondable():
			_ = c.send(NotSupported(req, derr.Code))
		}
		return true
	}
	c.cfg.logger.Warn("remoting: bad frame, closing connection", "remote", c.RemoteAddr(), "err", derr)
	if derr.respondable() {
		_ = c.send(NewResponse(req, RespSystemError, derr.Error()))
	}
	c.closeWith(derr)
	return false
}

// workerIdle is how long a handler goroutine waits for another request of
// its connection before it exits.
const workerIdle = time.Second

// call is a request handed to an idle handler goroutine (Conn.idle).
type call struct {
	req *Command
	n   int64
}

// dispatch runs the handler for req on a goroutine of its own, or answers
// SYSTEM_BUSY when MaxInFlight calls are already running, as Java does when
// its executor rejects a request. The call holds n bytes of the server's
// budget (reserve) until it returns.
func (c *Conn) dispatch(req *Command, n int64) {
	select {
	case c.sem <- struct{}{}:
	default:
		c.unreserve(n)
		c.cfg.logger.Warn("remoting: too many requests in flight", "remote", c.RemoteAddr(), "code", req.Code, "limit", c.cfg.maxInFlight)
		if !req.IsOneway() {
			_ = c.send(NewResponse(req, RespSystemBusy, overloadRemark))
		}
		return
	}
	c.handlers.Add(1)
	if c.cfg.inline != nil && c.cfg.inline(req) {
		c.serve(req, n) // before the next frame is read: see ServerOptions.Inline
		return
	}
	select {
	case c.idle <- call{req, n}:
	default:
		c.handlers.Add(1) // the worker itself: finish waits until it has gone
		go c.worker(req, n)
	}
}

// worker serves req, then, for up to workerIdle between requests, the
// requests dispatch hands it, until the connection closes. A handler's
// goroutine is thus mostly one whose stack has already grown to what the
// handlers need, rather than a new one that grows it again, copying it
// each time, on every request (a send's path is deeper than a new
// goroutine's stack).
func (c *Conn) worker(req *Command, n int64) {
	defer c.handlers.Done()
	c.serve(req, n)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case w := <-c.idle:
			c.serve(w.req, w.n)
			idle.Reset(workerIdle)
		case <-idle.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Conn) serve(req *Command, n int64) {
	defer func() {
		c.unreserve(n)
		<-c.sem
		c.handlers.Done()
	}()
	resp := c.callHandler(req)
	if resp == nil || req.IsOneway() {
		return
	}
	if err := c.Reply(req, resp); err != nil && !errors.Is(err, ErrConnClosed) {
		c.cfg.logger.Warn("remoting: response not sent", "remote", c.RemoteAddr(), "code", req.Code, "err", err)
	}
}

func (c *Conn) callHandler(req *Command) (resp *Command) {
	defer func() {
		if p := recover(); p != nil {
			c.cfg.logger.Error("remoting: handler panicked", "remote", c.RemoteAddr(), "code", req.Code,
				"panic", p, "stack", string(debug.Stack()))
			resp = NewResponse(req, RespSystemError, fmt.Sprintf("handler panic: %v", p))
		}
	}()
	return c.cfg.handler.Serve(c.ctx, c, req)
}

// send writes cmd as one frame. Frames larger than MaxFrameSize are
// refused with ErrFrameTooLarge (the peer would drop the connection); a
// write error closes the connection.
func (c *Conn) send(cmd *Command) error {
	frame, err := c.encode(cmd)
	if err != nil {
		return err
	}
	return c.write(context.Background(), frame)
}

// encode encodes cmd and checks it against MaxFrameSize.
func (c *Conn) encode(cmd *Command) ([]byte, error) {
	frame, err := Encode(cmd)
	if err != nil {
		return nil, err
	}
	if len(frame) > c.cfg.maxFrameSize {
		return nil, fmt.Errorf("%w: %d-byte frame, limit %d", ErrFrameTooLarge, len(frame), c.cfg.maxFrameSize)
	}
	return frame, nil
}

// write writes frame once no other write is under way, waiting for that
// no longer than ctx, and returns by ctx's deadline: a peer that stops
// reading holds a caller no longer than its own deadline. A write the
// deadline cuts short is finished in the background, still holding the
// write slot (so the frame is never torn), within WriteTimeout; only a
// write that fails, or outlasts WriteTimeout, closes the connection.
// Without a deadline (or past WriteTimeout's) the write is bounded by
// WriteTimeout alone, as before.
func (c *Conn) write(ctx context.Context, frame []byte) error {
	select {
	case c.wslot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.closedErr()
	}
	release := func() { <-c.wslot }
	if c.ctx.Err() != nil {
		release()
		return c.closedErr()
	}
	// A caller whose context ended (or whose deadline passed before its
	// timer fired) writes nothing.
	own, ok := ctx.Deadline()
	if err := ctx.Err(); err != nil || ok && !time.Now().Before(own) {
		release()
		if err == nil {
			err = context.DeadlineExceeded
		}
		return err
	}
	var limit time.Time // WriteTimeout's deadline
	if c.cfg.writeTimeout > 0 {
		limit = time.Now().Add(c.cfg.writeTimeout)
	}
	deadline, early := limit, ok && (limit.IsZero() || own.Before(limit))
	if early {
		deadline = own
	}
	_ = c.nc.SetWriteDeadline(deadline) // the zero time clears an earlier caller's
	n, err := c.nc.Write(frame)
	if err == nil {
		release()
		return nil
	}
	if early && errors.Is(err, os.ErrDeadlineExceeded) {
		// The caller's deadline, not WriteTimeout's: the caller goes, the
		// rest of the frame follows under WriteTimeout.
		if n < len(frame) {
			go func() {
				defer release()
				_ = c.nc.SetWriteDeadline(limit)
				if _, err := c.nc.Write(frame[n:]); err != nil {
					c.closeWith(err)
				}
			}()
		} else {
			release()
		}
		return fmt.Errorf("write of %d bytes unfinished at the deadline: %w", len(frame), context.DeadlineExceeded)
	}
	release()
	c.closeWith(err)
	return fmt.Errorf("%w: write: %w", ErrConnClosed, err)
}
