package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/namesrv"
)

// A producer against an in-process name server and broker: a plain send,
// then a transaction whose receipt goes through JSON (as it would through
// a Temporal activity) before it is committed.
func Example() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "halfback-client-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	b, err := broker.Open(broker.Options{Store: store.Options{Dir: dir, SegmentSize: 16 << 20},
		ListenAddr: "127.0.0.1:0", NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	c, err := client.New(client.Options{NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
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
