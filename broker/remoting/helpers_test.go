package remoting

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// quiet is the logger tests use, so expected protocol errors stay out of
// the test output.
var quiet = slog.New(slog.DiscardHandler)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// echoMux answers ReqHeartBeat with SUCCESS, echoing ext fields, remark and body.
func echoMux() *Mux {
	m := NewMux()
	m.HandleFunc(ReqHeartBeat, func(_ context.Context, _ *Conn, req *Command) *Command {
		resp := NewResponse(req, RespSuccess, req.Remark)
		resp.ExtFields = req.ExtFields
		resp.Body = req.Body
		return resp
	})
	return m
}

func startServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := Listen(opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func dial(t *testing.T, srv *Server, opts DialOptions) *Conn {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Addr().String(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func rawDial(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

func invoke(t *testing.T, c *Conn, req *Command) *Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke code %d: %v", req.Code, err)
	}
	return resp
}

// checkAlive asserts that c still gets answers.
func checkAlive(t *testing.T, c *Conn) {
	t.Helper()
	resp := invoke(t, c, NewRequest(ReqHeartBeat, map[string]string{"alive": "yes"}))
	if resp.Code != RespSuccess || resp.Ext("alive") != "yes" {
		t.Fatalf("healthy client got %v", resp)
	}
}

// readUntilClosed reads frames from nc until the server closes it and
// returns the frames that arrived first.
func readUntilClosed(t *testing.T, nc net.Conn) []*Command {
	t.Helper()
	var got []*Command
	for {
		cmd, err := Decode(nc, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("server did not close the connection: %v", err)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Fatalf("unexpected read error: %v", err)
			}
			return got
		}
		got = append(got, cmd)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

func mustEncode(t testing.TB, c *Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

// decodeRest decodes a frame whose first 8 bytes were already read.
func decodeRest(r io.Reader, prefix []byte) (*Command, error) {
	return Decode(io.MultiReader(bytes.NewReader(prefix), r), 0)
}
