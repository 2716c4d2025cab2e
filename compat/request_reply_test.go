package compat

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// The official client's request-reply: Producer.Request sends a message
// and waits for the reply a consumer sends back with CreateReplyMessage
// (which needs the CLUSTER property the broker stamps); the broker pushes
// the reply to the requester (PUSH_REPLY_MESSAGE_TO_CLIENT).
func TestRequestReply(t *testing.T) {
	c := startCluster(t)
	requester := newProducer(t, c)
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
		})

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
}
