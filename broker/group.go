package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Consumer groups: which clients of a group are online, what they
// subscribe to, and producer groups' connections (transaction check-back
// needs them). RocketMQ's ClientManageProcessor, ConsumerManager and
// ProducerManager.

// Consume types and message models, as heartbeats name them.
const (
	ConsumeActively  = "CONSUME_ACTIVELY"  // pull consumer
	ConsumePassively = "CONSUME_PASSIVELY" // push consumer
	Clustering       = "CLUSTERING"
	Broadcasting     = "BROADCASTING"
)

// Group topic prefixes, RocketMQ's MixAll.RETRY_GROUP_TOPIC_PREFIX and
// DLQ_GROUP_TOPIC_PREFIX.
const (
	RetryGroupTopicPrefix = "%RETRY%"
	DLQGroupTopicPrefix   = "%DLQ%"
)

const (
	// DefaultChannelExpiredTimeout is how long a client may go without a
	// heartbeat before it leaves its groups (RocketMQ's channelExpiredTimeout).
	DefaultChannelExpiredTimeout = 120 * time.Second
	// clientScanInterval is how often expired clients are looked for
	// (RocketMQ's ClientHousekeepingService runs every 10 s).
	clientScanInterval = 10 * time.Second
)

// RetryTopic returns a consumer group's retry topic, %RETRY%<group>.
func RetryTopic(group string) string { return RetryGroupTopicPrefix + group }

// DLQTopic returns a consumer group's dead-letter topic, %DLQ%<group>.
func DLQTopic(group string) string { return DLQGroupTopicPrefix + group }

// heartbeatData is the HEART_BEAT body (RocketMQ's HeartbeatData).
type heartbeatData struct {
	ClientID        string         `json:"clientID"`
	ProducerDataSet []producerData `json:"producerDataSet"`
	ConsumerDataSet []consumerData `json:"consumerDataSet"`
	// language and version are the request's (GET_CONSUMER_CONNECTION_LIST
	// reports them).
	language string
	version  int16
}

type producerData struct {
	GroupName string `json:"groupName"`
}

type consumerData struct {
	GroupName           string         `json:"groupName"`
	ConsumeType         string         `json:"consumeType"`
	MessageModel        string         `json:"messageModel"`
	ConsumeFromWhere    string         `json:"consumeFromWhere"`
	SubscriptionDataSet []subscription `json:"subscriptionDataSet"`
	UnitMode            bool           `json:"unitMode"`
}

// subscription is one topic a consumer subscribes to, as its heartbeat
// says (RocketMQ's SubscriptionData).
type subscription struct {
	Topic           string    `json:"topic"`
	SubString       string    `json:"subString"`
	TagsSet         []string  `json:"tagsSet"`
	CodeSet         hashCodes `json:"codeSet"`
	SubVersion      int64     `json:"subVersion"`
	ExpressionType  string    `json:"expressionType"`
	ClassFilterMode bool      `json:"classFilterMode"`
}

// hashCodes is a codeSet: the Java client sends numbers, the Go client
// v2.1.2 numeric strings; both decode.
type hashCodes []int64

func (h *hashCodes) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(hashCodes, 0, len(raw))
	for _, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			s = string(bytes.TrimSpace(r))
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("codeSet entry %s is not a number", r)
		}
		out = append(out, n)
	}
	*h = out
	return nil
}

// consumerGroupView describes an online consumer group.
type consumerGroupView struct {
	Group            string
	ConsumeType      string
	MessageModel     string
	ConsumeFromWhere string
	// ClientIDs are the online members' ids, sorted, each once.
	ClientIDs []string
	// Clients describe the online members, one per connection (two
	// members may share an id), sorted by id and address.
	Clients []groupMember
	// Subscriptions merges the members' subscriptions by topic (the newest
	// subVersion wins), sorted by topic.
	Subscriptions []subscription
}

// groupTable tracks consumer and producer groups. Notifications it decides
// on are returned to the caller, which sends them outside the lock.
type groupTable struct {
	mu          sync.Mutex
	now         func() time.Time
	expireAfter time.Duration
	consumers   map[string]*consumerGroup
	producers   map[string]map[*remoting.Conn]*producerClient
	hooked      map[*remoting.Conn]bool // OnClose registered
	notifying   sync.WaitGroup          // notifications in flight ...
	notifyN     atomic.Int64            // ... and how many
	closed      bool
}

type consumerGroup struct {
	consumeType, messageModel, consumeFromWhere string
	clients                                     map[memberKey]*consumerClient
}

// memberKey names a group member: its client id and its connection. Two
// consumers may share an id (two processes on one host with one
// InstanceName: RocketMQ's Java client keeps ClientIP@DEFAULT for
// broadcasting consumers), and each is a member until its own connection
// leaves, as RocketMQ's ConsumerGroupInfo keeps its members by channel.
type memberKey struct {
	id   string
	conn *remoting.Conn
}

type consumerClient struct {
	conn     *remoting.Conn
	lastSeen time.Time
	subs     []subscription // sorted by topic
	language string         // of its last heartbeat
	version  int16
}

// groupMember is one online member of a consumer group, RocketMQ's
// Connection.
type groupMember struct {
	ClientID   string `json:"clientId"`
	ClientAddr string `json:"clientAddr"`
	Language   string `json:"language"`
	Version    int16  `json:"version"`
}

type producerClient struct {
	clientID string
	lastSeen time.Time
}

// notice is one NOTIFY_CONSUMER_IDS_CHANGED fan-out.
type notice struct {
	group string
	conns []*remoting.Conn
}

func newGroupTable() *groupTable {
	return &groupTable{
		now:         time.Now,
		expireAfter: DefaultChannelExpiredTimeout,
		consumers:   make(map[string]*consumerGroup),
		producers:   make(map[string]map[*remoting.Conn]*producerClient),
		hooked:      make(map[*remoting.Conn]bool),
	}
}

// setClock replaces the table's clock and expiry (tests).
func (t *groupTable) setClock(now func() time.Time, expireAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.now, t.expireAfter = now, expireAfter
}

// heartbeat records hb from conn. hook reports whether conn is new to the
// table (its OnClose callback must be registered).
func (t *groupTable) heartbeat(conn *remoting.Conn, hb *heartbeatData) (notices []notice, hook bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, p := range hb.ProducerDataSet {
		m := t.producers[p.GroupName]
		if m == nil {
			m = make(map[*remoting.Conn]*producerClient)
			t.producers[p.GroupName] = m
		}
		m[conn] = &producerClient{clientID: hb.ClientID, lastSeen: now}
	}
	for _, c := range hb.ConsumerDataSet {
		g := t.consumers[c.GroupName]
		if g == nil {
			g = &consumerGroup{clients: make(map[memberKey]*consumerClient)}
			t.consumers[c.GroupName] = g
		}
		g.consumeType, g.messageModel, g.consumeFromWhere = c.ConsumeType, c.MessageModel, c.ConsumeFromWhere
		subs := slices.Clone(c.SubscriptionDataSet)
		sort.Slice(subs, func(i, j int) bool { return subs[i].Topic < subs[j].Topic })
		key := memberKey{id: hb.ClientID, conn: conn}
		old := g.clients[key]
		changed := old == nil || !sameTopics(old.subs, subs)
		g.clients[key] = &consumerClient{conn: conn, lastSeen: now, subs: subs, language: hb.language, version: hb.version}
		if changed {
			notices = append(notices, notice{group: c.GroupName, conns: g.conns()})
		}
	}
	if !t.hooked[conn] && (len(hb.ProducerDataSet) > 0 || len(hb.ConsumerDataSet) > 0) {
		t.hooked[conn] = true
		hook = true
	}
	return notices, hook
}

// sameTopics reports whether two sorted subscription lists name the same
// topics (RocketMQ notifies a group when its topic set changes).
func sameTopics(a, b []subscription) bool {
	return slices.EqualFunc(a, b, func(x, y subscription) bool { return x.Topic == y.Topic })
}

// conns returns the group members' connections.
func (g *consumerGroup) conns() []*remoting.Conn {
	out := make([]*remoting.Conn, 0, len(g.clients))
	for _, c := range g.clients {
		out = append(out, c.conn)
	}
	return out
}

// removeConsumers drops every member keep refuses and returns a notice for
// each group that lost members and still has some.
func (t *groupTable) removeConsumers(keep func(group, id string, c *consumerClient) bool) []notice {
	var notices []notice
	for name, g := range t.consumers {
		removed := false
		for k, c := range g.clients {
			if !keep(name, k.id, c) {
				delete(g.clients, k)
				removed = true
			}
		}
		switch {
		case len(g.clients) == 0:
			delete(t.consumers, name)
		case removed:
			notices = append(notices, notice{group: name, conns: g.conns()})
		}
	}
	return notices
}

// removeConn drops everything conn registered (it closed).
func (t *groupTable) removeConn(conn *remoting.Conn) []notice {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hooked, conn)
	for name, m := range t.producers {
		delete(m, conn)
		if len(m) == 0 {
			delete(t.producers, name)
		}
	}
	return t.removeConsumers(func(_, _ string, c *consumerClient) bool { return c.conn != conn })
}

// unregister removes conn's client from a producer and/or consumer group
// (UNREGISTER_CLIENT); an empty group name is skipped.
func (t *groupTable) unregister(conn *remoting.Conn, clientID, producerGroup, consumerGroup string) []notice {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.producers[producerGroup]; producerGroup != "" && m != nil {
		delete(m, conn)
		if len(m) == 0 {
			delete(t.producers, producerGroup)
		}
	}
	if consumerGroup == "" {
		return nil
	}
	return t.removeConsumers(func(group, id string, c *consumerClient) bool {
		return group != consumerGroup || c.conn != conn || (clientID != "" && id != clientID)
	})
}

// expire drops clients whose last heartbeat is older than expireAfter.
func (t *groupTable) expire() []notice {
	t.mu.Lock()
	defer t.mu.Unlock()
	deadline := t.now().Add(-t.expireAfter)
	for name, m := range t.producers {
		for conn, p := range m {
			if p.lastSeen.Before(deadline) {
				delete(m, conn)
			}
		}
		if len(m) == 0 {
			delete(t.producers, name)
		}
	}
	return t.removeConsumers(func(_, _ string, c *consumerClient) bool { return !c.lastSeen.Before(deadline) })
}

// info describes a consumer group, or reports false if none is online.
func (t *groupTable) info(group string) (consumerGroupView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.consumers[group]
	if g == nil {
		return consumerGroupView{}, false
	}
	info := consumerGroupView{Group: group, ConsumeType: g.consumeType, MessageModel: g.messageModel,
		ConsumeFromWhere: g.consumeFromWhere}
	subs := map[string]subscription{}
	for k, c := range g.clients {
		info.ClientIDs = append(info.ClientIDs, k.id)
		info.Clients = append(info.Clients, groupMember{ClientID: k.id, ClientAddr: c.conn.RemoteAddr().String(),
			Language: c.language, Version: c.version})
		for _, s := range c.subs {
			if old, ok := subs[s.Topic]; !ok || s.SubVersion > old.SubVersion {
				subs[s.Topic] = s
			}
		}
	}
	// Each id once: members that share one would take one share each of a
	// clustering allocation, which counts its members by id, and leave the
	// other shares unconsumed.
	sort.Strings(info.ClientIDs)
	info.ClientIDs = slices.Compact(info.ClientIDs)
	sort.Slice(info.Clients, func(i, j int) bool {
		a, b := info.Clients[i], info.Clients[j]
		return a.ClientID < b.ClientID || a.ClientID == b.ClientID && a.ClientAddr < b.ClientAddr
	})
	for _, s := range subs {
		info.Subscriptions = append(info.Subscriptions, s)
	}
	sort.Slice(info.Subscriptions, func(i, j int) bool { return info.Subscriptions[i].Topic < info.Subscriptions[j].Topic })
	return info, true
}

// groups returns the names of the online consumer groups, sorted.
func (t *groupTable) groups() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.consumers))
	for name := range t.consumers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// producerConns returns the live connections of a producer group.
func (t *groupTable) producerConns(group string) []*remoting.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*remoting.Conn, 0, len(t.producers[group]))
	for conn := range t.producers[group] {
		if conn.Err() == nil {
			out = append(out, conn)
		}
	}
	return out
}

// producerConnOf returns the live connection of the producer client id
// (the client id its heartbeats carry), or nil: RocketMQ's
// ProducerManager.findChannel, which a reply is pushed through.
func (t *groupTable) producerConnOf(clientID string) *remoting.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.producers {
		for conn, p := range m {
			if p.clientID == clientID && conn.Err() == nil {
				return conn
			}
		}
	}
	return nil
}

// notify sends NOTIFY_CONSUMER_IDS_CHANGED (oneway, ext consumerGroup) to
// every connection of each notice, as RocketMQ's
// DefaultConsumerIdsChangeListener does for a CHANGE event (all of the
// group's channels, the one that caused it included). It does not wait.
func (t *groupTable) notify(notices []notice, log func(msg string, args ...any)) {
	for _, n := range notices {
		t.sendOneway(n.conns, func() *remoting.Command {
			return remoting.NewRequest(remoting.ReqNotifyConsumerIdsChanged, map[string]string{"consumerGroup": n.group})
		}, "notify consumer ids changed", n.group, log)
	}
}

// sendOneway sends each of conns a request mk makes, oneway, each on a
// goroutine of its own, and does not wait; close does. Failures are logged
// as what failed.
func (t *groupTable) sendOneway(conns []*remoting.Conn, mk func() *remoting.Command, what, group string, log func(msg string, args ...any)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for _, conn := range conns {
		t.notifying.Add(1)
		t.notifyN.Add(1)
		go func() {
			defer t.notifying.Done()
			defer t.notifyN.Add(-1)
			// Bounded: a consumer that stopped reading would hold this
			// goroutine for the WriteTimeout, one more per change of
			// its group; a cut-short write drops its connection.
			ctx, cancel := context.WithTimeout(context.Background(), notifyWriteWait)
			defer cancel()
			if err := conn.InvokeOnewayContext(ctx, mk()); err != nil && conn.Err() == nil {
				log(what+" failed", "group", group, "remote", conn.RemoteAddr(), "err", err)
			}
		}()
	}
}

// consumerMembers returns a consumer group's members whose connections
// are live.
func (t *groupTable) consumerMembers(group string) []memberKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.consumers[group]
	if g == nil {
		return nil
	}
	out := make([]memberKey, 0, len(g.clients))
	for k, c := range g.clients {
		if c.conn.Err() == nil {
			out = append(out, k)
		}
	}
	return out
}

// consumerConn returns a live connection of group's member clientID, or
// nil if it has none. Of two (a client that reconnected while its old
// connection, silently dead, is not closed yet; two processes sharing an
// id) it is the one heard from last, not whichever the map gives first.
func (t *groupTable) consumerConn(group, clientID string) *remoting.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.consumers[group]
	if g == nil {
		return nil
	}
	var last *consumerClient
	for k, c := range g.clients {
		if k.id == clientID && c.conn.Err() == nil && (last == nil || c.lastSeen.After(last.lastSeen)) {
			last = c
		}
	}
	if last == nil {
		return nil
	}
	return last.conn
}

// notifyWriteWait bounds one write of sendOneway (NOTIFY_CONSUMER_IDS_CHANGED,
// RESET_CONSUMER_CLIENT_OFFSET).
const notifyWriteWait = 3 * time.Second

// close stops notifications and waits for those in flight.
func (t *groupTable) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.notifying.Wait()
}

// groupState is a broker's consumer-side state: groups (this file),
// offsets (offsets.go) and queue locks (lock.go).
type groupState struct {
	groups  *groupTable
	offsets *offsetTable
	locks   *lockTable
}

func newGroupState(dir string) *groupState {
	return &groupState{groups: newGroupTable(), offsets: openOffsetTable(dir), locks: newLockTable()}
}

func (b *Broker) groupTable() *groupTable   { return b.groups.groups }
func (b *Broker) offsetTable() *offsetTable { return b.groups.offsets }
func (b *Broker) lockTable() *lockTable     { return b.groups.locks }

// registerGroups handles heartbeats and group membership.
func (b *Broker) registerGroups(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqHeartBeat, b.handleHeartbeat)
	mux.HandleFunc(remoting.ReqUnregisterClient, b.handleUnregisterClient)
	mux.HandleFunc(remoting.ReqGetConsumerListByGroup, b.handleGetConsumerList)
}

// errBadHeartbeat marks a heartbeat the broker refuses.
var errBadHeartbeat = errors.New("bad heartbeat")

// parseHeartbeat decodes and checks a HEART_BEAT body.
func parseHeartbeat(body []byte) (*heartbeatData, error) {
	var hb heartbeatData
	if err := json.Unmarshal(body, &hb); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadHeartbeat, err)
	}
	if hb.ClientID == "" {
		return nil, fmt.Errorf("%w: no clientID", errBadHeartbeat)
	}
	for _, p := range hb.ProducerDataSet {
		if p.GroupName == "" {
			return nil, fmt.Errorf("%w: producer with no groupName", errBadHeartbeat)
		}
	}
	for _, c := range hb.ConsumerDataSet {
		if c.GroupName == "" {
			return nil, fmt.Errorf("%w: consumer with no groupName", errBadHeartbeat)
		}
		if err := message.ValidateGroup(c.GroupName); err != nil {
			return nil, fmt.Errorf("%w: consumer group: %v", errBadHeartbeat, err)
		}
	}
	return &hb, nil
}

func (b *Broker) handleHeartbeat(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	hb, err := parseHeartbeat(req.Body)
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	hb.language, hb.version = req.Language.String(), req.Version
	// Each consumer group gets its subscription group settings
	// (subgroups.go) and its retry topic (their retryQueueNums queues,
	// read-write), as ClientManageProcessor.heartBeat creates them. A group
	// whose name makes no valid topic (the clients allow 255 characters, a
	// topic 127) is still a member, as with RocketMQ; it has no retry
	// topic, so its send-backs are refused. A group without settings
	// (auto-creation off) gets no retry topic yet.
	// In one write of each file however many groups the heartbeat names.
	names := make([]string, 0, len(hb.ConsumerDataSet))
	for _, c := range hb.ConsumerDataSet {
		names = append(names, c.GroupName)
	}
	groups, err := b.subGroups.findAll(names)
	if err != nil {
		b.opts.Logger.Warn("subscription groups file not written", "groups", len(names), "err", err)
	}
	// Not created yet (auto-creation is off), a group gets its retry
	// topic with the first heartbeat after, with the retryQueueNums it is
	// created with.
	retries := make([]TopicConfig, 0, len(groups))
	for _, g := range groups {
		retry := RetryTopic(g.GroupName)
		if err := message.ValidateTopic(retry); err != nil {
			b.opts.Logger.Warn("consumer group has no retry topic: its failed messages cannot be sent back", "group", g.GroupName, "err", err)
			continue
		}
		retries = append(retries, TopicConfig{TopicName: retry, ReadQueueNums: g.RetryQueueNums, WriteQueueNums: g.RetryQueueNums, Perm: PermRW})
	}
	if err := b.ensureGroupTopics(retries); err != nil {
		// Still members, as a group with no valid retry topic: the topic
		// table is not written (a full disk) and a topic is not served
		// unwritten, so refusing the heartbeat would keep a new group
		// without members for as long. The next heartbeat, or a
		// send-back, creates the retry topics once the file is written.
		b.opts.Logger.Warn("retry topics not created: the topic table was not written", "groups", len(retries), "err", err)
	}
	notices, hook := b.groupTable().heartbeat(conn, hb)
	if hook {
		conn.OnClose(b.onClientClose)
	}
	for _, n := range notices {
		b.opts.Logger.Info("consumer group changed", "group", n.group, "client", hb.ClientID, "members", len(n.conns))
	}
	b.notifyGroups(notices)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// ensureGroupTopic creates a retry or dead-letter topic with queues
// read-write queues if it does not exist, whatever DisableAutoCreateTopic
// says (TopicConfigManager.createTopicInSendMessageBackMethod). RocketMQ
// 4.x made the DLQ write-only; current RocketMQ makes it read-write so
// that operators can consume and re-drive it, and so does halfback.
func (b *Broker) ensureGroupTopic(topic string, queues int) error {
	return b.ensureGroupTopics([]TopicConfig{{TopicName: topic, ReadQueueNums: queues, WriteQueueNums: queues, Perm: PermRW}})
}

// ensureGroupTopics is ensureGroupTopic for each of tcs, in one write.
func (b *Broker) ensureGroupTopics(tcs []TopicConfig) error {
	missing := tcs[:0:0]
	for _, tc := range tcs {
		if _, ok := b.topics.get(tc.TopicName); !ok {
			missing = append(missing, tc)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	defer b.lockTopicAdmin()() // see topicForSend
	if err := b.topics.create(missing); err != nil {
		return err
	}
	b.topicsChanged() // consumers find the retry topic's route through the name server
	return nil
}

// notifyGroups sends the notices of groups whose settings allow it.
func (b *Broker) notifyGroups(notices []notice) {
	b.groupTable().notify(b.notifyEnabled(notices), b.opts.Logger.Warn)
}

// onClientClose removes a closed connection's clients from their groups.
func (b *Broker) onClientClose(conn *remoting.Conn) {
	notices := b.groupTable().removeConn(conn)
	for _, n := range notices {
		b.opts.Logger.Info("consumer left group (connection closed)", "group", n.group, "remote", conn.RemoteAddr(), "members", len(n.conns))
	}
	if !b.closed.Load() {
		b.notifyGroups(notices)
	}
}

func (b *Broker) handleUnregisterClient(_ context.Context, conn *remoting.Conn, req *remoting.Command) *remoting.Command {
	notices := b.groupTable().unregister(conn, req.Ext("clientID"), req.Ext("producerGroup"), req.Ext("consumerGroup"))
	b.notifyGroups(notices)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// handleGetConsumerList answers {"consumerIdList": [...]}, or SYSTEM_ERROR
// when the group has no online member (as ClientManageProcessor does).
func (b *Broker) handleGetConsumerList(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	group := req.Ext("consumerGroup")
	info, ok := b.groupTable().info(group)
	if !ok {
		return remoting.NewResponse(req, remoting.RespSystemError, "no consumer for this group, "+group)
	}
	body, err := json.Marshal(struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}{info.ClientIDs})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// scanExpiredClients removes clients that stopped heartbeating and
// notifies their groups.
func (b *Broker) scanExpiredClients() {
	notices := b.groupTable().expire()
	for _, n := range notices {
		b.opts.Logger.Info("consumer left group (no heartbeat)", "group", n.group, "members", len(n.conns))
	}
	b.notifyGroups(notices)
}

// startGroupExpiry runs scanExpiredClients every clientScanInterval.
func (b *Broker) startGroupExpiry() {
	b.every(clientScanInterval, func() {
		b.scanExpiredClients()
		b.lockTable().prune()
	})
}

// producerConns returns the live connections of a producer group (for
// transaction check-back).
func (b *Broker) producerConns(group string) []*remoting.Conn {
	return b.groupTable().producerConns(group)
}

// consumerGroupInfo describes an online consumer group.
func (b *Broker) consumerGroupInfo(group string) (consumerGroupView, bool) {
	return b.groupTable().info(group)
}

// consumerGroups lists the online consumer groups.
func (b *Broker) consumerGroups() []string { return b.groupTable().groups() }

// groupSubscription returns how an online group subscribes to topic.
func (b *Broker) groupSubscription(group, topic string) (subscription, bool) {
	info, ok := b.groupTable().info(group)
	if !ok {
		return subscription{}, false
	}
	for _, s := range info.Subscriptions {
		if s.Topic == topic {
			return s, true
		}
	}
	return subscription{}, false
}

// closeGroups stops group notifications and persists consumer offsets;
// Close calls it once the server and the background work have stopped.
func (b *Broker) closeGroups() error {
	b.groups.groups.close()
	return b.groups.offsets.close()
}
