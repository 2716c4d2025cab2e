package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/halfbackmq/halfback/client"
)

// A producer against an in-process name server and broker: a plain send,
// then a transaction whose receipt goes through JSON (as it would through
// a Temporal activity) before it is committed.
func Example() {
	c, stop := exampleClient()
	defer stop()
	p, err := c.NewProducer(client.ProducerOptions{Group: "example-producer"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := p.Send(ctx, &client.Message{Topic: "order-events", Tags: "created",
		Keys: []string{"order-1"}, Body: []byte(`{"order":1}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent to", res.Topic, "at offset", res.QueueOffset)

	receipt, err := p.SendHalf(ctx, &client.Message{Topic: "payments", Body: []byte(`{"order":1,"amount":10}`)})
	if err != nil {
		log.Fatal(err)
	}
	payload, _ := json.Marshal(receipt) // persisted; any process of the group may end it
	var back client.HalfReceipt
	if err := json.Unmarshal(payload, &back); err != nil {
		log.Fatal(err)
	}
	if err := p.EndTransaction(ctx, back, client.Commit); err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed", back.MsgID == receipt.MsgID)
	// Output:
	// sent to order-events at offset 0
	// committed true
}
