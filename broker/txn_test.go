package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/message"
)

// txnOptions check back quickly: first check after 100 ms, then every
// 100 ms, parked after 2 checks.
func txnOptions(t *testing.T) Options {
	o := testOptions(t)
	o.Txn = txn.Options{Timeout: 100 * time.Millisecond, CheckInterval: 100 * time.Millisecond, CheckMax: 2,
		CheckpointInterval: 50 * time.Millisecond}
	return o
}

// sendHalfRaw sends a half message the way the official Go client does and
// returns the END_TRANSACTION fields that name it.
func sendHalfRaw(t *testing.T, c *remoting.Conn, topic, id string) map[string]string {
	t.Helper()
	ext := sendExtV2(topic, 0, props("UNIQ_KEY", id, "KEYS", "order-"+id, "TRAN_MSG", "true", "PGROUP", "pg", "DELAY", "2"))
	ext["f"] = strconv.Itoa(int(message.TransactionPreparedType))
	resp := call(t, c, remoting.ReqSendMessageV2, ext, []byte("body-"+id))
	if resp.Code != remoting.RespSuccess || resp.Ext("transactionId") != id {
		t.Fatalf("half send: code %d %q ext %v", resp.Code, resp.Remark, resp.ExtFields)
	}
	_, phys, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"producerGroup": "pg", "tranStateTableOffset": resp.Ext("queueOffset"),
		"commitLogOffset": strconv.FormatInt(phys, 10), "msgId": id, "transactionId": id, "fromTransactionCheck": "false"}
}

func endTxn(t *testing.T, c *remoting.Conn, ref map[string]string, outcome int32, edits ...string) *remoting.Command {
	t.Helper()
	ext := map[string]string{}
	for k, v := range ref {
		ext[k] = v
	}
	ext["commitOrRollback"] = strconv.Itoa(int(outcome))
	for i := 0; i+1 < len(edits); i += 2 {
		ext[edits[i]] = edits[i+1]
	}
	return call(t, c, remoting.ReqEndTransaction, ext, nil)
}

func TestTransactionCommitRollbackOverTheWire(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	commit, rollback := sendHalfRaw(t, c, "orders", "c1"), sendHalfRaw(t, c, "orders", "r1")
	if _, hi := b.Store().QueueBounds("orders", 0); hi != 0 {
		t.Fatalf("half messages visible: %d", hi)
	}
	if r := endTxn(t, c, commit, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit: %d %s", r.Code, r.Remark)
	}
	if r := endTxn(t, c, rollback, message.TransactionRollbackType); r.Code != remoting.RespSuccess {
		t.Fatalf("rollback: %d %s", r.Code, r.Remark)
	}
	waitQueue(t, b, "orders", 0, 1)
	for _, tc := range []struct {
		name string
		ref  map[string]string
		o    int32
		code int16
		kv   []string
	}{
		{"repeated commit", commit, message.TransactionCommitType, remoting.RespSuccess, nil},
		{"repeated rollback", rollback, message.TransactionRollbackType, remoting.RespSuccess, nil},
		{"rollback after commit", commit, message.TransactionRollbackType, remoting.RespTransactionFailed, nil},
		{"commit after rollback", rollback, message.TransactionCommitType, remoting.RespTransactionFailed, nil},
		{"wrong group", commit, message.TransactionCommitType, remoting.RespSystemError, []string{"producerGroup", "evil"}},
		{"forged offset", commit, message.TransactionCommitType, remoting.RespSystemError, []string{"commitLogOffset", "12345"}},
		{"forged queue offset", commit, message.TransactionCommitType, remoting.RespSystemError, []string{"tranStateTableOffset", "99"}},
		{"bad outcome", commit, 3, remoting.RespSystemError, nil},
		{"missing offset", commit, message.TransactionCommitType, remoting.RespSystemError, []string{"commitLogOffset", ""}},
	} {
		if r := endTxn(t, c, tc.ref, tc.o, tc.kv...); r.Code != tc.code {
			t.Errorf("%s: code %d %q, want %d", tc.name, r.Code, r.Remark, tc.code)
		}
	}
	if _, hi := b.Store().QueueBounds("orders", 0); hi != 1 {
		t.Fatalf("orders holds %d messages, want 1", hi)
	}
	g, _ := b.Store().GetMessages("orders", 0, 0, store.GetOptions{})
	e, _, err := message.Decode(g.Records)
	if err != nil || e.Property(message.PropertyUniqKey) != "c1" || e.Property(message.PropertyDelayTimeLevel) != "" {
		t.Fatalf("committed message %+v %v", e, err)
	}
}

// txnProducer is a raw producer connection that answers check-backs.
type txnProducer struct {
	*remoting.Conn
	checks chan *remoting.Command
}

func dialProducer(t *testing.T, b *Broker) *txnProducer {
	t.Helper()
	p := &txnProducer{checks: make(chan *remoting.Command, 64)}
	h := remoting.HandlerFunc(func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
		if req.Code == remoting.ReqCheckTransactionState {
			p.checks <- req
		}
		return nil
	})
	c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p.Conn = c
	hbOK(t, c, []byte(`{"clientID":"P1","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`))
	return p
}

func (p *txnProducer) nextCheck(t *testing.T) *remoting.Command {
	t.Helper()
	select {
	case req := <-p.checks:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("no CHECK_TRANSACTION_STATE")
		return nil
	}
}

func TestCheckBackResolvesUnknownTransaction(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	ref := sendHalfRaw(t, c, "orders", "u1")
	if r := endTxn(t, c, ref, message.TransactionNotType); r.Code != remoting.RespSuccess {
		t.Fatalf("unknown: %d %s", r.Code, r.Remark)
	}
	// No producer of the group online: checks reach nobody and are not counted.
	waitFor(t, "an unreached check", func() bool { return b.Transactions().Stats().Unreached > 0 })
	p := dialProducer(t, b)
	req := p.nextCheck(t)
	if req.Ext("commitLogOffset") != ref["commitLogOffset"] || req.Ext("tranStateTableOffset") != ref["tranStateTableOffset"] ||
		req.Ext("transactionId") != "u1" || req.Ext("msgId") != "u1" || req.Ext("offsetMsgId") == "" {
		t.Fatalf("check header %v", req.ExtFields)
	}
	e, _, err := message.Decode(req.Body)
	if err != nil || e.Topic != "orders" || string(e.Body) != "body-u1" || e.Property(message.PropertyProducerGroup) != "pg" ||
		strconv.FormatInt(e.CommitLogOffset, 10) != ref["commitLogOffset"] {
		t.Fatalf("check body %+v %v", e, err)
	}
	// The producer answers from the check, oneway, as the official client does.
	ans := remoting.NewRequest(remoting.ReqEndTransaction, map[string]string{"producerGroup": "pg",
		"tranStateTableOffset": req.Ext("tranStateTableOffset"), "commitLogOffset": req.Ext("commitLogOffset"),
		"commitOrRollback": "8", "fromTransactionCheck": "true", "msgId": "u1", "transactionId": "u1"})
	if err := p.InvokeOneway(ans); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, b, "orders", 0, 1)
	// The state follows once the store has answered for the commit record,
	// a moment after the message is visible.
	waitFor(t, "the check-back's commit in the stats", func() bool {
		s := b.Transactions().Stats()
		return s.CheckCommits == 1 && s.Pending == 0
	})
}

// parkedTxn starts a broker (txnOptions: two checks, then parked) and
// parks one transaction of topic orders, transaction id id, checked back
// twice by a producer that never answers. It returns the broker, a
// connection, that producer, the half message's END_TRANSACTION header and
// the parked transaction as listed.
func parkedTxn(t *testing.T, id string) (*Broker, *remoting.Conn, *txnProducer, map[string]string, txn.Txn) {
	t.Helper()
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	ref := sendHalfRaw(t, c, "orders", id)
	p := dialProducer(t, b)
	p.nextCheck(t)
	p.nextCheck(t)
	var list []txn.Txn
	waitFor(t, "the transaction to be parked", func() bool {
		r := call(t, c, remoting.ReqHalfbackListTransactions, map[string]string{"status": "parked"}, nil)
		return r.Code == remoting.RespSuccess && json.Unmarshal(r.Body, &list) == nil && len(list) == 1
	})
	return b, c, p, ref, list[0]
}

func TestParkedTransactionAdmin(t *testing.T) {
	b, c, p, ref, parked := parkedTxn(t, "p1")
	list := []txn.Txn{parked}
	if list[0].TransactionID != "p1" || list[0].Checks != 2 || list[0].Topic != "orders" {
		t.Fatalf("parked %+v", list[0])
	}
	if r := call(t, c, remoting.ReqHalfbackListTransactions, map[string]string{"status": "bogus"}, nil); r.Code != remoting.RespInvalidParameter {
		t.Fatalf("bad status: %d", r.Code)
	}
	if r := call(t, c, remoting.ReqHalfbackResumeTransaction, map[string]string{"id": "nope"}, nil); r.Code != remoting.RespQueryNotFound {
		t.Fatalf("resume unknown: %d %s", r.Code, r.Remark)
	}
	if r := call(t, c, remoting.ReqHalfbackResumeTransaction, map[string]string{"id": list[0].MsgID}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("resume: %d %s", r.Code, r.Remark)
	}
	p.nextCheck(t) // checked again after resume
	if r := call(t, c, remoting.ReqHalfbackResolveTransaction, map[string]string{"id": "p1", "outcome": "sideways"}, nil); r.Code != remoting.RespInvalidParameter {
		t.Fatalf("bad outcome: %d", r.Code)
	}
	if r := call(t, c, remoting.ReqHalfbackResolveTransaction, map[string]string{"id": "p1", "outcome": "commit"}, nil); r.Code != remoting.RespSuccess {
		t.Fatalf("admin commit: %d %s", r.Code, r.Remark)
	}
	waitQueue(t, b, "orders", 0, 1)
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess || r.Remark != "already committed" {
		t.Fatalf("producer's late commit: %d %q", r.Code, r.Remark)
	}
}

func TestTransactionSurvivesBrokerRestart(t *testing.T) {
	o := txnOptions(t) // no producer online before the restart: no check counted
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := remoting.Dial(context.Background(), b.Addr(), remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pending := sendHalfRaw(t, c, "orders", "x1")
	committed := sendHalfRaw(t, c, "orders", "x2")
	endTxn(t, c, committed, message.TransactionCommitType)
	c.Close()
	b.Close()

	b = startBroker(t, o)
	c = dial(t, b)
	if r := endTxn(t, c, committed, message.TransactionCommitType); r.Code != remoting.RespSuccess || r.Remark != "already committed" {
		t.Fatalf("commit after restart: %d %q", r.Code, r.Remark)
	}
	p := dialProducer(t, b)
	if req := p.nextCheck(t); req.Ext("transactionId") != "x1" {
		t.Fatalf("checked %v", req.ExtFields)
	}
	if r := endTxn(t, c, pending, message.TransactionRollbackType); r.Code != remoting.RespSuccess {
		t.Fatalf("rollback: %d", r.Code)
	}
	waitQueue(t, b, "orders", 0, 1)
	if _, hi := b.Store().QueueBounds("orders", 0); hi != 1 {
		t.Fatalf("orders holds %d", hi)
	}
}

// END_TRANSACTION answers SYSTEM_ERROR (halfback's client: rejected, for
// good) only for what ending again cannot change; a failure of the broker
// itself is SERVICE_NOT_AVAILABLE, which the producer retries.
func TestEndErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int16
	}{
		{fmt.Errorf("x: %w", txn.ErrConflict), remoting.RespTransactionFailed},
		{fmt.Errorf("x: %w", txn.ErrUnknownTransaction), remoting.RespSystemError},
		{fmt.Errorf("x: %w", txn.ErrWrongGroup), remoting.RespSystemError},
		{fmt.Errorf("x: %w", txn.ErrWrongOffset), remoting.RespSystemError},
		{fmt.Errorf("x: %w", store.ErrFlushTimeout), remoting.RespFlushDiskTimeout},
		{fmt.Errorf("x: %w", store.ErrWriteFailed), remoting.RespServiceNotAvailable},
		{txn.ErrClosed, remoting.RespServiceNotAvailable},
		{fmt.Errorf("x: %w: %w", store.ErrSegmentNotReady, syscall.ENOSPC), remoting.RespServiceNotAvailable},
		{errors.New("pebble: read failed"), remoting.RespServiceNotAvailable},
	} {
		if got := endErrorCode(tc.err); got != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.code)
		}
	}
}

// Two open transactions of one transaction id (here two producer groups'
// messages): an operator's commit by that id is refused, and commits
// neither, instead of committing whichever the broker met first.
func TestResolveByASharedTransactionIDIsRefused(t *testing.T) {
	b := startBroker(t, txnOptions(t))
	c := dial(t, b)
	sendHalfRaw(t, c, "orders", "shared")
	ext := sendExtV2("orders", 0, props("UNIQ_KEY", "shared", "TRAN_MSG", "true", "PGROUP", "other-pg"))
	ext["f"] = strconv.Itoa(int(message.TransactionPreparedType))
	if r := call(t, c, remoting.ReqSendMessageV2, ext, []byte("the other group's body")); r.Code != remoting.RespSuccess {
		t.Fatalf("other group's half send: %d %s", r.Code, r.Remark)
	}
	r := call(t, c, remoting.ReqHalfbackResolveTransaction, map[string]string{"id": "shared", "outcome": "commit"}, nil)
	if r.Code != remoting.RespInvalidParameter || !strings.Contains(r.Remark, "offset message id") {
		t.Fatalf("commit by a shared transaction id: %d %q, want INVALID_PARAMETER", r.Code, r.Remark)
	}
	if s := b.Transactions().Stats(); s.Pending != 2 || s.AdminCommits != 0 {
		t.Fatalf("stats %+v, want both pending", s)
	}
	r = call(t, c, remoting.ReqHalfbackResumeTransaction, map[string]string{"id": "shared"}, nil)
	if r.Code != remoting.RespInvalidParameter {
		t.Fatalf("resume by a shared transaction id: %d %q, want INVALID_PARAMETER", r.Code, r.Remark)
	}
}
