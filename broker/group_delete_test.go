package broker

import (
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// DELETE_SUBSCRIPTIONGROUP forgets a group that went away: with
// cleanOffset its committed offsets (which nothing else removes), and its
// metric series. It is refused while the group has consumers online, and
// for an illegal name.
func TestDeleteGroup(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	haveTopic(t, b, "orders", 0)
	mustSend(t, c, "orders", 0, "", "one")
	waitQueue(t, b, "orders", 0, 1)
	for _, g := range []string{"gone", "kept"} {
		if r := syncCommit(t, c, g, "orders", 0, 1); r.Code != remoting.RespSuccess {
			t.Fatalf("commit %s: %d %s", g, r.Code, r.Remark)
		}
	}
	member := dial(t, b)
	hbOK(t, member, consumerHeartbeat("C1", "orders", "online"))
	if r := syncCommit(t, c, "online", "orders", 0, 1); r.Code != remoting.RespSuccess {
		t.Fatalf("commit online: %d %s", r.Code, r.Remark)
	}

	del := func(group, clean string) *remoting.Command {
		return call(t, c, remoting.ReqDeleteSubscriptionGroup, map[string]string{"groupName": group, "cleanOffset": clean}, nil)
	}
	if r := del("gone", "true"); r.Code != remoting.RespSuccess {
		t.Fatalf("delete gone: %d %s", r.Code, r.Remark)
	}
	if r := del("kept", "false"); r.Code != remoting.RespSuccess {
		t.Fatalf("delete kept: %d %s", r.Code, r.Remark)
	}
	if got := b.offsetTable().group("gone"); len(got) != 0 {
		t.Fatalf("offsets of a deleted group with cleanOffset: %v", got)
	}
	if got := b.offsetTable().group("kept"); got["orders"][0] != 1 {
		t.Fatalf("offsets of a group deleted without cleanOffset: %v", got)
	}
	if r := del("online", "true"); r.Code == remoting.RespSuccess || !strings.Contains(r.Remark, "online") {
		t.Fatalf("delete of a group with a consumer online: %d %q", r.Code, r.Remark)
	}
	if got := b.offsetTable().group("online"); got["orders"][0] != 1 {
		t.Fatalf("refused delete removed offsets: %v", got)
	}
	if r := del("bad group!", "true"); r.Code == remoting.RespSuccess {
		t.Fatal("delete of an illegal group name succeeded")
	}
	// The offsets stay gone across a restart (written at once).
	o := b.opts
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := startBroker(t, o)
	if got := b2.offsetTable().group("gone"); len(got) != 0 {
		t.Fatalf("offsets of a deleted group back after a restart: %v", got)
	}
}
