package remoting

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults, matching RocketMQ's where RocketMQ has one.
const (
	// DefaultAddr is where a Server listens when ServerOptions.Addr is
	// empty: loopback, a port the kernel picks. The broker and name server
	// pass their own (127.0.0.1:10911, 127.0.0.1:9876).
	DefaultAddr = "127.0.0.1:0"
	// DefaultIdleTimeout is serverChannelMaxIdleTimeSeconds (120 s).
	DefaultIdleTimeout = 120 * time.Second
	// DefaultWriteTimeout bounds one frame write.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxInFlight bounds the requests one connection may have in
	// handlers at once; requests past it get SYSTEM_BUSY. (A held
	// long-polling pull frees its slot: the broker bounds those itself.)
	DefaultMaxInFlight = 1024
	// DefaultMaxInFlightBytes bounds the request frames a Server's
	// handlers hold at once, over all its connections (512 MiB).
	DefaultMaxInFlightBytes = 512 << 20
)

// ServerOptions configure [Listen]. The zero value of every field means
// "use the default".
type ServerOptions struct {
	// Addr is the TCP address to listen on. Default DefaultAddr.
	Addr string
	// Handler serves requests from every connection. Default: an empty Mux,
	// which answers every code with REQUEST_CODE_NOT_SUPPORTED.
	Handler Handler
	// OnConnect, if set, is called with each accepted connection before its
	// first request is read (to register Conn.OnClose callbacks, say). It
	// runs on the accept goroutine: it must not block, nor call Invoke.
	OnConnect func(*Conn)
	// Inline, if set, reports whether a request is served on its
	// connection's read loop, done before the connection's next frame is
	// read, rather than on a goroutine of its own. Requests of one
	// connection otherwise run concurrently, and the one that arrived
	// later may run first: for quick requests whose effect the
	// connection's next requests must see (a oneway offset commit that the
	// client follows with a query of that offset). It must not block. A
	// picked request that is not oneway has its answer written from the
	// read loop too, within WriteTimeout.
	Inline func(*Command) bool
	// MaxFrameSize bounds a received or sent frame, length prefix included.
	// Default DefaultMaxFrameSize (16 MiB).
	MaxFrameSize int
	// IdleTimeout closes a connection on which no frame has arrived for
	// this long (clients heartbeat every 30 s). Default DefaultIdleTimeout;
	// negative disables it.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one frame. Default DefaultWriteTimeout;
	// negative disables it.
	WriteTimeout time.Duration
	// MaxInFlight bounds concurrent handler calls per connection. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxInFlightBytes bounds the request frames, in bytes, that the
	// handlers hold at once over all the server's connections. A
	// connection whose request read would pass it reads nothing more until
	// enough calls return, so TCP slows its sender down: producers
	// pipelining large sends faster than the store takes them cannot use
	// up the process's memory (MaxInFlight × MaxFrameSize per connection
	// otherwise; now one waiting frame per connection). Response frames
	// (answers to the server's own calls) take no room. Default the larger
	// of DefaultMaxInFlightBytes and MaxFrameSize; at least MaxFrameSize.
	MaxInFlightBytes int64
	// Logger receives connection events and protocol errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// DialOptions configure [Dial]. The zero value of every field means "use
// the default".
type DialOptions struct {
	// Handler serves requests the server sends on this connection (such as
	// CHECK_TRANSACTION_STATE). Default: an empty Mux.
	Handler Handler
	// MaxFrameSize: as ServerOptions.MaxFrameSize.
	MaxFrameSize int
	// IdleTimeout: as ServerOptions.IdleTimeout. Responses count as
	// traffic, so a client that heartbeats stays connected.
	IdleTimeout time.Duration
	// WriteTimeout: as ServerOptions.WriteTimeout.
	WriteTimeout time.Duration
	// MaxInFlight: as ServerOptions.MaxInFlight.
	MaxInFlight int
	// Logger: as ServerOptions.Logger.
	Logger *slog.Logger
}

// connConfig is what a Conn needs, with defaults filled.
type connConfig struct {
	handler      Handler
	maxFrameSize int
	idleTimeout  time.Duration // 0: none
	writeTimeout time.Duration // 0: none
	maxInFlight  int
	logger       *slog.Logger
	inline       func(*Command) bool // ServerOptions.Inline
	// budget, on a server's connections, holds MaxInFlightBytes: a
	// request's frame takes its size from it until its handler returns.
	budget *budget
}

func newConnConfig(h Handler, maxFrame int, idle, write time.Duration, inFlight int, log *slog.Logger) (connConfig, error) {
	switch {
	case maxFrame < 0:
		return connConfig{}, fmt.Errorf("%w: MaxFrameSize %d is negative", ErrInvalidOptions, maxFrame)
	case maxFrame > 0 && maxFrame < 8+binaryFixedLen:
		return connConfig{}, fmt.Errorf("%w: MaxFrameSize %d cannot hold a header", ErrInvalidOptions, maxFrame)
	case inFlight < 0:
		return connConfig{}, fmt.Errorf("%w: MaxInFlight %d is negative", ErrInvalidOptions, inFlight)
	}
	c := connConfig{handler: h, maxFrameSize: maxFrame, idleTimeout: idle, writeTimeout: write, maxInFlight: inFlight, logger: log}
	if c.handler == nil {
		c.handler = NewMux()
	}
	if c.maxFrameSize == 0 {
		c.maxFrameSize = DefaultMaxFrameSize
	}
	c.idleTimeout = durationDefault(c.idleTimeout, DefaultIdleTimeout)
	c.writeTimeout = durationDefault(c.writeTimeout, DefaultWriteTimeout)
	if c.maxInFlight == 0 {
		c.maxInFlight = DefaultMaxInFlight
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c, nil
}

// durationDefault maps 0 to def and a negative value to 0 (disabled).
func durationDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (o ServerOptions) connConfig() (connConfig, error) {
	c, err := newConnConfig(o.Handler, o.MaxFrameSize, o.IdleTimeout, o.WriteTimeout, o.MaxInFlight, o.Logger)
	if err != nil {
		return c, err
	}
	c.inline = o.Inline
	limit := o.MaxInFlightBytes
	switch {
	case limit == 0:
		limit = max(DefaultMaxInFlightBytes, int64(c.maxFrameSize)) // one frame always fits
	case limit < int64(c.maxFrameSize):
		return connConfig{}, fmt.Errorf("%w: MaxInFlightBytes %d is below MaxFrameSize %d (a frame of that size could never be read)",
			ErrInvalidOptions, o.MaxInFlightBytes, c.maxFrameSize)
	}
	c.budget = newBudget(limit, c.logger)
	return c, nil
}

func (o DialOptions) connConfig() (connConfig, error) {
	return newConnConfig(o.Handler, o.MaxFrameSize, o.IdleTimeout, o.WriteTimeout, o.MaxInFlight, o.Logger)
}
