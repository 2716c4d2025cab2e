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
// (topics.go), sends (send.go), pulls with long polling (pull.go), consumer
// groups and offsets (group.go, offsets.go), ordered-queue locks (lock.go),
// retry and dead-letter queues (sendback.go), lookups (lookup.go). The
// broker registers itself with the name server
// ([github.com/halfbackmq/halfback/namesrv]) every RegisterInterval.
//
// # Usage
//
//	b, err := broker.Open(broker.Options{Store: storeOpts, Delay: delayOpts, ListenAddr: "127.0.0.1:10911"})
//	defer b.Close()
package broker
