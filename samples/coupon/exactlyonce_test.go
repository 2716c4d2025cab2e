package coupon

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
	"github.com/halfbackmq/halfback/workflows"
)

func sendPaid(t *testing.T, p *client.Producer, orderID string) {
	t.Helper()
	body, _ := json.Marshal(workflows.OrderEvent{OrderID: orderID, User: "ann", Amount: 1999})
	if _, err := p.Send(context.Background(), &client.Message{Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderPaid,
		Keys: []string{orderID}, Body: body, ID: orderID + "/pay"}); err != nil {
		t.Fatal(err)
	}
}

func waitCoupons(t *testing.T, db *orders.DB, n int) map[string]int {
	t.Helper()
	var c map[string]int
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d orders with coupons", n), func() bool {
		var err error
		c, err = db.Coupons(context.Background())
		return err == nil && len(c) >= n
	})
	return c
}

// TestCrashAfterCommitRedeliveredThroughRetryTopic: the grant commits but
// the acknowledgement is lost (the handler reports failure after it, as a
// crash between commit and ack would): the message comes back through
// %RETRY%<group> with the same message id and grants nothing.
func TestCrashAfterCommitRedeliveredThroughRetryTopic(t *testing.T) {
	stack := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	db := txnbridgetest.OpenDB(t)
	c := txnbridgetest.NewClient(t, stack.NamesrvAddr)
	p, err := c.NewProducer(client.ProducerOptions{Group: "eo-payer"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	o := Options{Group: "eo-retry", Logger: txnbridgetest.Logger(t), Observe: func(m *client.MessageExt, g bool) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s reconsume=%d granted=%t", m.MsgID, m.ReconsumeTimes, g))
		mu.Unlock()
	}}
	h := Handler(db, o)
	var calls atomic.Int64
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: o.Group, FromWhere: client.ConsumeFromFirst})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(workflows.TopicOrderEvents, workflows.TagOrderPaid, func(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		res, err := h(ctx, msgs)
		if calls.Add(1) == 1 {
			return client.ConsumeRetryLater, fmt.Errorf("crash after commit")
		}
		return res, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sendPaid(t, p, "o-r1")
	testutil.WaitFor(t, 60*time.Second, "the redelivery", func() bool { return calls.Load() >= 2 })
	coupons := waitCoupons(t, db, 1)
	mu.Lock()
	defer mu.Unlock()
	if coupons["o-r1"] != 1 {
		t.Errorf("coupons %v, want one for o-r1; deliveries %v", coupons, seen)
	}
}

// TestTwoMembersAndRestartGrantOnce: two members of the group over one
// order database, the first closed mid-stream (its queues handed over),
// and a fresh member started after: every order gets one coupon.
func TestTwoMembersAndRestartGrantOnce(t *testing.T) {
	stack := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	db := txnbridgetest.OpenDB(t)
	pcl := txnbridgetest.NewClient(t, stack.NamesrvAddr)
	p, err := pcl.NewProducer(client.ProducerOptions{Group: "eo-payer2"})
	if err != nil {
		t.Fatal(err)
	}
	start := func() *client.PushConsumer {
		pc, err := Start(context.Background(), txnbridgetest.NewClient(t, stack.NamesrvAddr), db,
			Options{Group: "eo-two", Logger: txnbridgetest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	const n = 60
	a := start()
	for i := range n / 3 {
		sendPaid(t, p, fmt.Sprintf("o-%d", i))
	}
	b := start()
	for i := n / 3; i < 2*n/3; i++ {
		sendPaid(t, p, fmt.Sprintf("o-%d", i))
	}
	a.Close()
	for i := 2 * n / 3; i < n; i++ {
		sendPaid(t, p, fmt.Sprintf("o-%d", i))
	}
	waitCoupons(t, db, n)
	b.Close()
	c := start() // a fresh process: offsets from the broker
	defer c.Close()
	sendPaid(t, p, "o-last")
	coupons := waitCoupons(t, db, n+1)
	for id, k := range coupons {
		if k != 1 {
			t.Errorf("order %s got %d coupons", id, k)
		}
	}
}
