package client

import (
	"context"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/admin"
)

// A group paused on the broker (consumeEnable false) has its pulls
// refused; the consumer keeps pulling and, once the group is resumed,
// consumes what was sent meanwhile.
func TestPausedGroupResumes(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("orders"), uniq("cg")
	first := sendN(t, p, topic, "a", "", 4)
	box := &inbox{}
	startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group}, topic, "*", box.handler(""))
	box.waitBodies(t, first)

	ac, err := admin.Dial(ctxT(t, 10*time.Second), cl.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	pause := func(off bool) {
		t.Helper()
		if _, err := ac.UpdateGroupConfig(context.Background(), group, map[string]any{"consumeEnable": !off}); err != nil {
			t.Fatal(err)
		}
	}
	pause(true)
	rest := sendN(t, p, topic, "b", "", 4)
	if n := len(box.all()); n != len(first) {
		t.Fatalf("a paused group was delivered %d messages, want the first %d", n, len(first))
	}
	pause(false)
	box.waitBodies(t, rest)
}
