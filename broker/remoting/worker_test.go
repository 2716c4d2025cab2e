package remoting

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// workerGoroutines counts the goroutines running (*Conn).worker for c.
func workerGoroutines(c *Conn) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], fmt.Appendf(nil, "remoting.(*Conn).worker(%p", c))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestConnDoneWaitsForIdleWorker: after a request, a connection keeps its
// handler goroutine waiting for the next one (worker). Done is closed once
// the connection's goroutines have returned (Server.Close waits for it:
// "every connection goroutine"), so that one must be gone by then too.
// The peer hangs up, so the server closes its side on its read loop, which
// goes on to close Done at once.
func TestConnDoneWaitsForIdleWorker(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	for i := range 50 {
		c := dial(t, srv, DialOptions{})
		checkAlive(t, c)
		var sc *Conn
		waitFor(t, 5*time.Second, "the server's connection", func() bool {
			for _, x := range srv.Conns() {
				if x.RemoteAddr().String() == c.LocalAddr().String() {
					sc = x
				}
			}
			return sc != nil
		})
		if workerGoroutines(sc) != 1 {
			t.Fatalf("round %d: no idle worker after a request", i)
		}
		_ = c.Close()
		<-sc.Done()
		if n := workerGoroutines(sc); n != 0 {
			t.Fatalf("round %d: %d worker goroutine still running after Done", i, n)
		}
	}
}
