package broker

import (
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Two live brokers configured with one brokerName, both at the default
// 30 s RegisterInterval. B's start-up registration is refused (A holds the
// name, alive and connected). A topic created on B makes B re-register
// promptly: refused too, A keeps its name and its routes.
func TestSecondBrokerOfOneNameStaysRefusedOnTopicChange(t *testing.T) {
	ns := startNamesrv(t, 0)
	oa := testOptions(t)
	oa.NamesrvAddrs = []string{ns.Addr()}
	a := startBroker(t, oa)
	ac := dial(t, a)
	if resp := call(t, ac, remoting.ReqUpdateAndCreateTopic, map[string]string{"topic": "Orders", "readQueueNums": "4", "writeQueueNums": "4", "perm": "6"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("create Orders on A: %d %q", resp.Code, resp.Remark)
	}
	nc := dialAddr(t, ns.Addr())
	waitFor(t, "Orders routed to A", func() bool {
		r, ok := nsRoute(t, nc, "Orders")
		return ok && r.masters[DefaultBrokerName] == a.Addr()
	})

	ob := testOptions(t) // same DefaultBrokerName: a misconfiguration
	ob.NamesrvAddrs = []string{ns.Addr()}
	b := startBroker(t, ob) // its registration at Open is refused
	// A topic created on B: B re-registers promptly (topicsChanged kicks
	// its loop; the registration is made here, synchronously, the loop
	// being idle until its 30 s tick).
	if err := b.topics.put(TopicConfig{TopicName: "Other", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW}, false); err != nil {
		t.Fatal(err)
	}
	b.reg.Load().registerAll(t.Context())
	// A still holds the name: B's re-registration must be refused too.
	if r, ok := nsRoute(t, nc, "Orders"); !ok || r.masters[DefaultBrokerName] != a.Addr() {
		other, _ := nsRoute(t, nc, "Other")
		t.Fatalf("B (%s) took brokerName %s from the live, connected A (%s): Orders routed %v %v, Other routed to %v",
			b.Addr(), DefaultBrokerName, a.Addr(), ok, r.masters, other.masters)
	}
}
