package broker

import (
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// The trace context lives in the stored properties, so a broker restart
// does not cut a message's trace: a delayed message delivered after the
// restart, and a transaction committed after it, still have their spans
// in their producers' traces.
func TestTraceContextSurvivesARestart(t *testing.T) {
	rec := recordSpans(t)
	o := txnOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	tpDelay, tidDelay := traceparent(t, "8bf92f3577b34da6a3ce929d0e0e4740")
	tpTxn, tidTxn := traceparent(t, "9bf92f3577b34da6a3ce929d0e0e4741")
	mustSend(t, c, "orders", 0, props("UNIQ_KEY", "late1", "DELAY", "5", "traceparent", tpDelay), "later")
	ref := sendHalfTraced(t, c, "orders", "txn1", tpTxn)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = startBroker(t, o)
	c = dial(t, b)
	if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != remoting.RespSuccess {
		t.Fatalf("commit after the restart: %d %s", r.Code, r.Remark)
	}
	waitFor(t, "the delayed message's delivery and the commit's spans", func() bool {
		d, x := spansOf(rec, tidDelay), spansOf(rec, tidTxn)
		return len(d["deliver_scheduled orders"]) == 1 && len(x["end_transaction orders"]) == 1 && len(x["store orders"]) == 1
	})
	if s := spansOf(rec, tidDelay)["deliver_scheduled orders"][0]; s.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		attr(s, "messaging.message.id") != "late1" {
		t.Errorf("deliver span after the restart: parent %v, attributes %v", s.Parent(), s.Attributes())
	}
	if s := spansOf(rec, tidTxn)["end_transaction orders"][0]; s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("end_transaction span after the restart: parent %v", s.Parent())
	}
	if m := traceOne(t, b, tidTxn.String()); m.MsgID != "txn1" {
		t.Errorf("lifecycle by trace id after the restart: %+v", m)
	}
}
