package activities_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/activities"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

// A workflow reset to before its pay step while the replaced run's half
// message is still live (its local transaction never committed: the
// database was down, the check-back answered unknown) and paid again with
// another payment: the new run's step gets the same transaction id. The
// OrderPaid event consumers see must name the payment the database
// recorded.
func TestResetRunPayStepDoesNotCommitTheReplacedRunsPayment(t *testing.T) {
	ctx := ctxT(t)
	_, c, p := startProducer(t, txnbridgetest.BrokerOptions{TxnTimeout: time.Hour})
	db := txnbridgetest.OpenDB(t)
	if err := db.SetStock(ctx, "sku", 1); err != nil {
		t.Fatal(err)
	}
	a := &activities.Activities{Producer: p, DB: db}
	order := workflows.OrderInput{OrderID: "o1", User: "u", SKU: "sku", Qty: 1, Amount: 1500}
	if err := a.CreateOrderLocal(ctx, "o1/create", order); err != nil {
		t.Fatal(err)
	}
	const txnID = "o1/pay"
	half := func(paymentID string) workflows.SendHalfInput {
		body, _ := json.Marshal(workflows.OrderEvent{OrderID: "o1", User: "u", Amount: 1500, PaymentID: paymentID})
		return workflows.SendHalfInput{TxnID: txnID, Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderPaid,
			Keys: []string{"o1"}, Body: body}
	}
	// The replaced run stored its half message with p1, then stopped.
	if _, err := a.SendHalf(ctx, half("p1")); err != nil {
		t.Fatal(err)
	}
	// The reset run pays with p2 under the same transaction id.
	p2 := workflows.PayInput{PaymentID: "p2", Amount: 1500}
	r, err := a.SendHalf(ctx, half("p2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.MarkPaidLocal(ctx, txnID, "o1", p2); err != nil {
		t.Fatal(err)
	}
	events := consume(t, c, workflows.TopicOrderEvents)
	if err := a.EndTransaction(ctx, workflows.EndInput{Receipt: r, Commit: true}); err != nil {
		t.Fatal(err)
	}
	m := receive(t, events, "committed OrderPaid")
	var ev workflows.OrderEvent
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.PaymentID != "p2" {
		t.Fatalf("committed OrderPaid names payment %q; the database recorded p2", ev.PaymentID)
	}
}
