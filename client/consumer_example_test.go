package client_test

import (
	"context"
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/halfbackmq/halfback/client"
)

// A push consumer against an in-process name server and broker: it
// receives the order events whose tag it subscribed to.
func ExamplePushConsumer() {
	c, stop := exampleClient()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	p, err := c.NewProducer(client.ProducerOptions{Group: "example-orders"})
	if err != nil {
		log.Fatal(err)
	}
	for i, tag := range []string{"created", "shipped", "paid"} {
		body := fmt.Sprintf(`{"order":%d,"event":%q}`, i+1, tag)
		if _, err := p.Send(ctx, &client.Message{Topic: "order-events", Tags: tag, Body: []byte(body)}); err != nil {
			log.Fatal(err)
		}
	}

	got := make(chan string, 10)
	pc, err := c.NewPushConsumer(client.ConsumerOptions{Group: "example-coupons", FromWhere: client.ConsumeFromFirst})
	if err != nil {
		log.Fatal(err)
	}
	err = pc.Subscribe("order-events", "created || paid", func(ctx context.Context, msgs []*client.MessageExt) (client.ConsumeResult, error) {
		for _, m := range msgs {
			got <- m.Tags + " " + string(m.Body)
		}
		return client.ConsumeSuccess, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := pc.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	var lines []string
	for len(lines) < 2 {
		select {
		case l := <-got:
			lines = append(lines, l)
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// created {"order":1,"event":"created"}
	// paid {"order":3,"event":"paid"}
}
