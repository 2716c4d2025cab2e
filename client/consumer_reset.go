package client

import (
	"context"
	"fmt"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
)

// Offsets reset by the broker's push. For mqadmin resetOffsetByTime a
// RocketMQ 4 broker (and a 5 one, or halfback's, with
// useServerSideResetOffset false) commits nothing itself: it sends the
// group's online consumers RESET_CONSUMER_CLIENT_OFFSET (220, oneway;
// ext topic, group, timestamp, isForce; body ResetOffsetBody, the new offset of
// each queue of the topic on that broker, fastjson). Each consumer moves
// the queues of the table it owns, as RocketMQ's
// MQClientInstance.resetOffset does: the queue stops pulling, its handler
// calls return, the new offset is committed in place of its own, and the
// queue leaves the table; the next rebalance (at once) takes it again from
// the reset offset itself, not the broker's: a pull sent just before the
// reset may still commit the old one there (Java's client sleeps 10 s
// before committing for this), and the queue's own commits then put the
// reset back. Queues it does not own are their owners' to move. (A broker
// that resets on its side answers the queues' next pulls
// PULL_OFFSET_MOVED instead: see pullLoop.)

// handleResetOffset is the client's handler of RESET_CONSUMER_CLIENT_OFFSET.
func (s *consumerSet) handleResetOffset(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic, group := req.Ext("topic"), req.Ext("group")
	pc := s.get(group)
	if pc == nil || topic == "" {
		return nil // not ours: a consumer of the group closed meanwhile
	}
	table, err := decodeResetOffsets(req.Body)
	if err != nil {
		pc.log.Warn("client: offset reset from the broker not understood", "broker", conn.RemoteAddr(), "topic", topic, "err", err)
		return nil
	}
	n := pc.resetOffsets(topic, table)
	pc.log.Info("client: offsets reset by the broker", "broker", conn.RemoteAddr(), "topic", topic,
		"timestamp", req.Ext("timestamp"), "queues", len(table), "owned", n)
	return nil
}

// decodeResetOffsets reads a ResetOffsetBody: {"offsetTable":{{queue}:offset,...}}.
func decodeResetOffsets(body []byte) (map[MessageQueue]int64, error) {
	table := map[MessageQueue]int64{}
	err := fastjson.EachQueueEntry(body, "offsetTable", func(k fastjson.Queue, value func(any) error) error {
		var off int64
		if err := value(&off); err != nil {
			return err
		}
		if off < 0 {
			return fmt.Errorf("offsetTable: queue %d of %s on %s: offset %d", k.QueueID, k.Topic, k.BrokerName, off)
		}
		table[MessageQueue{Topic: k.Topic, BrokerName: k.BrokerName, QueueID: k.QueueID}] = off
		return nil
	})
	return table, err
}

// resetOffsets moves each queue of topic this consumer owns to its offset
// in table, and returns how many it moved. A queue dropped already (an
// earlier reset, or a rebalance, waiting on its handler calls) that is
// still in the table takes the offset too: its drop commits the latest
// reset, which it waits for no longer than its removal from the table.
func (pc *PushConsumer) resetOffsets(topic string, table map[MessageQueue]int64) int {
	var moved []*processQueue
	pc.mu.Lock()
	if pc.state != consumerStarted {
		pc.mu.Unlock()
		return 0 // closing: Close commits where the queues are
	}
	// Counted while the consumer is started, so that Close (which marks it
	// closed under mu, then waits) waits for these drops too.
	pc.wg.Add(1)
	defer pc.wg.Done()
	for mq, q := range pc.queues {
		if off, ok := table[mq]; ok && mq.Topic == topic {
			q.setReset(off)
			moved = append(moved, q)
			pc.log.Info("client: queue reset", "queue", mq, "to", off)
		}
	}
	pc.mu.Unlock()
	for _, q := range moved {
		pc.dropQueue(q) // nothing if dropped already: that drop takes the reset
	}
	return len(moved)
}
