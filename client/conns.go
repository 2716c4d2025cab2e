package client

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// connPool keeps one remoting connection per server address (name servers
// and brokers alike), shared by every caller, and dials it again once it
// has closed. Requests servers send on these connections go to handler.
type connPool struct {
	handler remoting.Handler
	log     *slog.Logger
	// onDial is called (outside the lock) with each new connection.
	onDial func(addr string, c *remoting.Conn)

	mu     sync.Mutex
	conns  map[string]*poolEntry
	live   map[*remoting.Conn]struct{} // every connection whose goroutines may still run
	closed bool
}

// poolEntry is an address's connection, or a dial in progress (dialing is
// closed when it ends).
type poolEntry struct {
	conn    *remoting.Conn
	dialing chan struct{}
}

func newConnPool(h remoting.Handler, log *slog.Logger, onDial func(string, *remoting.Conn)) *connPool {
	return &connPool{handler: h, log: log, onDial: onDial,
		conns: make(map[string]*poolEntry), live: make(map[*remoting.Conn]struct{})}
}

// get returns the open connection to addr, dialling it under ctx if there
// is none. Callers arriving during a dial wait for it; if that dial fails
// they try their own.
func (p *connPool) get(ctx context.Context, addr string) (*remoting.Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		e := p.conns[addr]
		switch {
		case e != nil && e.conn != nil && e.conn.Err() == nil:
			p.mu.Unlock()
			return e.conn, nil
		case e != nil && e.dialing != nil:
			ch := e.dialing
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		p.conns[addr] = &poolEntry{dialing: ch}
		p.mu.Unlock()
		c, err := p.dial(ctx, addr, ch)
		if err != nil {
			return nil, err
		}
		if p.onDial != nil {
			p.onDial(addr, c)
		}
		return c, nil
	}
}

// dial connects to addr and installs the connection, then closes ch.
func (p *connPool) dial(ctx context.Context, addr string, ch chan struct{}) (*remoting.Conn, error) {
	defer close(ch)
	c, err := remoting.Dial(ctx, addr, remoting.DialOptions{Handler: p.handler, Logger: p.log})
	p.mu.Lock()
	if err != nil || p.closed {
		delete(p.conns, addr)
		p.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		c.Close()
		<-c.Done()
		return nil, ErrClosed
	}
	p.conns[addr] = &poolEntry{conn: c}
	p.live[c] = struct{}{}
	p.mu.Unlock()
	c.OnClose(p.forget) // runs at once if c has already closed
	p.log.Debug("client: connected", "addr", addr, "local", c.LocalAddr())
	return c, nil
}

// forget drops a closed connection (its OnClose callback).
func (p *connPool) forget(c *remoting.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.live, c)
	for addr, e := range p.conns {
		if e.conn == c {
			delete(p.conns, addr)
		}
	}
}

// open returns the open connection to addr, or nil; it never dials.
func (p *connPool) open(addr string) *remoting.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.conns[addr]; e != nil && e.conn != nil && e.conn.Err() == nil {
		return e.conn
	}
	return nil
}

// addrOf returns the address c was dialled to, or "".
func (p *connPool) addrOf(c *remoting.Conn) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, e := range p.conns {
		if e.conn == c {
			return addr
		}
	}
	return ""
}

// close closes every connection and waits until their read loops and
// handler calls have returned. Dials in progress fail with ErrClosed.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*remoting.Conn, 0, len(p.live))
	for c := range p.live {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, c := range conns {
		<-c.Done()
	}
}
