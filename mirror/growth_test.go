package mirror_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
)

// TestMirrorCopiesQueuesAddedToATopic grows a mirrored topic from 4 to 8
// queues while the mirror runs (StartFrom default, last): the messages
// stored in the new queues reach Kafka too, and the lag ends at 0.
func TestMirrorCopiesQueuesAddedToATopic(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("grow"), uniq("grow.kafka"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(4, ktopic))
	startMirror(t, mirror.Options{Client: c, Group: group,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	p := newProducer(t, c, client.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []string
	for i := range 8 {
		ids = append(ids, send(t, ctx, p, &client.Message{Topic: topic, Body: []byte(fmt.Sprint("before-", i))}))
	}
	r.waitIDs(t, 30*time.Second, ids)
	ac, err := admin.Dial(ctx, st.Broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.CreateTopic(ctx, topic, 2*queues); err != nil {
		t.Fatal(err)
	}
	// Send until a message lands in each new queue.
	seen := map[int32]bool{}
	testutil.WaitFor(t, 30*time.Second, "messages in the new queues", func() bool {
		res, err := p.Send(ctx, &client.Message{Topic: topic, Body: []byte("after")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MsgID)
		seen[res.QueueID] = true
		for q := int32(queues); q < 2*queues; q++ {
			if !seen[q] {
				return false
			}
		}
		return true
	})
	r.waitIDs(t, 30*time.Second, ids)
	testutil.WaitFor(t, 30*time.Second, "no lag", func() bool { return groupLag(t, st.Broker.Addr(), group, topic) == 0 })
}
