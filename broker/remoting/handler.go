package remoting

import (
	"context"
	"strconv"
	"sync"
)

// Handler serves requests arriving on a connection.
//
// Serve is called on its own goroutine (or, for a request a server's
// ServerOptions.Inline picks, on the connection's read loop), concurrently
// with other requests of the same connection, so it must be safe for
// concurrent use. ctx is
// cancelled when the connection closes. The returned response is sent with
// req's opaque and header encoding (see [Conn.Reply]); return nil for a
// oneway request, or to answer later with Conn.Reply (a held pull, say).
// A panic is recovered and answered with SYSTEM_ERROR.
type Handler interface {
	Serve(ctx context.Context, conn *Conn, req *Command) *Command
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, conn *Conn, req *Command) *Command

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, conn *Conn, req *Command) *Command {
	return f(ctx, conn, req)
}

// Mux is a [Handler] that dispatches on the request code, like RocketMQ's
// processor table. Codes with no handler are answered with
// REQUEST_CODE_NOT_SUPPORTED and the remark " request type <code> not
// supported", Java's text. A Mux is safe for concurrent use; handlers may
// be added while it serves.
type Mux struct {
	mu       sync.RWMutex
	handlers map[int16]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: make(map[int16]Handler)} }

// Handle registers h for code, replacing any earlier one.
func (m *Mux) Handle(code int16, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[code] = h
}

// HandleFunc registers f for code.
func (m *Mux) HandleFunc(code int16, f func(ctx context.Context, conn *Conn, req *Command) *Command) {
	m.Handle(code, HandlerFunc(f))
}

// Serve dispatches req to the handler for its code.
func (m *Mux) Serve(ctx context.Context, conn *Conn, req *Command) *Command {
	m.mu.RLock()
	h := m.handlers[req.Code]
	m.mu.RUnlock()
	if h == nil {
		return NotSupported(req, int64(req.Code))
	}
	return h.Serve(ctx, conn, req)
}

// NotSupported returns the REQUEST_CODE_NOT_SUPPORTED response to req,
// naming code in the remark.
func NotSupported(req *Command, code int64) *Command {
	return NewResponse(req, RespRequestCodeNotSupported, " request type "+strconv.FormatInt(code, 10)+" not supported")
}
