package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// The receipt's JSON is a stored format (Temporal histories hold it): its
// field names never change.
func TestHalfReceiptJSON(t *testing.T) {
	r := HalfReceipt{ProducerGroup: "pg", Topic: "payments", BrokerName: "broker-a", BrokerAddr: "127.0.0.1:10911",
		CommitLogOffset: 4096, QueueOffset: 7, MsgID: "7F0000010001ABCDEF0123456789ABCD",
		OffsetMsgID: "7F00000100002A9F0000000000001000", TransactionID: "7F0000010001ABCDEF0123456789ABCD"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	const golden = `{"producerGroup":"pg","topic":"payments","brokerName":"broker-a","brokerAddr":"127.0.0.1:10911",` +
		`"commitLogOffset":4096,"queueOffset":7,"msgId":"7F0000010001ABCDEF0123456789ABCD",` +
		`"offsetMsgId":"7F00000100002A9F0000000000001000","transactionId":"7F0000010001ABCDEF0123456789ABCD"}`
	if string(b) != golden {
		t.Fatalf("JSON\n%s\nwant\n%s", b, golden)
	}
	var back HalfReceipt
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []HalfReceipt{{}, {ProducerGroup: "pg", MsgID: "x"}, {ProducerGroup: "pg", BrokerName: "b"},
		{ProducerGroup: "pg", BrokerName: "b", MsgID: "x", CommitLogOffset: -1}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidReceipt) {
			t.Errorf("Validate(%+v) = %v", bad, err)
		}
	}
}

// What SendHalf puts on the wire, and the receipt it makes of the answer.
func TestSendHalfWire(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg-wire"})
	ctx := ctxT(t, 10*time.Second)
	if _, err := p.SendHalf(ctx, &Message{Topic: "pay", Body: []byte("x"), DelayLevel: 3}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("delayed half message: %v", err)
	}
	r, err := p.SendHalf(ctx, &Message{Topic: "pay", Body: []byte("x"), Keys: []string{"order-1"}})
	if err != nil {
		t.Fatal(err)
	}
	half := f.sent()[0]
	props := message.ParseProperties(half.Ext("i"))
	if half.Code != remoting.ReqSendMessageV2 || half.Ext("f") != "4" || half.Ext("a") != "pg-wire" ||
		props[message.PropertyTransactionPrepared] != "true" || props[message.PropertyProducerGroup] != "pg-wire" ||
		props[message.PropertyUniqKey] != r.MsgID {
		t.Fatalf("half message header %v", half.ExtFields)
	}
	want := HalfReceipt{ProducerGroup: "pg-wire", Topic: "pay", BrokerName: fakeBrokerName, BrokerAddr: f.addr,
		CommitLogOffset: 1000, QueueOffset: 0, MsgID: r.MsgID, OffsetMsgID: message.OffsetMsgID(f.host, 1000), TransactionID: r.MsgID}
	if r != want {
		t.Fatalf("receipt %+v\nwant    %+v", r, want)
	}
}

// What EndTransaction puts on the wire, and how its answers map to errors.
func TestEndTransactionWire(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg-wire"})
	ctx := ctxT(t, 10*time.Second)
	r := HalfReceipt{ProducerGroup: "pg-wire", Topic: "pay", BrokerName: fakeBrokerName,
		CommitLogOffset: 1000, QueueOffset: 3, MsgID: "UNIQ", TransactionID: "TX"}
	f.setEnd(remoting.RespSuccess, "")
	if err := p.EndTransaction(ctx, r, Commit); err != nil {
		t.Fatal(err)
	}
	end := f.ended()[0]
	wantExt := map[string]string{"producerGroup": "pg-wire", "tranStateTableOffset": "3", "commitLogOffset": "1000",
		"commitOrRollback": "8", "fromTransactionCheck": "false", "msgId": "UNIQ", "transactionId": "TX"}
	for k, v := range wantExt {
		if end.Ext(k) != v {
			t.Fatalf("END_TRANSACTION %s = %q, want %q (all: %v)", k, end.Ext(k), v, end.ExtFields)
		}
	}
	if end.IsOneway() {
		t.Fatal("END_TRANSACTION sent oneway; the caller must learn the outcome")
	}
	f.setEnd(remoting.RespTransactionFailed, "already rolled back")
	if err := p.EndTransaction(ctx, r, Commit); !errors.Is(err, ErrTransactionConflict) || IsRetryable(err) {
		t.Fatalf("TRANSACTION_FAILED: %v", err)
	}
	f.setEnd(remoting.RespSystemError, "no such half message")
	err := p.EndTransaction(ctx, r, Rollback)
	if !errors.Is(err, ErrTransactionRejected) || IsRetryable(err) || !strings.Contains(err.Error(), "no such half message") ||
		f.ended()[2].Ext("commitOrRollback") != "12" {
		t.Fatalf("SYSTEM_ERROR: %v", err)
	}
	f.setEnd(remoting.RespSystemBusy, "busy")
	if err := p.EndTransaction(ctx, r, Commit); !IsRetryable(err) {
		t.Fatalf("SYSTEM_BUSY: %v should be retryable", err)
	}
	// A flush timeout (what a halfback broker answers when the commit
	// record's SYNC_FLUSH times out: the record stays queued and is applied
	// once durable, so ending again gets SUCCESS) is a retryable
	// ErrNotDurable, as for Send: not a permanent failure of a transaction
	// that is, or will be, committed.
	for _, code := range []int16{remoting.RespFlushDiskTimeout, remoting.RespFlushSlaveTimeout} {
		f.setEnd(code, "flush timeout")
		if err := p.EndTransaction(ctx, r, Commit); !IsRetryable(err) || !errors.Is(err, ErrNotDurable) {
			t.Errorf("END_TRANSACTION answered code %d: %v; want a retryable ErrNotDurable", code, err)
		}
	}
	other := newProducer(t, c, ProducerOptions{Group: "other"})
	if err := other.EndTransaction(ctx, r, Commit); !errors.Is(err, ErrInvalidReceipt) {
		t.Fatalf("receipt of another group: %v", err)
	}
	if err := p.EndTransaction(ctx, r, Unknown); !errors.Is(err, ErrInvalidReceipt) {
		t.Fatalf("ending with Unknown: %v", err)
	}
}

// A receipt whose broker the name servers no longer route is ended at the
// address it recorded.
func TestEndTransactionAtRecordedAddress(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg-addr"})
	ctx := ctxT(t, 10*time.Second)
	r := HalfReceipt{ProducerGroup: "pg-addr", Topic: "pay", BrokerName: "gone", BrokerAddr: f.addr,
		CommitLogOffset: 1, MsgID: "ID", TransactionID: "ID"}
	if err := p.EndTransaction(ctx, r, Rollback); err != nil || len(f.ended()) != 1 {
		t.Fatalf("EndTransaction = %v, %d requests", err, len(f.ended()))
	}
	r.BrokerAddr = ""
	if err := p.EndTransaction(ctx, r, Rollback); !errors.Is(err, ErrBrokerNotFound) {
		t.Fatalf("no address: %v", err)
	}
}

// checkCommand is a CHECK_TRANSACTION_STATE request about a half message
// of group in topic, as a broker sends it.
func checkCommand(t testing.TB, group, topic string) *remoting.Command {
	t.Helper()
	props := message.Properties{message.PropertyProducerGroup: group, message.PropertyUniqKey: "UNIQ-1",
		message.PropertyTransactionPrepared: "true", message.PropertyKeys: "order-9", "tenant": "acme"}.Encode()
	m := &message.Message{Topic: topic, QueueID: 2, SysFlag: message.TransactionPreparedType, BornTimestamp: time.Now().UnixMilli(),
		BornHost: netip.MustParseAddrPort("127.0.0.1:5555"), StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
		Body: []byte("pay 10"), Properties: props}
	rec, err := message.AppendRecord(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	message.SetOffsets(rec, 5, 8192, time.Now().UnixMilli())
	req := remoting.NewRequest(remoting.ReqCheckTransactionState, map[string]string{
		"tranStateTableOffset": "5", "commitLogOffset": "8192", "msgId": "UNIQ-1", "transactionId": "UNIQ-1",
		"offsetMsgId": message.OffsetMsgID(m.StoreHost, 8192)})
	req.Body = rec
	return req
}

// A check's answer the broker refuses as busy (SYSTEM_BUSY: a burst of
// answers filled its connection's MaxInFlight) is sent again, not lost:
// a lost answer is a check counted against the half message's CheckMax
// for nothing, and with a low CheckMax the committed transaction parked.
func TestCheckAnswerRetriedWhenBrokerBusy(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	newProducer(t, c, ProducerOptions{Group: "pg-busy", CheckListener: CheckListenerFunc(
		func(context.Context, *CheckRequest) TransactionState { return Commit })})
	var beat fakeBeat
	waitFor(t, "a heartbeat naming the group", func() (ok bool) { beat, ok = f.beatFor("pg-busy"); return ok })
	f.mu.Lock()
	f.endCode, f.endCodes = remoting.RespSuccess, []int16{remoting.RespSystemBusy, remoting.RespSystemBusy}
	f.mu.Unlock()
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-busy", "pay")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer past two busy refusals", func() bool { return len(f.ended()) == 3 })
	for i, end := range f.ended() {
		if end.Ext("commitOrRollback") != "8" || end.Ext("fromTransactionCheck") != "true" || end.IsOneway() {
			t.Fatalf("answer %d: %v", i, end)
		}
	}
}

// A check-back is answered on its connection with END_TRANSACTION
// fromTransactionCheck=true carrying the listener's decision.
func TestCheckBackWire(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	asked := make(chan *CheckRequest, 1)
	var answer atomic.Int64
	answer.Store(int64(Commit))
	newProducer(t, c, ProducerOptions{Group: "pg-check", CheckListener: CheckListenerFunc(
		func(_ context.Context, r *CheckRequest) TransactionState {
			asked <- r
			return TransactionState(answer.Load())
		})})
	var beat fakeBeat
	waitFor(t, "a heartbeat naming the group", func() (ok bool) { beat, ok = f.beatFor("pg-check"); return ok })
	f.setEnd(remoting.RespSuccess, "")
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-check", "pay")); err != nil {
		t.Fatal(err)
	}
	r := <-asked
	m := r.Message
	if m.Topic != "pay" || m.QueueID != 2 || string(m.Body) != "pay 10" || m.Keys[0] != "order-9" ||
		m.Properties["tenant"] != "acme" || m.MsgID != "UNIQ-1" {
		t.Fatalf("listener saw %+v", m)
	}
	if r.Receipt.ProducerGroup != "pg-check" || r.Receipt.QueueOffset != 5 || r.Receipt.CommitLogOffset != 8192 ||
		r.Receipt.BrokerName != fakeBrokerName || r.Receipt.BrokerAddr != f.addr {
		t.Fatalf("check receipt %+v", r.Receipt)
	}
	waitFor(t, "the answer", func() bool { return len(f.ended()) == 1 })
	end := f.ended()[0]
	for k, v := range map[string]string{"producerGroup": "pg-check", "tranStateTableOffset": "5", "commitLogOffset": "8192",
		"commitOrRollback": strconv.Itoa(int(message.TransactionCommitType)), "fromTransactionCheck": "true",
		"msgId": "UNIQ-1", "transactionId": "UNIQ-1"} {
		if end.Ext(k) != v {
			t.Fatalf("END_TRANSACTION %s = %q, want %q", k, end.Ext(k), v)
		}
	}
	// A check for a group without a listener here is left unanswered.
	if err := beat.conn.InvokeOneway(checkCommand(t, "someone-else", "pay")); err != nil {
		t.Fatal(err)
	}
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-check", "pay")); err != nil {
		t.Fatal(err)
	}
	<-asked
	waitFor(t, "the second answer", func() bool { return len(f.ended()) == 2 })
	if g := f.ended()[1].Ext("producerGroup"); g != "pg-check" {
		t.Fatalf("answered a check for group %q", g)
	}
	// Unknown is answered oneway (Apache RocketMQ's broker never replies).
	answer.Store(int64(Unknown))
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-check", "pay")); err != nil {
		t.Fatal(err)
	}
	<-asked
	waitFor(t, "the unknown answer", func() bool { return len(f.ended()) == 3 })
	if end := f.ended()[2]; end.Ext("commitOrRollback") != "0" || !end.IsOneway() {
		t.Fatalf("unknown answered as %v", end)
	}
	// A state that is none of the three is answered as unknown.
	answer.Store(7)
	if err := beat.conn.InvokeOneway(checkCommand(t, "pg-check", "pay")); err != nil {
		t.Fatal(err)
	}
	<-asked
	waitFor(t, "the invalid state's answer", func() bool { return len(f.ended()) == 4 })
	if end := f.ended()[3]; end.Ext("commitOrRollback") != "0" || !end.IsOneway() {
		t.Fatalf("state 7 answered as %v", end)
	}
}

// EndTransaction called with a context whose deadline has passed (a
// request whose budget ran out during the local transaction) fails on its
// own and does not close the client's connection to the broker, which
// every other send, pull and END_TRANSACTION of the Client shares.
func TestExpiredEndTransactionKeepsTheSharedConnection(t *testing.T) {
	f := startFake(t)
	c := newClient(t, f.addr, nil)
	p := newProducer(t, c, ProducerOptions{Group: "pg-exp"})
	ctx := ctxT(t, 10*time.Second)
	r := HalfReceipt{ProducerGroup: "pg-exp", Topic: "pay", BrokerName: fakeBrokerName, BrokerAddr: f.addr,
		CommitLogOffset: 1000, QueueOffset: 3, MsgID: "UNIQ", TransactionID: "TX"}
	f.setEnd(remoting.RespSuccess, "")
	if err := p.EndTransaction(ctx, r, Commit); err != nil {
		t.Fatal(err)
	}
	conn, err := c.pool.get(ctx, f.addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 32 {
		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		err := p.EndTransaction(expired, r, Commit)
		cancel()
		if err == nil {
			t.Fatalf("EndTransaction %d with an expired context succeeded", i)
		}
		if cerr := conn.Err(); cerr != nil {
			t.Fatalf("EndTransaction %d with an expired context closed the client's shared broker connection: %v (call error: %v)", i, cerr, err)
		}
	}
}
