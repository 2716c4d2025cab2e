package namesrv

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Server is a running name server. Open starts it; Close stops it.
type Server struct {
	opts Options
	log  *slog.Logger
	reg  *registry
	kv   *kvStore
	srv  *remoting.Server

	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Open validates opts, listens on ListenAddr and starts serving and
// expiring brokers.
func Open(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Server{opts: opts, log: opts.Logger, reg: newRegistry(opts), kv: newKVStore(), stop: make(chan struct{})}
	var err error
	s.srv, err = remoting.Listen(remoting.ServerOptions{
		Addr:      opts.ListenAddr,
		Handler:   s.routes(),
		OnConnect: func(c *remoting.Conn) { c.OnClose(s.connClosed) },
		Logger:    opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("namesrv: listen on %s: %w", opts.ListenAddr, err)
	}
	s.wg.Add(1)
	go s.sweepLoop()
	return s, nil
}

// Addr is the address the server listens on (with the real port when
// ListenAddr asked for port 0).
func (s *Server) Addr() string { return s.srv.Addr().String() }

// Close stops serving and closes every connection. A second Close returns
// ErrClosed.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(s.stop)
	err := s.srv.Close()
	s.wg.Wait()
	return err
}

// sweepLoop removes expired brokers until the server stops.
func (s *Server) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for _, b := range s.reg.sweep() {
				s.log.Warn("namesrv: broker expired", "broker", b.name, "id", b.id, "addr", b.addr,
					"lastRegistered", b.lastSeen, "expiry", s.opts.BrokerExpiry)
			}
		}
	}
}

// connClosed drops the brokers that registered on a connection that closed
// (RocketMQ's onChannelDestroy), unless the server itself is closing.
func (s *Server) connClosed(c *remoting.Conn) {
	if s.closed.Load() {
		return
	}
	for _, b := range s.reg.dropConn(c) {
		s.log.Info("namesrv: broker connection closed, broker removed", "broker", b.name, "id", b.id, "addr", b.addr, "reason", c.Err())
	}
}
