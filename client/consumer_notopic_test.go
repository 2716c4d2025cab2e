package client

import (
	"context"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/admin"
)

// TestConsumerOfATopicNotCreatedYetCommitsWithoutError: under auto-creation
// the name server routes a topic no broker has yet (TBW102's queues), so a
// consumer (the Kafka mirror of a topic no message has reached) takes its
// queues at offset 0. Nothing is there to commit: the broker answers
// TOPIC_NOT_EXIST to such a commit, and the consumer must neither fail its
// commits every PersistInterval nor its Close over it.
func TestConsumerOfATopicNotCreatedYetCommitsWithoutError(t *testing.T) {
	cl := startCluster(t, nil, nil)
	c := newClient(t, cl.ns.Addr(), nil)
	topic := uniq("notyet")
	pc := startConsumer(t, c, ConsumerOptions{Group: uniq("g"), PersistInterval: 50 * time.Millisecond}, topic, "*",
		func(context.Context, []*MessageExt) (ConsumeResult, error) { return ConsumeSuccess, nil })
	waitFor(t, "the consumer to start the topic's queues", func() bool { return len(ownQueues(pc, topic)) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pc.persist(ctx, false); err != nil {
		t.Fatalf("periodic commit of a topic the broker does not have yet: %v", err)
	}
	// Once the topic exists, the queues' offsets are committed after all,
	// so that a restart of the group starts where it was, not at the end.
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	sendN(t, p, topic, "first", "", 1)
	ac, err := admin.Dial(ctx, cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitFor(t, "every queue's offset committed once the topic exists", func() bool {
		if err := pc.persist(ctx, false); err != nil {
			t.Fatalf("commit once the topic exists: %v", err)
		}
		for _, mq := range ownQueues(pc, topic) {
			if _, ok, err := ac.QueryOffset(ctx, pc.opts.Group, topic, mq.QueueID); err != nil || !ok {
				return false
			}
		}
		return true
	})
	if err := pc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
