package mirror_test

import (
	"errors"
	"fmt"

	"github.com/halfbackmq/halfback/mirror"
)

// A topic mapping as config.yaml's mirror.kafka.topics writes it: a bare
// name maps a topic to the Kafka topic of the same name.
func ExampleParseTopics() {
	topics, err := mirror.ParseTopics("orders=orders.v1, payments")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range topics {
		fmt.Printf("%s -> %s\n", t.RocketMQ, t.Kafka)
	}
	// Output:
	// orders -> orders.v1
	// payments -> payments
}

// Options are checked before anything connects; an *OptionError names
// the field at fault.
func ExampleOptions_Validate() {
	err := mirror.Options{
		Topics: []mirror.TopicMapping{{RocketMQ: "orders", Kafka: "orders.v1"}},
		Kafka:  mirror.KafkaOptions{Brokers: []string{"kafka-1:9092"}, RequiredAcks: "none"},
	}.Validate()
	var oe *mirror.OptionError
	if errors.As(err, &oe) {
		fmt.Println(oe.Field, errors.Is(err, mirror.ErrInvalidOptions))
	}
	// Output:
	// Kafka.RequiredAcks true
}
