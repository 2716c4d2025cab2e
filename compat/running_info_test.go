package compat

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/halfbackmq/halfback/internal/admin"
)

// TestOfficialConsumerRunningInfo: an administration tool's
// GET_CONSUMER_RUNNING_INFO reaches the official Go client's push consumer
// through the broker (as mqadmin consumerRunningInfo through RocketMQ's),
// and its report (subscriptions, the queues it holds) comes back.
func TestOfficialConsumerRunningInfo(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ri"), uniq("rig")
	sendTagged(t, c, topic, "A", "B")
	ctx := context.Background()
	ac, clientID := officialConsumerOnline(t, c, group, topic, 2)
	info, err := ac.ConsumerRunningInfo(ctx, group, clientID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, topic) || !strings.Contains(info, "subscriptionSet") {
		t.Fatalf("running info of the official consumer does not name its subscription to %s:\n%s", topic, info)
	}
	if _, err := ac.ConsumerRunningInfo(ctx, group, "no-such-client"); err == nil || !strings.Contains(err.Error(), "not online") {
		t.Fatalf("running info of a client not online: %v, want the broker's refusal", err)
	}
}

// TestOfficialConsumerStatus: INVOKE_BROKER_TO_GET_CONSUMER_STATUS (mqadmin
// getConsumerStatus) reaches the official Go client's push consumer as
// GET_CONSUMER_STATUS_FROM_CLIENT, and its offsets of the topic come back
// under its client id.
func TestOfficialConsumerStatus(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("cs"), uniq("csg")
	sendTagged(t, c, topic, "A", "B", "C")
	ctx := context.Background()
	ac, clientID := officialConsumerOnline(t, c, group, topic, 3)
	// The client updates its in-memory offsets after each message: poll
	// until they add up to the three consumed.
	waitFor(t, 20*time.Second, "the consumer's offsets to cover the three messages", func() bool {
		rows, err := ac.ConsumerStatus(ctx, group, topic, "")
		sum := int64(0)
		for _, r := range rows {
			if r.ClientID != clientID || r.Topic != topic {
				t.Fatalf("row %+v, want %s's queues of %s", r, clientID, topic)
			}
			sum += r.Offset
		}
		return err == nil && sum == 3
	})
}

// TestOfficialConsumeMessageDirectly: CONSUME_MESSAGE_DIRECTLY as mqadmin
// consumeMessage sends it (no brokerName) reaches the official Go client's
// listener with the message and, in its queue, the broker's name, which
// RocketMQ's broker fills in before forwarding; the client's result comes
// back.
func TestOfficialConsumeMessageDirectly(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("cmd"), uniq("cmdg")
	sendTagged(t, c, topic, "A")
	type call struct {
		broker, offsetID string
	}
	calls := make(chan call, 16)
	pc, err := consumer.NewPushConsumer(consumer.WithNsResolver(c.resolver()), consumer.WithGroupName(group),
		consumer.WithInstance(uniq("ci")), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			cc, _ := primitive.GetConcurrentlyCtx(ctx)
			for _, m := range ms {
				calls <- call{broker: cc.MQ.BrokerName, offsetID: m.OffsetMsgId}
			}
			return consumer.ConsumeSuccess, nil
		}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Shutdown() })
	var first call
	select {
	case first = <-calls:
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer got no message in 30 s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	gc, err := ac.GroupConnections(ctx, group)
	if err != nil || len(gc.Clients) != 1 {
		t.Fatalf("group connections: %+v, %v", gc, err)
	}
	// The official Go client writes consumeResult as CMResult's ordinal
	// (0); admin reads it as the Java client's name.
	res, err := ac.ConsumeMessageDirectly(ctx, group, gc.Clients[0].ClientID, first.offsetID)
	if err != nil || res.ConsumeResult != "CR_SUCCESS" {
		t.Fatalf("CONSUME_MESSAGE_DIRECTLY: %+v, %v, want the client's success", res, err)
	}
	direct := <-calls
	if direct.offsetID != first.offsetID || direct.broker != c.opts.BrokerName {
		t.Fatalf("the listener got message %s of broker %q, want %s of %q", direct.offsetID, direct.broker, first.offsetID, c.opts.BrokerName)
	}
}

// officialConsumerOnline starts an official Go push consumer of group on
// topic, waits until it has consumed n distinct messages, and returns an
// admin client of the broker (closed when the test ends) and the
// consumer's client id.
func officialConsumerOnline(t *testing.T, c *cluster, group, topic string, n int) (*admin.Client, string) {
	t.Helper()
	got := newReceived()
	selectingConsumer(t, c, group, topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}, got)
	waitFor(t, 30*time.Second, "the consumer's messages", func() bool { return got.distinct() == n })
	ctx := context.Background()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	gc, err := ac.GroupConnections(ctx, group)
	if err != nil || len(gc.Clients) != 1 {
		t.Fatalf("group connections: %+v, %v", gc, err)
	}
	return ac, gc.Clients[0].ClientID
}
