package compat

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"

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
	got := newReceived()
	selectingConsumer(t, c, group, topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}, got)
	waitFor(t, 30*time.Second, "the consumer's messages", func() bool { return got.distinct() == 2 })

	ctx := context.Background()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	gc, err := ac.GroupConnections(ctx, group)
	if err != nil || len(gc.Clients) != 1 {
		t.Fatalf("group connections: %+v, %v", gc, err)
	}
	info, err := ac.ConsumerRunningInfo(ctx, group, gc.Clients[0].ClientID)
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
