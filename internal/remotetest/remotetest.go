package remotetest

import (
	"context"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Dial connects a remoting client to addr and closes it when the test ends.
func Dial(t testing.TB, addr string) *remoting.Conn {
	t.Helper()
	c, err := remoting.Dial(context.Background(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Call invokes a request with a 10 s deadline and fails the test on a
// transport error; an error response is returned for the test to check.
func Call(t testing.TB, c *remoting.Conn, code int16, ext map[string]string, body []byte) *remoting.Command {
	t.Helper()
	req := remoting.NewRequest(code, ext)
	req.Body = body
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke code %d: %v", code, err)
	}
	return resp
}
