package store_test

import (
	"context"
	"fmt"
	"os"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

func Example() {
	dir, _ := os.MkdirTemp("", "store-example")
	defer os.RemoveAll(dir)
	s, err := store.Open(store.Options{Dir: dir, FlushType: store.SyncFlush, SegmentSize: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	props := message.Properties{message.PropertyTags: "created", message.PropertyKeys: "order-42"}.Encode()
	res, err := s.Append(context.Background(), &message.Message{Topic: "orders", Body: []byte("order 42 created"), Properties: props})
	if err != nil {
		panic(err)
	}
	ext, _ := s.ReadMessage(res.PhysicalOffset)
	fmt.Println(res.QueueOffset, string(ext.Body), ext.Property(message.PropertyKeys))
	// Output: 0 order 42 created order-42
}
