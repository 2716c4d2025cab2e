package remoting_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// A server answers heartbeats; a client sends one in each header encoding,
// then asks for a code nobody handles.
func Example() {
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqHeartBeat, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.ExtFields["clientID"] = req.Ext("clientID")
		return resp
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Handler: mux, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := remoting.Dial(ctx, srv.Addr().String(), remoting.DialOptions{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	for _, st := range []remoting.SerializeType{remoting.SerializeJSON, remoting.SerializeRocketMQ} {
		req := remoting.NewRequest(remoting.ReqHeartBeat, map[string]string{"clientID": "127.0.0.1@1"})
		req.SerializeType = st
		resp, err := conn.Invoke(ctx, req)
		if err != nil {
			panic(err)
		}
		fmt.Println(resp.SerializeType, resp.Code, resp.Ext("clientID"))
	}
	resp, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, nil))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d %q\n", resp.Code, resp.Remark)
	// Output:
	// JSON 0 127.0.0.1@1
	// ROCKETMQ 0 127.0.0.1@1
	// 3 " request type 11 not supported"
}
