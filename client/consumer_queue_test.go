package client

import (
	"context"
	"testing"
)

// A queue sent back by PULL_OFFSET_MOVED pulls offsets again that are
// still in flight from before; acknowledging the old delivery must not
// let the commit pass the new one, which is still being handled.
func TestAckOfAReplacedDeliveryKeepsTheNewOneInFlight(t *testing.T) {
	q := newProcessQueue(context.Background(), MessageQueue{Topic: "t", BrokerName: "b", QueueID: 0}, nil)
	q.start(5)
	old := &delivered{queueOffset: 5}
	q.add([]*delivered{old}, 6, false)
	again := &delivered{queueOffset: 5} // the queue moved back and 5 came again
	q.add([]*delivered{again}, 6, false)

	q.ack([]*delivered{old})
	if off, ok := q.ackOffset(); !ok || off != 5 {
		t.Fatalf("after acknowledging the old delivery the commit offset is %d (%v), want 5: the new one is in flight", off, ok)
	}
	q.ack([]*delivered{again})
	if off, ok := q.ackOffset(); !ok || off != 6 {
		t.Fatalf("after acknowledging both the commit offset is %d (%v), want 6", off, ok)
	}
}
