package mirror_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// heldPort is a loopback port held for the whole test, so that no other
// process can take it: a Kafka (kfake, through [heldPort.listen]) can stop
// and start again on it, and while none serves it, each connection is
// accepted and closed at once, so nothing there answers Kafka.
type heldPort struct {
	ln  net.Listener
	mu  sync.Mutex
	cur *heldListener // the Kafka serving the port, if any
}

// holdPort listens on 127.0.0.1:0 until the test ends.
func holdPort(t testing.TB) *heldPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &heldPort{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.accept()
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return h
}

// addr is the port's host:port.
func (h *heldPort) addr() string { return h.ln.Addr().String() }

// accept hands each connection to the Kafka serving the port, or closes it.
func (h *heldPort) accept() {
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		cur := h.cur
		h.mu.Unlock()
		if cur == nil || !cur.deliver(conn) {
			_ = conn.Close()
		}
	}
}

// listen is a kfake.ListenFn: the cluster it starts serves the held port
// (whatever address kfake asks for) until it closes its listener. One
// broker at a time: a cluster must be started with kfake.NumBrokers(1).
func (h *heldPort) listen(_, _ string) (net.Listener, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur != nil && !h.cur.closed() {
		return nil, fmt.Errorf("port %s is served by another listener: start kfake with NumBrokers(1)", h.addr())
	}
	h.cur = &heldListener{addr: h.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	return h.cur, nil
}

// heldListener is the net.Listener a Kafka serving a heldPort accepts on;
// closing it leaves the port held.
type heldListener struct {
	addr  net.Addr
	conns chan net.Conn // unbuffered: a connection is handed over only to an Accept
	done  chan struct{}
	once  sync.Once
}

func (l *heldListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *heldListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *heldListener) Addr() net.Addr { return l.addr }

func (l *heldListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// deliver hands conn to an Accept; false if the listener closed first.
func (l *heldListener) deliver(conn net.Conn) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.done:
		return false
	}
}
