// Command kafka-dev runs a development Kafka for the mirror demo: one broker
// of github.com/twmb/franz-go/pkg/kfake, an in-process fake of Kafka that
// speaks the real wire protocol, so sarama (the mirror, the sample
// consumer) and any other Kafka client talk to it as to Kafka.
//
//	go run ./samples/kafka-dev [--addr 127.0.0.1:9092] [--data-dir DIR] [--topics order-events:4,...] [--ready-file F]
//
// It is a development stand-in, not a production Kafka: a single broker,
// no replication, no authentication, and kfake's own storage. It listens
// on a loopback address only (--addr; port 0 picks a free one), creates the
// --topics with their partition counts, logs one line "kafka dev server
// ready" with the address it listens on, writes that address to
// --ready-file if given, and runs until SIGINT or SIGTERM. Topics a client
// asks for that do not exist are created with one partition, as Kafka's
// auto.create.topics.enable does, unless --auto-create=false.
//
// Without --data-dir everything lives in memory and is lost on exit. With
// it, kfake persists topics, records and committed group offsets there and
// reloads them on the next start; a --topics entry the directory does not
// hold yet is then created, one it holds keeps its partition count.
package main
