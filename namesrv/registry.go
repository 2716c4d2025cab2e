package namesrv

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// liveBroker is one registered broker process (RocketMQ's BrokerLiveInfo
// plus its entry in brokerAddrTable).
type liveBroker struct {
	cluster, name, addr, haAddr string
	id                          int64
	lastSeen                    time.Time
	expiry                      time.Duration // heartbeatTimeoutMillis it registered with; 0: the registry's
	version                     DataVersion
	conn                        *remoting.Conn // the connection it last registered on; nil if unknown
}

// registration is one REGISTER_BROKER request, decoded.
type registration struct {
	cluster, name, addr, haAddr string
	id                          int64
	expiry                      time.Duration                // heartbeatTimeoutMillis; 0: the registry's
	topics                      *TopicConfigSerializeWrapper // nil: keep the topics as they are
	fullTable                   bool                         // topics is the whole table: drop the topics it lacks
}

// registry is the name server's route table (RocketMQ's RouteInfoManager).
// All methods are safe for concurrent use.
type registry struct {
	expiry     time.Duration
	autoCreate bool
	queues     int
	now        func() time.Time

	mu      sync.RWMutex
	brokers map[string]*liveBroker          // by address
	topics  map[string]map[string]QueueData // topic, broker name → queues
	// refused holds when a registration from an address was last refused
	// for a name another live broker holds: the holder must register again
	// after that to keep refusing it (a holder whose host died, its
	// connection half-open, does not). sweep forgets the spent ones.
	refused map[string]time.Time
}

func newRegistry(o Options) *registry {
	return &registry{expiry: o.BrokerExpiry, autoCreate: !o.DisableAutoCreateTopic, queues: o.DefaultQueueNums,
		now: o.now, brokers: map[string]*liveBroker{}, topics: map[string]map[string]QueueData{}, refused: map[string]time.Time{}}
}

// alive reports whether b registered (or heartbeated) within its expiry:
// the heartbeatTimeoutMillis it registered with, else the registry's
// (RocketMQ's BrokerLiveInfo.heartbeatTimeoutMillis).
func (r *registry) alive(b *liveBroker, now time.Time) bool {
	expiry := r.expiry
	if b.expiry > 0 {
		expiry = b.expiry
	}
	return now.Sub(b.lastSeen) < expiry
}

// register records a registration and returns the group's master address
// and HA address for a slave ("" for a master). first reports a broker not
// known before.
func (r *registry) register(reg registration, conn *remoting.Conn) (masterAddr, masterHA string, first bool, err error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	// A registration held up until its connection closed is stale: the
	// broker cannot get the answer and may have registered anew on another
	// connection since, which this one would take over, so that the old
	// connection's close dropped the live broker.
	if conn != nil && conn.Err() != nil {
		return "", "", false, fmt.Errorf("%w: connection closed before the registration of %s was handled", ErrBadRequest, reg.addr)
	}
	// One address per (name, id): a broker that moved replaces its old
	// entry, but a live one still connected keeps its name: a second
	// broker configured with the same name would otherwise take it over
	// at every registration, the two taking turns. A member of the group
	// changing its id is no second broker: a slave promoted to master, a
	// master demoted (DLedger or controller-mode failover) takes the id it
	// claims, as in RocketMQ's RouteInfoManager, its holder dropped until
	// it registers with its new id.
	member := r.brokers[reg.addr]
	switching := member != nil && member.name == reg.name && member.id != reg.id && r.alive(member, now)
	for addr, b := range r.brokers {
		if !switching && addr != reg.addr && b.name == reg.name && b.id == reg.id && r.alive(b, now) &&
			b.conn != nil && b.conn != conn && b.conn.Err() == nil {
			// The holder is gone when it stopped registering since the last
			// refusal and has been silent for half its expiry (two 30 s
			// intervals by default): a second try soon after the first
			// (a broker re-registers at once on a topic change) does not
			// show that a holder registering every 30 s is gone.
			if last, ok := r.refused[reg.addr]; ok && b.lastSeen.Before(last) && now.Sub(b.lastSeen) >= r.expiry/2 {
				break
			}
			r.refused[reg.addr] = now
			return "", "", false, fmt.Errorf("%w: broker %s id %d is already registered from %s (still connected); refusing %s: give each broker its own brokerName",
				ErrBrokerConflict, reg.name, reg.id, addr, reg.addr)
		}
	}
	delete(r.refused, reg.addr)
	for addr, b := range r.brokers {
		if addr != reg.addr && b.name == reg.name && b.id == reg.id {
			r.removeLocked(addr)
		}
	}
	b, known := r.brokers[reg.addr]
	if !known {
		b = &liveBroker{addr: reg.addr}
		r.brokers[reg.addr] = b
	}
	if known && b.name != reg.name {
		// The address now serves another broker group.
		r.removeLocked(reg.addr)
		b = &liveBroker{addr: reg.addr}
		r.brokers[reg.addr] = b
		known = false
	}
	b.cluster, b.name, b.haAddr, b.id, b.lastSeen, b.conn, b.expiry = reg.cluster, reg.name, reg.haAddr, reg.id, now, conn, reg.expiry
	if reg.topics != nil {
		// An unchanged data version leaves the queue data of the topics
		// routed already as they are (RocketMQ's isTopicConfigChanged), so
		// that a periodic registration does not undo WIPE_WRITE_PERM.
		changed := !known || b.version != reg.topics.DataVersion
		b.version = reg.topics.DataVersion
		if reg.id == MasterID {
			r.replaceTopicsLocked(reg.name, reg.topics.TopicConfigTable, reg.fullTable, changed)
		}
	}
	if reg.id != MasterID {
		for _, m := range r.brokers {
			if m.name == reg.name && m.id == MasterID && r.alive(m, now) {
				masterAddr, masterHA = m.addr, m.haAddr
			}
		}
	}
	return masterAddr, masterHA, !known, nil
}

// touch handles a heartbeat (QUERY_DATA_VERSION, BROKER_HEARTBEAT) of the
// broker at addr in cluster: it counts as a registration for the expiry
// (RocketMQ's updateBrokerInfoUpdateTimestamp), but with version set only
// when the broker's version is the one it registered last (a broker whose
// table changed is alive once it registers it). It returns the data
// version the broker last registered, and false for a broker it does not
// know.
func (r *registry) touch(cluster, addr string, version *DataVersion) (DataVersion, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.brokers[addr]
	if !ok || b.cluster != cluster || !r.alive(b, now) {
		return DataVersion{}, false
	}
	if version == nil || *version == b.version {
		b.lastSeen = now
	}
	return b.version, true
}

// replaceTopicsLocked records the topics of table as served by broker
// group name; with full, they become the only ones it serves. Unless
// changed, a topic the group serves already keeps its queue data.
func (r *registry) replaceTopicsLocked(name string, table map[string]TopicConfig, full, changed bool) {
	for topic, qds := range r.topics {
		if _, ok := table[topic]; !ok && full {
			delete(qds, name)
			if len(qds) == 0 {
				delete(r.topics, topic)
			}
		}
	}
	for topic, tc := range table {
		qds := r.topics[topic]
		if qds == nil {
			qds = map[string]QueueData{}
			r.topics[topic] = qds
		}
		if _, ok := qds[name]; ok && !changed {
			continue
		}
		qds[name] = QueueData{BrokerName: name, ReadQueueNums: tc.ReadQueueNums, WriteQueueNums: tc.WriteQueueNums,
			Perm: tc.Perm, TopicSysFlag: tc.TopicSysFlag, TopicSynFlag: tc.TopicSysFlag}
	}
}

// setWritePerm takes the write permission off every topic of broker group
// name (wipe), or makes them all read-write (RocketMQ's
// operateWritePermOfBroker); it returns how many topics it changed.
func (r *registry) setWritePerm(name string, wipe bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, qds := range r.topics {
		qd, ok := qds[name]
		if !ok {
			continue
		}
		if wipe {
			qd.Perm &^= PermWrite
		} else {
			qd.Perm = PermRW
		}
		qds[name] = qd
		n++
	}
	return n
}

// unregister removes the broker at addr if it is the named group's member
// id; it reports whether one was removed.
func (r *registry) unregister(name, addr string, id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.brokers[addr]
	if !ok || b.name != name || b.id != id {
		return false
	}
	r.removeLocked(addr)
	return true
}

// dropConn removes the brokers that last registered on conn, returning them.
func (r *registry) dropConn(conn *remoting.Conn) []*liveBroker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*liveBroker
	for addr, b := range r.brokers {
		if b.conn == conn {
			gone = append(gone, b)
			r.removeLocked(addr)
		}
	}
	return gone
}

// sweep removes the brokers whose registration expired, returning them.
func (r *registry) sweep() []*liveBroker {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*liveBroker
	for addr, b := range r.brokers {
		if !r.alive(b, now) {
			gone = append(gone, b)
			r.removeLocked(addr)
		}
	}
	r.pruneRefusedLocked()
	return gone
}

// pruneRefusedLocked forgets the refusals that can no longer matter: a
// refusal lets the name move only while some live broker has not
// registered since it, and a broker's last registration only moves on.
// Without this, refused would keep one entry per address ever refused.
func (r *registry) pruneRefusedLocked() {
	if len(r.brokers) == 0 {
		clear(r.refused) // nothing live to have registered before them
		return
	}
	var oldest time.Time
	for _, b := range r.brokers {
		if oldest.IsZero() || b.lastSeen.Before(oldest) {
			oldest = b.lastSeen
		}
	}
	for addr, last := range r.refused {
		if !oldest.Before(last) {
			delete(r.refused, addr)
		}
	}
}

// removeLocked forgets the broker at addr; when it was the last member of
// its group, the group's queues go too.
func (r *registry) removeLocked(addr string) {
	b, ok := r.brokers[addr]
	if !ok {
		return
	}
	delete(r.brokers, addr)
	for _, o := range r.brokers {
		if o.name == b.name {
			return
		}
	}
	for topic, qds := range r.topics {
		delete(qds, b.name)
		if len(qds) == 0 {
			delete(r.topics, topic)
		}
	}
}

// groupsLocked returns the live broker groups by name.
func (r *registry) groupsLocked(now time.Time) map[string]BrokerData {
	groups := map[string]BrokerData{}
	for _, b := range r.brokers {
		if !r.alive(b, now) {
			continue
		}
		g, ok := groups[b.name]
		if !ok {
			g = BrokerData{Cluster: b.cluster, BrokerName: b.name, BrokerAddrs: map[int64]string{}}
		}
		g.BrokerAddrs[b.id] = b.addr
		if b.id == MasterID {
			g.Cluster = b.cluster
		}
		groups[b.name] = g
	}
	return groups
}

// route returns topic's route, or false when no live broker serves it and
// it cannot be auto-created.
func (r *registry) route(topic string) (TopicRouteData, bool) {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	groups := r.groupsLocked(now)
	rd := TopicRouteData{QueueDatas: []QueueData{}, BrokerDatas: []BrokerData{}, FilterServerTable: map[string][]string{}}
	for name, qd := range r.topics[topic] {
		if g, ok := groups[name]; ok {
			rd.QueueDatas = append(rd.QueueDatas, qd)
			rd.BrokerDatas = append(rd.BrokerDatas, g)
		}
	}
	if len(rd.QueueDatas) == 0 && r.autoCreatable(topic) {
		// Only to brokers that create topics on first use: those register
		// AutoCreateTopicKey (RocketMQ's rule). Others would answer the
		// route's sends and pulls with TOPIC_NOT_EXIST.
		// No more queues than the broker creates the topic with, the count
		// it registers TBW102 with (RocketMQ's clients take the minimum too).
		creators := r.topics[AutoCreateTopicKey]
		for name, g := range groups {
			// A broker whose TBW102 lost PERM_WRITE (WIPE_WRITE_PERM) takes
			// no new topic: a client borrowing TBW102's route skips it.
			tbw, creates := creators[name]
			if !creates || tbw.Perm&PermWrite == 0 {
				continue
			}
			n := r.queues
			if tbw.WriteQueueNums > 0 && tbw.WriteQueueNums < n {
				n = tbw.WriteQueueNums
			}
			if _, ok := g.BrokerAddrs[MasterID]; ok {
				rd.QueueDatas = append(rd.QueueDatas, QueueData{BrokerName: name, ReadQueueNums: n, WriteQueueNums: n, Perm: PermRW})
				rd.BrokerDatas = append(rd.BrokerDatas, g)
			}
		}
	}
	if len(rd.QueueDatas) == 0 {
		return TopicRouteData{}, false
	}
	sort.Slice(rd.QueueDatas, func(i, j int) bool { return rd.QueueDatas[i].BrokerName < rd.QueueDatas[j].BrokerName })
	sort.Slice(rd.BrokerDatas, func(i, j int) bool { return rd.BrokerDatas[i].BrokerName < rd.BrokerDatas[j].BrokerName })
	return rd, true
}

// AutoCreateTopicKey is the topic a broker that creates topics on first
// use registers (RocketMQ's TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC):
// an unknown topic is routed to those brokers only.
const AutoCreateTopicKey = "TBW102"

// autoCreatable reports whether an unknown topic gets a default route: a
// legal name, and not a consumer group's retry or dead-letter topic. Those
// the broker creates (with one queue) when the group first heartbeats, and
// registers; a default route would send the client to queues that do not
// exist.
func (r *registry) autoCreatable(topic string) bool {
	return r.autoCreate && message.ValidateTopic(topic) == nil &&
		!strings.HasPrefix(topic, RetryTopicPrefix) && !strings.HasPrefix(topic, DLQTopicPrefix)
}

// clusterInfo returns the live broker groups and clusters.
func (r *registry) clusterInfo() ClusterInfo {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	ci := ClusterInfo{BrokerAddrTable: r.groupsLocked(now), ClusterAddrTable: map[string][]string{}}
	for name, g := range ci.BrokerAddrTable {
		ci.ClusterAddrTable[g.Cluster] = append(ci.ClusterAddrTable[g.Cluster], name)
	}
	for _, names := range ci.ClusterAddrTable {
		slices.Sort(names)
	}
	return ci
}

// topicList returns every routed topic, sorted; with cluster set, only the
// topics some broker group of that cluster serves.
func (r *registry) topicList(cluster string) []string {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if cluster == "" {
		return slices.Sorted(maps.Keys(r.topics))
	}
	groups := r.groupsLocked(now)
	var out []string
	for topic, qds := range r.topics {
		for name := range qds {
			if g, ok := groups[name]; ok && g.Cluster == cluster {
				out = append(out, topic)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// deleteTopic forgets topic's queues, on the broker groups of cluster only
// when cluster is set.
func (r *registry) deleteTopic(topic, cluster string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if cluster == "" {
		delete(r.topics, topic)
		return
	}
	groups := r.groupsLocked(now)
	qds := r.topics[topic]
	for name := range qds {
		if g, ok := groups[name]; ok && g.Cluster == cluster {
			delete(qds, name)
		}
	}
	if len(qds) == 0 {
		delete(r.topics, topic)
	}
}
