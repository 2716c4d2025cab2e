// Command kafka-consumer is a sample downstream service of the Kafka mirror
// (package mirror): a github.com/IBM/sarama consumer group that reads the
// mirrored topic and prints one line per record, continuing each record's
// trace.
//
//	go run ./samples/kafka-consumer [--brokers 127.0.0.1:9092] [--topic order-events] [--group coupon-analytics]
//	    [--tag OrderPaid] [--from oldest|newest] [--max N] [--config config.yaml]
//
// The brokers default to the development Kafka of samples/kafka-dev, which
// the mirror (mirror.kafka in config.yaml) writes to in the demo.
//
// It keeps the records whose TAGS header (the RocketMQ tag, copied by the
// mirror) is --tag, all of them when --tag is empty, and prints for each
//
//	partition=2 offset=17 key=order-1 tag=OrderPaid msgId=AC1100... trace=4bf92f35... body={"orderId":"order-1",...}
//
// the key being the order id (the message's KEYS), msgId the RocketMQ
// message id (header rocketmq.msgId) and trace the trace id of the W3C
// traceparent header, "-" when a header is missing or invalid. Each record
// printed is processed in a span "process <topic>" (kind consumer), a child
// of the record's traceparent: the mirror's publish span, itself in the
// trace of the order's workflow.
//
// Every record read, kept or not, is marked consumed, and the group's
// offsets are committed to Kafka (every second, and on exit), so a restart
// of the group goes on where it stopped. --from says where a group without
// committed offsets starts: at the oldest record or only with new ones.
// --max N stops after N printed records; otherwise it runs until SIGINT or
// SIGTERM.
//
// Spans go to the global tracer provider, which records nothing unless
// --config names a config file: then its telemetry section sets up the
// exporter (as for the other samples), under the service name
// halfback-kafka-consumer unless telemetry.serviceName says otherwise.
package main
