package remoting

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestServerRoundTripBothEncodings(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	c := dial(t, srv, DialOptions{})
	for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
		req := NewRequest(ReqHeartBeat, map[string]string{"clientID": "c1"})
		req.SerializeType = st
		req.Body = []byte(`{"producerDataSet":[]}`)
		resp := invoke(t, c, req)
		if resp.Code != RespSuccess || resp.Opaque != req.Opaque || resp.Ext("clientID") != "c1" ||
			string(resp.Body) != string(req.Body) || !resp.IsResponse() {
			t.Errorf("%v: got %v", st, resp)
		}
		if resp.SerializeType != st {
			t.Errorf("%v request answered in %v", st, resp.SerializeType)
		}
	}
}

// TestServerAnswersInRequestEncoding checks the raw header-length word.
func TestServerAnswersInRequestEncoding(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	nc := rawDial(t, srv)
	for _, st := range []SerializeType{SerializeRocketMQ, SerializeJSON, SerializeRocketMQ} {
		req := NewRequest(ReqHeartBeat, nil)
		req.SerializeType = st
		if _, err := nc.Write(mustEncode(t, req)); err != nil {
			t.Fatal(err)
		}
		var prefix [8]byte
		if _, err := io.ReadFull(nc, prefix[:]); err != nil {
			t.Fatal(err)
		}
		if got := SerializeType(prefix[4]); got != st {
			t.Fatalf("request in %v, response header type byte %d", st, got)
		}
		resp, err := decodeRest(nc, prefix[:])
		if err != nil || resp.Opaque != req.Opaque {
			t.Fatalf("response %v, %v", resp, err)
		}
	}
}

func TestUnknownCode(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	c := dial(t, srv, DialOptions{})
	for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
		req := NewRequest(ReqPullMessage, nil)
		req.SerializeType = st
		resp := invoke(t, c, req)
		if resp.Code != RespRequestCodeNotSupported || !strings.Contains(resp.Remark, "11") {
			t.Fatalf("%v: got %v", st, resp)
		}
	}
	// Nil handler: everything is unsupported.
	bare := startServer(t, ServerOptions{})
	resp := invoke(t, dial(t, bare, DialOptions{}), NewRequest(ReqSendMessage, nil))
	if resp.Code != RespRequestCodeNotSupported || resp.Remark != " request type 10 not supported" {
		t.Fatalf("nil handler: got %v", resp)
	}
}

// TestCodeBeyondInt16 sends RocketMQ 5's POP_MESSAGE (200050) in a JSON
// header: it is answered as unsupported and the connection stays usable.
func TestCodeBeyondInt16(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	nc := rawDial(t, srv)
	if _, err := nc.Write(jsonFrame(`{"code":200050,"language":"JAVA","opaque":123,"flag":0,"version":402}`, "")); err != nil {
		t.Fatal(err)
	}
	resp, err := Decode(nc, 0)
	if err != nil || resp.Code != RespRequestCodeNotSupported || resp.Opaque != 123 || !strings.Contains(resp.Remark, "200050") {
		t.Fatalf("got %v, %v", resp, err)
	}
	req := NewRequest(ReqHeartBeat, nil)
	if _, err := nc.Write(mustEncode(t, req)); err != nil {
		t.Fatal(err)
	}
	if resp, err := Decode(nc, 0); err != nil || resp.Code != RespSuccess || resp.Opaque != req.Opaque {
		t.Fatalf("next request on the same connection: %v, %v", resp, err)
	}
}

// A oneway request of an unknown code, in either encoding or with a code
// beyond int16, gets no answer (as RocketMQ 5's writeResponse skips
// oneway requests) and the connection goes on: the next response read is
// the next request's.
func TestOnewayUnknownCodeIsNotAnswered(t *testing.T) {
	srv := startServer(t, ServerOptions{Handler: echoMux()})
	nc := rawDial(t, srv)
	var frames [][]byte
	for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
		req := NewRequest(ReqPullMessage, nil)
		req.SerializeType, req.Flag, req.Opaque = st, FlagOneway, 77
		frames = append(frames, mustEncode(t, req))
	}
	frames = append(frames, jsonFrame(`{"code":200050,"language":"JAVA","opaque":78,"flag":2,"version":402}`, ""))
	for _, f := range frames {
		if _, err := nc.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	hb := NewRequest(ReqHeartBeat, nil)
	if _, err := nc.Write(mustEncode(t, hb)); err != nil {
		t.Fatal(err)
	}
	if resp, err := Decode(nc, 0); err != nil || resp.Code != RespSuccess || resp.Opaque != hb.Opaque {
		t.Fatalf("first frame after the oneway requests: %v, %v; want the heartbeat's response", resp, err)
	}
}

func TestOneway(t *testing.T) {
	got := make(chan *Command, 1)
	mux := echoMux()
	mux.HandleFunc(ReqEndTransaction, func(_ context.Context, _ *Conn, req *Command) *Command {
		got <- req
		return NewResponse(req, RespSuccess, "must not be sent")
	})
	srv := startServer(t, ServerOptions{Handler: mux})
	c := dial(t, srv, DialOptions{})
	req := NewRequest(ReqEndTransaction, map[string]string{"commitOrRollback": "8"})
	if err := c.InvokeOneway(req); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !r.IsOneway() || r.Ext("commitOrRollback") != "8" {
			t.Fatalf("handler got %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("oneway request not delivered")
	}
	// The handler's return value was dropped: the next response the client
	// sees is the heartbeat's own.
	checkAlive(t, c)
}

func TestServerInitiatedInvoke(t *testing.T) {
	conns := make(chan *Conn, 1)
	srv := startServer(t, ServerOptions{Handler: echoMux(), OnConnect: func(c *Conn) { conns <- c }})

	notified := make(chan *Command, 1)
	clientMux := NewMux()
	clientMux.HandleFunc(ReqCheckTransactionState, func(_ context.Context, _ *Conn, req *Command) *Command {
		resp := NewResponse(req, RespSuccess, "")
		resp.ExtFields["transactionId"] = req.Ext("transactionId")
		return resp
	})
	clientMux.HandleFunc(ReqNotifyConsumerIdsChanged, func(_ context.Context, _ *Conn, req *Command) *Command {
		notified <- req
		return nil
	})
	client := dial(t, srv, DialOptions{Handler: clientMux})
	checkAlive(t, client)
	serverSide := <-conns

	for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
		req := NewRequest(ReqCheckTransactionState, map[string]string{"transactionId": "tx-" + st.String()})
		req.SerializeType = st
		resp := invoke(t, serverSide, req)
		if resp.Code != RespSuccess || resp.Ext("transactionId") != "tx-"+st.String() || resp.SerializeType != st {
			t.Fatalf("%v: got %v", st, resp)
		}
	}
	if err := serverSide.InvokeOneway(NewRequest(ReqNotifyConsumerIdsChanged, map[string]string{"consumerGroup": "g"})); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-notified:
		if r.Ext("consumerGroup") != "g" {
			t.Fatalf("client got %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NOTIFY_CONSUMER_IDS_CHANGED not delivered")
	}
	// A code the client does not handle comes back unsupported.
	if resp := invoke(t, serverSide, NewRequest(ReqConsumeMessageDirectly, nil)); resp.Code != RespRequestCodeNotSupported {
		t.Fatalf("unhandled code on the client: %v", resp)
	}
}

func TestInvokeTimeoutAndClose(t *testing.T) {
	entered := make(chan struct{}, 4)
	mux := echoMux()
	mux.HandleFunc(ReqPullMessage, func(ctx context.Context, _ *Conn, _ *Command) *Command {
		entered <- struct{}{}
		<-ctx.Done() // a held pull that never finds a message
		return nil
	})
	srv := startServer(t, ServerOptions{Handler: mux})
	c := dial(t, srv, DialOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Invoke(ctx, NewRequest(ReqPullMessage, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke past its deadline: %v", err)
	}
	<-entered

	errc := make(chan error, 1)
	go func() {
		_, err := c.Invoke(context.Background(), NewRequest(ReqPullMessage, nil))
		errc <- err
	}()
	<-entered
	_ = c.Close()
	if err := <-errc; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Invoke on a closed connection: %v", err)
	}
	if _, err := c.Invoke(context.Background(), NewRequest(ReqHeartBeat, nil)); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Invoke after Close: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrConnClosed) {
		t.Fatalf("Err after Close = %v", c.Err())
	}
}
