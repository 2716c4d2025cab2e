package client

import (
	"sync/atomic"

	"github.com/halfbackmq/halfback/message"
)

// QueueSelector picks the queue a send goes to.
//
// Select is called once per attempt with the topic's writable queues (never
// empty, sorted by broker name then queue id, or as the route's
// orderTopicConf lists them; do not modify them) and the
// broker of the previous failed attempt of the same send, "" on the first;
// a selector should avoid that broker when another has queues. For a
// batch, m is the batch's first message. Select must be safe for
// concurrent use.
type QueueSelector interface {
	Select(m *Message, queues []MessageQueue, lastBroker string) MessageQueue
}

// QueueSelectorFunc adapts a function to [QueueSelector].
type QueueSelectorFunc func(m *Message, queues []MessageQueue, lastBroker string) MessageQueue

// Select calls f.
func (f QueueSelectorFunc) Select(m *Message, queues []MessageQueue, lastBroker string) MessageQueue {
	return f(m, queues, lastBroker)
}

// RoundRobinSelector returns a selector that takes the queues in turn,
// skipping the last failed broker's when it can.
func RoundRobinSelector() QueueSelector { return &roundRobin{} }

type roundRobin struct{ next atomic.Uint32 }

func (r *roundRobin) Select(_ *Message, queues []MessageQueue, lastBroker string) MessageQueue {
	n := len(queues)
	start := int(r.next.Add(1) % uint32(n))
	if lastBroker != "" {
		for i := range n {
			if q := queues[(start+i)%n]; q.BrokerName != lastBroker {
				return q
			}
		}
	}
	return queues[start]
}

// HashSelector returns a selector that picks the queue by the hash of
// Message.ShardingKey, so that messages with the same key go to the same
// queue in send order (while the topic's queues do not change). The hash
// is Java's String.hashCode modulo the queue count, as RocketMQ's
// SelectMessageQueueByHash, so Java and Go producers agree. A retry goes
// to the same queue: moving would break the order.
func HashSelector() QueueSelector { return QueueSelectorFunc(selectByHash) }

func selectByHash(m *Message, queues []MessageQueue, _ string) MessageQueue {
	i := message.TagsCode(m.ShardingKey) % int64(len(queues))
	if i < 0 {
		i = -i
	}
	return queues[i]
}

// DefaultSelector returns the selector producers use unless told
// otherwise: [HashSelector]'s choice for a message with a ShardingKey,
// [RoundRobinSelector]'s for the rest.
func DefaultSelector() QueueSelector { return &defaultSelector{} }

type defaultSelector struct{ rr roundRobin }

func (d *defaultSelector) Select(m *Message, queues []MessageQueue, lastBroker string) MessageQueue {
	if m != nil && m.ShardingKey != "" {
		return selectByHash(m, queues, lastBroker)
	}
	return d.rr.Select(m, queues, lastBroker)
}
