package remoting

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Server accepts remoting connections and serves their requests with one
// Handler. Create it with [Listen].
type Server struct {
	ln        net.Listener
	cfg       connConfig
	onConnect func(*Conn)
	ctx       context.Context
	cancel    context.CancelFunc

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	closed bool

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // accept loop and connection loops
}

// Listen validates opts, listens on opts.Addr and serves connections in the
// background until [Server.Close].
func Listen(opts ServerOptions) (*Server, error) {
	cfg, err := opts.connConfig()
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ln:        ln,
		cfg:       cfg,
		onConnect: opts.OnConnect,
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(map[*Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the address the server listens on (with the real port when
// ServerOptions.Addr asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Conns returns the connections currently open.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Close stops accepting, closes every connection (their Err becomes
// ErrServerClosed) and waits until every connection goroutine and handler
// call has returned. Handlers must therefore return once their context is
// cancelled. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.cancel()
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = err
		}
		for _, c := range conns {
			c.closeWith(ErrServerClosed)
		}
	})
	s.wg.Wait()
	return s.closeErr
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.logger.Warn("remoting: accept failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		s.serveConn(nc)
	}
}

func (s *Server) serveConn(nc net.Conn) {
	c := newConn(s.ctx, nc, s.cfg)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.cfg.logger.Debug("remoting: connection accepted", "remote", nc.RemoteAddr())
	if s.onConnect != nil {
		s.onConnect(c)
	}
	go func() {
		defer s.wg.Done()
		c.readLoop()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}
