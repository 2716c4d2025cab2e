package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/namesrv"
)

// A push consumer against an in-process name server and broker: it
// receives the order events whose tag it subscribed to.
func ExamplePushConsumer() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "halfback-consumer-example")
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
