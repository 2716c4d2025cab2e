package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/namesrv"
)

// A send to a topic the name server has no route for fails at once, as
// RocketMQ's sendDefaultImpl does ("No route info of this topic"): the
// retries asked the name server again straight away, which knows no more
// a moment later, and every failed send cost RetryTimes+1 times the
// lookups (the topic's, then TBW102's).
//
// A topic whose route has no writable queue (its permission made
// read-only) fails likewise after one lookup of its route.
func TestSendWithoutRouteAsksTheNameServerOnce(t *testing.T) {
	t.Run("unknown topic", func(t *testing.T) {
		// The topic's route, then TBW102's (whose brokers a new topic borrows).
		sendWithoutRoute(t, func(req *remoting.Command) *remoting.Command {
			return remoting.NewResponse(req, remoting.RespTopicNotExist, "No topic route info in name server for the topic: "+req.Ext("topic"))
		}, 2)
	})
	t.Run("no writable queue", func(t *testing.T) {
		sendWithoutRoute(t, func(req *remoting.Command) *remoting.Command {
			resp := remoting.NewResponse(req, remoting.RespSuccess, "")
			resp.Body = []byte(`{"queueDatas":[{"brokerName":"b","readQueueNums":4,"writeQueueNums":4,"perm":4}],` +
				`"brokerDatas":[{"cluster":"c","brokerName":"b","brokerAddrs":{0:"127.0.0.1:1"}}]}`)
			return resp
		}, 1)
	})
}

// sendWithoutRoute sends through a name server that answers route lookups
// with answer, and checks that the send fails with ErrTopicNotFound after
// want lookups.
func sendWithoutRoute(t *testing.T, answer func(req *remoting.Command) *remoting.Command, want int32) {
	var asked atomic.Int32
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqGetRouteInfoByTopic, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		asked.Add(1)
		return answer(req)
	})
	srv, err := remoting.Listen(remoting.ServerOptions{Addr: "127.0.0.1:0", Handler: mux, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := newClient(t, srv.Addr().String(), nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg", RetryTimes: 5})
	_, err = p.Send(ctxT(t, 10*time.Second), &Message{Topic: "nowhere", Body: []byte("x")})
	if !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("send: %v, want ErrTopicNotFound", err)
	}
	if n := asked.Load(); n != want {
		t.Fatalf("the name server was asked %d times for routes, want %d", n, want)
	}
}

// A cached route with no writable queue (the topic made read-only) is
// asked for again on the next send; if the name servers no longer know
// the topic (deleted since), the send borrows TBW102's brokers, as a
// topic never seen does (RocketMQ's tryToFindTopicPublishInfo), and the
// broker creates it again.
func TestReadOnlyRouteOfADeletedTopicFallsBackToTBW102(t *testing.T) {
	cl := startCluster(t, func(o *namesrv.Options) { o.DisableAutoCreateTopic = true }, nil)
	topic := uniq("gone")
	createTopicOn(t, cl.b.Addr(), topic, 4)
	ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	readOnly := remoting.NewRequest(remoting.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4", "perm": "4",
		"topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"})
	conn, err := remoting.Dial(ctxT(t, 5*time.Second), cl.b.Addr(), remoting.DialOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, err := conn.Invoke(ctxT(t, 5*time.Second), readOnly); err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("make %s read-only: %v %v", topic, resp, err)
	}
	c := newClient(t, cl.ns.Addr(), nil)
	p := newProducer(t, c, ProducerOptions{})
	if _, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("refused")}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("send to the read-only topic: %v, want ErrTopicNotFound", err)
	}

	// Deleted from the broker and the name server, as mqadmin deleteTopic does.
	if err := ac.DeleteTopic(ctxT(t, 5*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	del := remoting.NewRequest(remoting.ReqDeleteTopicInNameSrv, map[string]string{"topic": topic})
	nsConn, err := remoting.Dial(ctxT(t, 5*time.Second), cl.ns.Addr(), remoting.DialOptions{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer nsConn.Close()
	if resp, err := nsConn.Invoke(ctxT(t, 5*time.Second), del); err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("delete %s on the name server: %v %v", topic, resp, err)
	}

	res, err := p.Send(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("again")})
	if err != nil {
		t.Fatalf("send after the topic was deleted: %v, want it sent through TBW102's brokers", err)
	}
	if got := cl.waitStored(t, topic, 1); got[0].MsgID != res.MsgID {
		t.Fatalf("stored %v", got)
	}
}
