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
	return newConnConfig(o.Handler, o.MaxFrameSize, o.IdleTimeout, o.WriteTimeout, o.MaxInFlight, o.Logger)
}

func (o DialOptions) connConfig() (connConfig, error) {
	return newConnConfig(o.Handler, o.MaxFrameSize, o.IdleTimeout, o.WriteTimeout, o.MaxInFlight, o.Logger)
}
