package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// fakeBrokerName is the broker name the fake routes every topic to.
const fakeBrokerName = "fake-broker"

// fakeBroker is one remoting server acting as name server and broker, for
// the fault cases a real broker cannot be made to show: it routes every
// topic to itself (4 queues; brokerAddrs written with Java's unquoted
// integer keys) and answers sends and END_TRANSACTION as scripted.
type fakeBroker struct {
	srv  *remoting.Server
	addr string
	host netip.AddrPort

	mu        sync.Mutex
	sendCodes []int16 // answers to the next sends; SUCCESS once used up
	hold      bool    // leave sends unanswered
	sends     []*remoting.Command
	endCode   int16
	endRemark string
	endCodes  []int16 // answers to the next END_TRANSACTIONs, then endCode
	ends      []*remoting.Command
	beats     []fakeBeat
}

// fakeBeat is one heartbeat the fake received.
type fakeBeat struct {
	conn *remoting.Conn
	hb   heartbeatData
}

func startFake(t testing.TB) *fakeBroker {
	t.Helper()
	f := &fakeBroker{}
	mux := remoting.NewMux()
	mux.HandleFunc(remoting.ReqGetRouteInfoByTopic, f.route)
	mux.HandleFunc(remoting.ReqGetBrokerClusterInfo, f.clusterInfo)
	mux.HandleFunc(remoting.ReqHeartBeat, f.heartbeat)
	mux.HandleFunc(remoting.ReqSendMessageV2, f.send)
	mux.HandleFunc(remoting.ReqSendBatchMessage, f.send)
	mux.HandleFunc(remoting.ReqEndTransaction, f.end)
	srv, err := remoting.Listen(remoting.ServerOptions{Handler: mux, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.srv, f.addr = srv, srv.Addr().String()
	f.host = netip.MustParseAddrPort(f.addr)
	return f
}

func (f *fakeBroker) brokerData() string {
	return fmt.Sprintf(`{"cluster":"c","brokerName":%q,"brokerAddrs":{0:%q}}`, fakeBrokerName, f.addr)
}

func (f *fakeBroker) route(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = []byte(fmt.Sprintf(`{"queueDatas":[{"brokerName":%q,"readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSynFlag":0}],"brokerDatas":[%s]}`,
		fakeBrokerName, f.brokerData()))
	return resp
}

func (f *fakeBroker) clusterInfo(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = []byte(fmt.Sprintf(`{"brokerAddrTable":{%q:%s},"clusterAddrTable":{"c":[%q]}}`, fakeBrokerName, f.brokerData(), fakeBrokerName))
	return resp
}

func (f *fakeBroker) heartbeat(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	var hb heartbeatData
	if err := json.Unmarshal(req.Body, &hb); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	f.mu.Lock()
	f.beats = append(f.beats, fakeBeat{conn: conn, hb: hb})
	f.mu.Unlock()
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

func (f *fakeBroker) send(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f.mu.Lock()
	f.sends = append(f.sends, req)
	n := len(f.sends)
	hold := f.hold
	code := remoting.RespSuccess
	if len(f.sendCodes) > 0 {
		code, f.sendCodes = f.sendCodes[0], f.sendCodes[1:]
	}
	f.mu.Unlock()
	if hold {
		<-ctx.Done()
		return nil
	}
	resp := remoting.NewResponse(req, code, "scripted answer "+strconv.Itoa(int(code)))
	if code == remoting.RespSuccess || code == remoting.RespFlushDiskTimeout {
		resp.ExtFields["msgId"] = message.OffsetMsgID(f.host, int64(1000*n))
		resp.ExtFields["queueId"] = req.Ext("e")
		resp.ExtFields["queueOffset"] = strconv.Itoa(n - 1)
		if uniq, ok := message.Property(req.Ext("i"), message.PropertyUniqKey); ok && req.Ext("f") == "4" {
			resp.ExtFields["transactionId"] = uniq
		}
	}
	return resp
}

func (f *fakeBroker) end(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, req)
	if len(f.endCodes) > 0 {
		code := f.endCodes[0]
		f.endCodes = f.endCodes[1:]
		return remoting.NewResponse(req, code, "scripted")
	}
	return remoting.NewResponse(req, f.endCode, f.endRemark)
}

// script sets the codes the next sends are answered with.
func (f *fakeBroker) script(codes ...int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendCodes = codes
}

func (f *fakeBroker) setHold(hold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = hold
}

func (f *fakeBroker) setEnd(code int16, remark string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endCode, f.endRemark = code, remark
}

func (f *fakeBroker) sent() []*remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sends)
}

func (f *fakeBroker) ended() []*remoting.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ends)
}

// beatFor returns the latest heartbeat naming producer group g, if any.
func (f *fakeBroker) beatFor(g string) (fakeBeat, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.beats) - 1; i >= 0; i-- {
		for _, p := range f.beats[i].hb.ProducerDataSet {
			if p.GroupName == g {
				return f.beats[i], true
			}
		}
	}
	return fakeBeat{}, false
}

// beatOtherThan reports whether a heartbeat naming producer group g came
// on a connection other than conn. Not beatFor: the handler of a
// heartbeat read from a connection just closed may record it after the
// ones that came since on a new connection.
func (f *fakeBroker) beatOtherThan(g string, conn *remoting.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.beats {
		if b.conn != conn && slices.ContainsFunc(b.hb.ProducerDataSet, func(p producerData) bool { return p.GroupName == g }) {
			return true
		}
	}
	return false
}

// beatForConsumer is the last heartbeat that names consumer group g.
func (f *fakeBroker) beatForConsumer(g string) (fakeBeat, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.beats) - 1; i >= 0; i-- {
		for _, c := range f.beats[i].hb.ConsumerDataSet {
			if c.GroupName == g {
				return f.beats[i], true
			}
		}
	}
	return fakeBeat{}, false
}

func (f *fakeBroker) beatCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.beats)
}
