package admin

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// SetWritePerm asks every name server: one that does not answer (a host
// that is down) fails alone, after DefaultTimeout, and does not use up the
// time of the name servers after it, which still get the wipe.
func TestSetWritePermAsksEveryNameServer(t *testing.T) {
	var asked atomic.Int32
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqWipeWritePermOfBroker, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		asked.Add(1)
		resp := remoting.NewResponse(req, remoting.RespSuccess, "")
		resp.ExtFields["wipeTopicCount"] = "3"
		return resp
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: mux})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	down, up := blackhole(t), srv.Addr().String()

	res, err := SetWritePerm(context.Background(), []string{down, up}, "broker-a", true)
	if err == nil || !strings.Contains(err.Error(), down) {
		t.Errorf("err = %v, want the unanswering name server %s named", err, down)
	}
	if len(res) != 2 || res[1].Namesrv != up || res[1].Topics != 3 || res[1].Error != "" || asked.Load() != 1 {
		t.Fatalf("results %+v (the answering name server asked %d times): want %s wiped after %s timed out",
			res, asked.Load(), up, down)
	}
}
