package compat

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// The official client's request-reply: Producer.Request sends a message
// and waits for the reply a consumer sends back with CreateReplyMessage
// (which needs the CLUSTER property the broker stamps); the broker pushes
// the reply to the requester (PUSH_REPLY_MESSAGE_TO_CLIENT).
func TestRequestReply(t *testing.T) {
	c := startCluster(t)
	// The broker pushes a reply to the requester's connection, found by
	// the client id of its producer heartbeats (as RocketMQ does). The Go
	// client heartbeats only brokers it knows of, a second after start and
	// then every 30 s, so a requester that has just learnt of the broker
	// is not yet known there. Here it shares its client (instance) with
	// the responding consumer, whose Start heartbeats synchronously, after
	// fetching the topic's route.
	instance := uniq("rpci")
	requester, err := rocketmq.NewProducer(producer.WithNsResolver(c.resolver()), producer.WithGroupName(uniq("rpcpg")),
		producer.WithInstanceName(instance), producer.WithRetry(2), producer.WithSendMsgTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := requester.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { requester.Shutdown() })
	responder := newProducer(t, c)
	topic := uniq("rpc")

	var mu sync.Mutex
	var replyErrs []error
	fail := func(err error) {
		mu.Lock()
		replyErrs = append(replyErrs, err)
		mu.Unlock()
	}
	newPushConsumer(t, c, uniq("rpcg"), topic, consumer.Clustering, false,
		func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range ms {
				reply, err := consumer.CreateReplyMessage(m, nil)
				if err != nil {
					fail(err)
					continue
				}
				// CreateReplyMessage of v2.1.2 reads its body argument
				// as properties; the reply's body is set here.
				reply.Body = append([]byte("re: "), m.Body...)
				if _, err := responder.SendSync(ctx, reply); err != nil {
					fail(err)
				}
			}
			return consumer.ConsumeSuccess, nil
		}, consumer.WithInstance(instance))

	for i, body := range []string{"ping-1", "ping-2"} {
		resp, err := requester.Request(context.Background(), 30*time.Second, primitive.NewMessage(topic, []byte(body)))
		mu.Lock()
		errs := replyErrs
		mu.Unlock()
		if err != nil {
			t.Fatalf("request %d: %v (responder errors: %v)", i, err, errs)
		}
		if string(resp.Body) != "re: "+body {
			t.Fatalf("request %d: reply %q", i, resp.Body)
		}
		if resp.GetProperty(primitive.PropertyCorrelationID) == "" {
			t.Fatalf("request %d: reply without CORRELATION_ID: %v", i, resp.GetProperties())
		}
	}
	// Request returns once the reply arrives, which can be before the
	// client has read the broker's answer to the request's own send: the
	// broker stores the request, and the consumer, the responder and the
	// reply's push can all go ahead before the send's handler writes its
	// answer. Shutdown then leaves that send pending, and 3 s later v2.1.2's
	// sendAsync callback, which does not return after its timeout error,
	// reads the nil answer (producer.go:411) and panics the test binary. A
	// synchronous send of the requester, on the same connection, is
	// answered after that earlier answer was written (it needs a group
	// commit of its own): once it returns, nothing is pending.
	if _, err := requester.SendSync(context.Background(), primitive.NewMessage(uniq("rpcdrain"), []byte("drain"))); err != nil {
		t.Fatalf("requester's send after the requests: %v", err)
	}
}
