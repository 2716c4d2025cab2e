package remoting

import (
	"context"
	"testing"
)

// deepStack uses about depth KiB of stack, as a handler whose path is
// deep does (a send: decode, store, lifecycle record, response).
//
//go:noinline
func deepStack(depth int) byte {
	var frame [1024]byte
	frame[depth%len(frame)] = byte(depth)
	if depth == 0 {
		return frame[0]
	}
	return deepStack(depth-1) + frame[1]
}

// BenchmarkServeDeepHandler: requests over one connection, 32 in flight,
// to a handler that needs 16 KiB of stack. A handler goroutine that
// starts with a small stack grows it, copying it, before it can answer.
func BenchmarkServeDeepHandler(b *testing.B) {
	mux := NewMux()
	mux.HandleFunc(ReqQueryBrokerOffset, func(_ context.Context, _ *Conn, req *Command) *Command {
		_ = deepStack(16) // not inlined, so not left out
		return NewResponse(req, RespSuccess, "")
	})
	srv, err := Listen(ServerOptions{Handler: mux, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(context.Background(), srv.Addr().String(), DialOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.SetParallelism(16) // 32 in flight on 2 CPUs
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Invoke(context.Background(), NewRequest(ReqQueryBrokerOffset, nil))
			if err != nil || resp.Code != RespSuccess {
				b.Error(resp, err)
				return
			}
		}
	})
}
