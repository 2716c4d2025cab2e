package client

import (
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/admin"
)

// A group's offsets reset while its consumer is online (`halfback group
// reset`, mqadmin resetOffsetByTime) move the consumer too: reset to the
// topic's start it is given every message again, and its commits follow.
// Reset to the end while the group is offline, its next consumer skips
// what was stored before.
func TestResetOffsetsMovesAnOnlineConsumer(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "periodic commits", true: "SyncCommit"}[sync], func(t *testing.T) {
			cl := startCluster(t, nil, nil)
			p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
			topic, group := uniq("replay"), uniq("cg")
			bodies := sendN(t, p, topic, "m", "", 6)
			in := &inbox{}
			pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
				SyncCommit: sync, PersistInterval: 200 * time.Millisecond}, topic, "*", in.handler("c"))
			in.waitBodies(t, bodies)
			waitFor(t, "every message consumed", func() bool { return cl.caughtUp(topic, pc) })

			ac, err := admin.Dial(ctxT(t, 5*time.Second), cl.b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer ac.Close()
			if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetTo{Timestamp: 0, QueueID: -1, Offset: -1}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every message delivered again", func() bool {
				got := in.count("")
				for _, b := range bodies {
					if got[b] < 2 {
						return false
					}
				}
				return true
			})
			waitFor(t, "the group caught up again", func() bool { return cl.caughtUp(topic, pc) })

			// To the end, while the group is offline: its next consumer
			// skips what was stored before the reset.
			if err := pc.Close(); err != nil {
				t.Fatal(err)
			}
			skipped := sendN(t, p, topic, "skipped", "", 1)
			cl.waitStored(t, topic, len(bodies)+1) // in its queue: the end is past it
			if _, err := ac.ResetOffsets(ctxT(t, 5*time.Second), group, topic, admin.ResetTo{Timestamp: -1, QueueID: -1, Offset: -1}); err != nil {
				t.Fatal(err)
			}
			pc = startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, FromWhere: ConsumeFromFirst,
				SyncCommit: sync, PersistInterval: 200 * time.Millisecond}, topic, "*", in.handler("c2"))
			after := sendN(t, p, topic, "after", "", 1)
			in.waitBodies(t, after)
			waitFor(t, "the group caught up after the reset to the end", func() bool { return cl.caughtUp(topic, pc) })
			if n := in.count("c2")[skipped[0]]; n != 0 {
				t.Fatalf("a message stored before the reset to the end was delivered %d times", n)
			}
		})
	}
}
