// Package broker is halfback's RocketMQ-compatible broker: it serves the
// remoting protocol ([github.com/halfbackmq/halfback/broker/remoting]) on top
// of the message store ([github.com/halfbackmq/halfback/broker/store]) and the
// delay scheduler ([github.com/halfbackmq/halfback/delay]), so the official
// RocketMQ clients work against it unchanged.
//
// # Layout
//
// [Broker] owns the store, the scheduler, the topic table and the remoting
// server. Each group of request codes has its own file with a
// register<Name>(mux) method called from [Broker.routes]: topics
// (topics.go), sends (send.go), request-reply (reply.go), pulls with long
// polling (pull.go, longpoll.go), consumer
// groups and offsets (group.go, offsets.go), consumer groups' settings
// (subgroups.go), administration (admin.go, reset.go), ordered-queue locks
// (lock.go), retry and dead-letter queues (sendback.go), lookups
// (lookup.go), SQL92 property filters (sqlfilter.go, with
// [github.com/halfbackmq/halfback/broker/filter]), and an administration
// tool's calls forwarded to a consumer (callconsumer.go). The
// broker registers itself with the name server
// ([github.com/halfbackmq/halfback/namesrv]) every RegisterInterval.
//
// # Tracing and the lifecycle record
//
// Each step of a message in the broker (store, half store, end
// transaction, check-back, park, schedule, delivery from the schedule,
// send-back, dead letter) makes an OpenTelemetry span through the global
// tracer provider, a child of the producer's context from the message's
// traceparent property (a batch's span links to each message's), with the
// messaging semantic-convention attributes of
// [github.com/halfbackmq/halfback/telemetry] (trace.go, trace_txn.go).
// With no provider installed no span is built. The same steps are written
// to the lifecycle record ([github.com/halfbackmq/halfback/broker/lifecycle],
// in Store.Dir/lifecycle), which halfback's MESSAGE_TRACE request and
// `halfback trace` read by message id, key or trace id; consumption by a
// group is derived from its committed offsets when asked
// ([Broker.MessageTrace], trace_query.go).
//
// # Usage
//
//	b, err := broker.Open(broker.Options{Store: storeOpts, Delay: delayOpts, ListenAddr: "127.0.0.1:10911"})
//	defer b.Close()
package broker
