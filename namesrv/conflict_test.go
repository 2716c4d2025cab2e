package namesrv

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// A broker whose host died (its registering connection half-open: no FIN
// ever reaches the name server) comes back on another address (a new pod
// IP). The old entry has missed two 30 s registrations: the new address is
// taken after its first refusal, as RocketMQ's RouteInfoManager takes it
// (it refuses only an older stateVersion), not after the dead one expires.
func TestMovedBrokerAfterHostCrashIsAccepted(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{DisableAutoCreateTopic: true, now: clock.Now})
	dead := dial(t, s) // stays open: the name server never learns the host died
	register(t, dead, brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}})
	clock.Advance(60 * time.Second) // two RegisterIntervals missed
	moved := dial(t, s)
	r := brokerReg{name: "broker-a", addr: addrB, topics: map[string][2]int{"Orders": {4, 4}}}
	body, _ := json.Marshal(RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]TopicConfig{"Orders": {TopicName: "Orders", ReadQueueNums: 4, WriteQueueNums: 4, Perm: PermRW}}}})
	// The moved broker registers at start-up and again one RegisterInterval
	// later: by then at the latest its name must be its.
	call(t, moved, remoting.ReqRegisterBroker, registerExt(r, body), body)
	clock.Advance(30 * time.Second)
	resp := call(t, moved, remoting.ReqRegisterBroker, registerExt(r, body), body)
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("broker-a restarted at %s, 90 s after the old one's last registration, its second try: code %d %q", addrB, resp.Code, resp.Remark)
	}
	if rt, ok := route(t, moved, "Orders"); !ok || rt.brokers["broker-a"][0] != addrB {
		t.Fatalf("Orders routed to %+v, want broker-a at %s", rt, addrB)
	}
}

// Two live brokers of one name still do not take turns: the holder keeps
// registering, so the second one stays refused.
func TestTwoLiveBrokersStayRefused(t *testing.T) {
	clock, first, a, tryB := twoOfOneName(t)
	for i := range 4 {
		if resp := tryB(); resp.Code == remoting.RespSuccess {
			t.Fatalf("round %d: the second broker-a took the name", i)
		}
		clock.Advance(10 * time.Second)
		register(t, first, a)
		clock.Advance(20 * time.Second)
	}
}

// Two live brokers with one name, the holder registering every
// 30 s as brokers do. The second one is refused at its periodic
// registration, then registers again 5 s later (a topic created on it:
// the broker re-registers promptly on a topic change, or a broker whose
// RegisterInterval is shorter). The holder is alive and connected; it
// must keep its name.
func TestLiveHolderKeepsNameWhenOtherRetriesQuickly(t *testing.T) {
	clock, _, _, tryB := twoOfOneName(t)
	clock.Advance(10 * time.Second)
	if resp := tryB(); resp.Code == remoting.RespSuccess {
		t.Fatalf("first try: the second broker-a took the name")
	}
	clock.Advance(5 * time.Second) // holder last registered 15 s ago: alive
	if resp := tryB(); resp.Code == remoting.RespSuccess {
		t.Fatalf("second try 5 s later: the second broker-a at %s took the name from the live holder at %s (registered 15 s ago, still connected)", addrB, addrA)
	}
}

// twoOfOneName starts a name server on a fake clock with broker-a
// registered from addrA (a, on connection first), and returns tryB, which
// registers a second broker-a from addrB on a connection of its own.
func twoOfOneName(t *testing.T) (clock *fakeClock, first *remoting.Conn, a brokerReg, tryB func() *remoting.Command) {
	t.Helper()
	clock = newFakeClock()
	s := startServer(t, Options{DisableAutoCreateTopic: true, now: clock.Now})
	first = dial(t, s)
	a = brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}}
	register(t, first, a)
	second := dial(t, s)
	r := brokerReg{name: "broker-a", addr: addrB}
	body, _ := json.Marshal(RegisterBrokerBody{})
	return clock, first, a, func() *remoting.Command {
		return call(t, second, remoting.ReqRegisterBroker, registerExt(r, body), body)
	}
}

// Refusals are remembered only while they can still matter: once the
// holder has registered again since, the sweep forgets them. (The table
// kept one entry per refused address for ever: a broker of a taken name
// restarting on new pod IPs, or anything registering from made-up
// addresses, grew it without bound.) A refusal the holder has not
// registered since is kept, and still lets the name move once the holder
// falls silent.
func TestSweepForgetsRefusalsThatNoLongerMatter(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, Options{DisableAutoCreateTopic: true, now: clock.Now})
	holder := dial(t, s)
	a := brokerReg{name: "broker-a", addr: addrA, topics: map[string][2]int{"Orders": {4, 4}}}
	register(t, holder, a)
	other := dial(t, s)
	body, _ := json.Marshal(RegisterBrokerBody{})
	try := func(addr string) *remoting.Command {
		r := brokerReg{name: "broker-a", addr: addr}
		return call(t, other, remoting.ReqRegisterBroker, registerExt(r, body), body)
	}
	refused := func() int {
		s.reg.mu.RLock()
		defer s.reg.mu.RUnlock()
		return len(s.reg.refused)
	}
	clock.Advance(10 * time.Second)
	const n = 100
	for i := range n {
		if resp := try("127.0.0.1:" + strconv.Itoa(20000+i)); resp.Code == remoting.RespSuccess {
			t.Fatalf("address %d took broker-a from its live holder", i)
		}
	}
	if got := refused(); got != n {
		t.Fatalf("%d refusals remembered, want %d", got, n)
	}
	clock.Advance(20 * time.Second)
	register(t, holder, a) // the holder is alive: those refusals are spent
	clock.Advance(5 * time.Second)
	if resp := try(addrB); resp.Code == remoting.RespSuccess {
		t.Fatal("addrB took broker-a from its live holder")
	}
	s.reg.sweep()
	if got := refused(); got != 1 {
		t.Fatalf("after the holder registered again and a sweep, %d refusals remembered, want 1 (addrB's, made since)", got)
	}
	// The holder falls silent: addrB's kept refusal lets it take the name.
	clock.Advance(60 * time.Second)
	s.reg.sweep()
	if resp := try(addrB); resp.Code != remoting.RespSuccess {
		t.Fatalf("addrB, refused 60 s after the holder's last registration: code %d %q", resp.Code, resp.Remark)
	}
	if got := refused(); got != 0 {
		t.Fatalf("%d refusals remembered after addrB registered, want 0", got)
	}
	// With no broker live, no refusal can matter.
	third := dial(t, s) // addrB registered on other's connection
	r := brokerReg{name: "broker-a", addr: "127.0.0.1:30000"}
	if resp := call(t, third, remoting.ReqRegisterBroker, registerExt(r, body), body); resp.Code == remoting.RespSuccess {
		t.Fatal("127.0.0.1:30000 took broker-a from its live holder addrB")
	}
	clock.Advance(DefaultBrokerExpiry + time.Second)
	s.reg.sweep()
	if got := refused(); got != 0 {
		t.Fatalf("%d refusals remembered with no broker live, want 0", got)
	}
}

// A master and its slave swap roles while both stay connected (RocketMQ's
// DLedger or controller-mode failover, a leadership transfer: the new
// master re-registers as broker id 0, the old one as a slave). The name
// server takes each registration as RocketMQ's RouteInfoManager does (the
// address registered under the group's name takes the id it claims), in
// either order; it refused them as a second broker of the name, leaving
// the route's master the old one, now a slave, or no master at all.
func TestMasterSlaveRoleSwitchIsAccepted(t *testing.T) {
	for _, masterFirst := range []bool{true, false} {
		t.Run("new master first "+strconv.FormatBool(masterFirst), func(t *testing.T) {
			s := startServer(t, Options{DisableAutoCreateTopic: true})
			topics := map[string][2]int{"Orders": {4, 4}}
			x, y := dial(t, s), dial(t, s)
			register(t, x, brokerReg{name: "broker-a", addr: addrA, id: 0, topics: topics})
			register(t, y, brokerReg{name: "broker-a", addr: addrB, id: 1, topics: topics})
			promote := func() *remoting.Command {
				r := brokerReg{name: "broker-a", addr: addrB, id: 0, topics: topics}
				body, _ := json.Marshal(RegisterBrokerBody{})
				return call(t, y, remoting.ReqRegisterBroker, registerExt(r, body), body)
			}
			demote := func() *remoting.Command {
				r := brokerReg{name: "broker-a", addr: addrA, id: 1, topics: topics}
				body, _ := json.Marshal(RegisterBrokerBody{})
				return call(t, x, remoting.ReqRegisterBroker, registerExt(r, body), body)
			}
			first, second := demote, promote
			if masterFirst {
				first, second = promote, demote
			}
			for i, f := range []func() *remoting.Command{first, second} {
				if resp := f(); resp.Code != remoting.RespSuccess {
					t.Fatalf("registration %d of the role switch: code %d %q", i+1, resp.Code, resp.Remark)
				}
			}
			rt, ok := route(t, x, "Orders")
			if !ok || rt.brokers["broker-a"][0] != addrB || rt.brokers["broker-a"][1] != addrA {
				t.Fatalf("Orders routed to %+v (%v), want broker-a master %s, slave %s", rt.brokers, ok, addrB, addrA)
			}
		})
	}
}
