package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fastjson"
)

// Routes: what the name servers say about topics (GET_ROUTEINFO_BY_TOPIC)
// and brokers (GET_BROKER_CLUSTER_INFO), cached and refreshed every
// RouteRefreshInterval. A topic's route is kept while a started consumer
// subscribes to it, or while something looked it up in the last
// routeIdleRounds refresh intervals (a producer's send, a rebalance); past
// that it is forgotten, and the next lookup asks the name servers again.
// A Client outliving its producers and consumers would otherwise keep,
// and refresh, every topic it ever used.

// routeIdleRounds is how many refresh intervals a route no consumer
// subscribes to is kept without a lookup (2 minutes by default).
const routeIdleRounds = 4

// Name-server facts the client needs.
const (
	// autoCreateTopicKey is the topic whose route a producer borrows for a
	// topic no name server knows yet (TBW102, RocketMQ's
	// AUTO_CREATE_TOPIC_KEY_TOPIC); the broker creates the topic on the
	// first send.
	autoCreateTopicKey = "TBW102"
	// defaultTopicQueueNums caps the queues of a borrowed route
	// (defaultTopicQueueNums, 4).
	defaultTopicQueueNums = 4
	// masterID is the broker id of a master.
	masterID int64 = 0
	// Permission bits of a topic on a broker (RocketMQ's PermName).
	permWrite = 2
	permRead  = 4
	// maxRouteQueueNums bounds the queue counts of one broker in a route:
	// a route is expanded into one MessageQueue per queue, so a count from
	// a broken or hostile name server must not decide the allocation.
	maxRouteQueueNums = 1 << 16
)

// MessageQueue is one queue of a topic on one broker.
type MessageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

func (q MessageQueue) String() string {
	return q.Topic + "@" + q.BrokerName + "#" + strconv.Itoa(int(q.QueueID))
}

// topicRouteData is the GET_ROUTEINFO_BY_TOPIC body (TopicRouteData).
type topicRouteData struct {
	OrderTopicConf string       `json:"orderTopicConf"`
	QueueDatas     []queueData  `json:"queueDatas"`
	BrokerDatas    []brokerData `json:"brokerDatas"`
}

// queueData is one broker's queues of a topic.
type queueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
}

// brokerData is a broker group: member addresses by broker id, 0 the master.
type brokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

// clusterInfo is the GET_BROKER_CLUSTER_INFO body.
type clusterInfo struct {
	BrokerAddrTable map[string]brokerData `json:"brokerAddrTable"`
}

// topicRoute is a topic's route with its queues worked out.
type topicRoute struct {
	topic string
	data  topicRouteData
	// writeQueues and readQueues are the queues of brokers that have a
	// master and the permission, sorted by broker name then queue id (the
	// order Java's clients use, so hash selectors agree across languages);
	// with an orderTopicConf, writeQueues are the ones it lists.
	writeQueues []MessageQueue
	readQueues  []MessageQueue
	// used is when a caller last looked the route up (UnixNano); a
	// refresh does not count.
	used atomic.Int64
}

func newTopicRoute(topic string, d topicRouteData) *topicRoute {
	r := &topicRoute{topic: topic, data: d}
	masters := map[string]bool{}
	for _, b := range d.BrokerDatas {
		if b.BrokerAddrs[masterID] != "" {
			masters[b.BrokerName] = true
		}
	}
	// An orderTopicConf ("brokerName:queueNums" pairs joined by ';', the
	// name server's ORDER_TOPIC_CONFIG) lists the queues to send to, in its
	// order, as RocketMQ's clients take it (topicRouteData2TopicPublishInfo).
	ordered := d.OrderTopicConf != ""
	for pair := range strings.SplitSeq(d.OrderTopicConf, ";") {
		name, nums, ok := strings.Cut(pair, ":")
		n, err := strconv.Atoi(nums)
		if !ok || err != nil {
			continue
		}
		for i := 0; i < n && len(r.writeQueues) < maxRouteQueueNums; i++ { // bounded as fetchRoute bounds queue counts
			r.writeQueues = append(r.writeQueues, MessageQueue{Topic: topic, BrokerName: name, QueueID: int32(i)})
		}
	}
	qds := append([]queueData(nil), d.QueueDatas...)
	sort.Slice(qds, func(i, j int) bool { return qds[i].BrokerName < qds[j].BrokerName })
	for _, q := range qds {
		if !masters[q.BrokerName] {
			continue
		}
		for i := 0; !ordered && q.Perm&permWrite != 0 && i < q.WriteQueueNums; i++ {
			r.writeQueues = append(r.writeQueues, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: int32(i)})
		}
		for i := 0; q.Perm&permRead != 0 && i < q.ReadQueueNums; i++ {
			r.readQueues = append(r.readQueues, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: int32(i)})
		}
	}
	return r
}

// routeTable caches routes by topic and broker groups by name.
type routeTable struct {
	mu      sync.RWMutex
	topics  map[string]*topicRoute
	brokers map[string]brokerData
	cluster map[string]bool // the broker groups of the last cluster info
}

func newRouteTable() *routeTable {
	return &routeTable{topics: map[string]*topicRoute{}, brokers: map[string]brokerData{}}
}

// get returns topic's cached route, or nil, and marks it used.
func (t *routeTable) get(topic string) *topicRoute {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r := t.topics[topic]
	if r != nil {
		r.used.Store(time.Now().UnixNano())
	}
	return r
}

// put caches r and learns its brokers. It reports whether a broker group
// was new or changed address. r counts as used now if use is set or the
// topic was not cached; else it was last used when the route it replaces
// was.
func (t *routeTable) put(r *topicRoute, use bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.topics[r.topic]; old != nil && !use {
		r.used.Store(old.used.Load())
	} else {
		r.used.Store(time.Now().UnixNano())
	}
	t.topics[r.topic] = r
	return t.learnLocked(r.data.BrokerDatas)
}

// forgetIdle forgets topic's route if it was last used before before,
// and reports whether it did.
func (t *routeTable) forgetIdle(topic string, before time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.topics[topic]
	if r == nil || r.used.Load() >= before.UnixNano() {
		return false
	}
	delete(t.topics, topic)
	return true
}

func (t *routeTable) learn(bds []brokerData) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learnLocked(bds)
}

func (t *routeTable) learnLocked(bds []brokerData) bool {
	changed := false
	for _, b := range bds {
		old, ok := t.brokers[b.BrokerName]
		if !ok || !sameAddrs(old.BrokerAddrs, b.BrokerAddrs) {
			changed = true
		}
		t.brokers[b.BrokerName] = b
	}
	return changed
}

// setCluster records the broker groups the name servers list now (nil:
// none is needed) and prunes the others.
func (t *routeTable) setCluster(names map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cluster = names
	t.pruneLocked()
}

// prune forgets the broker groups that no cached route names and the
// last cluster info does not list (RocketMQ's cleanOfflineBroker), so
// that heartbeats stop going to brokers that left.
func (t *routeTable) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked()
}

func (t *routeTable) pruneLocked() {
	for name := range t.brokers {
		if t.cluster[name] {
			continue
		}
		used := false
		for _, r := range t.topics {
			for _, b := range r.data.BrokerDatas {
				used = used || b.BrokerName == name
			}
		}
		if !used {
			delete(t.brokers, name)
		}
	}
}

func sameAddrs(a, b map[int64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, addr := range a {
		if b[id] != addr {
			return false
		}
	}
	return true
}

// topicNames returns the cached topics.
func (t *routeTable) topicNames() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.topics))
	for name := range t.topics {
		out = append(out, name)
	}
	return out
}

// masterAddr returns a broker group's master address, or "".
func (t *routeTable) masterAddr(brokerName string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.brokers[brokerName].BrokerAddrs[masterID]
}

// brokerName returns the name of the broker group addr belongs to, or "".
func (t *routeTable) brokerName(addr string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for name, b := range t.brokers {
		for _, a := range b.BrokerAddrs {
			if a == addr {
				return name
			}
		}
	}
	return ""
}

// brokerAddrs returns the known broker addresses, masters only unless
// slaves is set.
func (t *routeTable) brokerAddrs(slaves bool) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for _, b := range t.brokers {
		for id, a := range b.BrokerAddrs {
			if a != "" && (id == masterID || slaves) {
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// route returns topic's route from the cache, asking the name servers if
// it is not cached. It fails with ErrTopicNotFound if they know none.
func (c *Client) route(ctx context.Context, topic string) (*topicRoute, error) {
	if r := c.routes.get(topic); r != nil {
		return r, nil
	}
	return c.fetchRoute(ctx, topic)
}

// fetchRoute asks the name servers for topic's route and caches it, used.
func (c *Client) fetchRoute(ctx context.Context, topic string) (*topicRoute, error) {
	return c.lookupRoute(ctx, topic, true)
}

// lookupRoute is fetchRoute; use says whether the route counts as used
// (not for a refresh).
func (c *Client) lookupRoute(ctx context.Context, topic string, use bool) (*topicRoute, error) {
	const op = "GET_ROUTEINFO_BY_TOPIC"
	resp, addr, err := c.invokeNamesrv(ctx, op, remoting.ReqGetRouteInfoByTopic, map[string]string{"topic": topic})
	if err != nil {
		return nil, err
	}
	switch resp.Code {
	case remoting.RespSuccess:
	case remoting.RespTopicNotExist:
		return nil, fmt.Errorf("%w: %s: %s", ErrTopicNotFound, topic, resp.Remark)
	default:
		return nil, &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	var d topicRouteData
	if err := json.Unmarshal(fastjson.QuoteNumericKeys(resp.Body), &d); err != nil {
		return nil, fmt.Errorf("client: %s from %s: bad route for %s: %w", op, addr, topic, err)
	}
	for _, q := range d.QueueDatas {
		if q.ReadQueueNums < 0 || q.WriteQueueNums < 0 || q.ReadQueueNums > maxRouteQueueNums || q.WriteQueueNums > maxRouteQueueNums {
			return nil, fmt.Errorf("client: %s from %s: bad route for %s: broker %s has %d/%d queues (at most %d)",
				op, addr, topic, q.BrokerName, q.ReadQueueNums, q.WriteQueueNums, maxRouteQueueNums)
		}
	}
	r := newTopicRoute(topic, d)
	if c.routes.put(r, use) {
		c.kickHeartbeat() // a new broker hears of our groups promptly
	}
	return r, nil
}

// SubscribeQueues returns the queues of topic a consumer reads, as the
// name servers route them now (RocketMQ's fetchSubscribeMessageQueues).
// It fails with ErrTopicNotFound if no name server knows the topic or it
// has no readable queue.
func (c *Client) SubscribeQueues(ctx context.Context, topic string) ([]MessageQueue, error) {
	r, err := c.fetchRoute(ctx, topic)
	if err != nil {
		return nil, err
	}
	return r.sortedReadQueues(topic)
}

// sortedReadQueues returns a sorted copy of the route's readable queues,
// or ErrTopicNotFound if it has none.
func (r *topicRoute) sortedReadQueues(topic string) ([]MessageQueue, error) {
	if len(r.readQueues) == 0 {
		return nil, fmt.Errorf("%w: %s has no readable queue", ErrTopicNotFound, topic)
	}
	mqs := slices.Clone(r.readQueues)
	sortQueues(mqs)
	return mqs, nil
}

// publishQueues returns the queues a message to topic may be sent to. A
// topic no name server knows borrows the brokers of TBW102, at most
// defaultTopicQueueNums queues each, as RocketMQ's producers do.
func (c *Client) publishQueues(ctx context.Context, topic string) ([]MessageQueue, error) {
	r := c.routes.get(topic)
	var err error
	switch {
	case r == nil:
		r, err = c.fetchRoute(ctx, topic)
	case len(r.writeQueues) == 0:
		// A cached route with nothing to send to is asked for again, as
		// RocketMQ's producers do (tryToFindTopicPublishInfo): a master
		// back, or a write permission restored, serves sends at once
		// rather than after the next refresh. A topic the name servers
		// no longer know (deleted since) borrows TBW102's brokers below,
		// as one never seen does; another failure keeps the route.
		fresh, ferr := c.fetchRoute(ctx, topic)
		switch {
		case ferr == nil:
			r = fresh
		case errors.Is(ferr, ErrTopicNotFound):
			err = ferr
		}
	}
	if errors.Is(err, ErrTopicNotFound) {
		def, derr := c.route(ctx, autoCreateTopicKey)
		if derr != nil {
			return nil, err
		}
		d := def.data
		d.QueueDatas = append([]queueData(nil), d.QueueDatas...)
		for i := range d.QueueDatas {
			d.QueueDatas[i].WriteQueueNums = min(d.QueueDatas[i].WriteQueueNums, defaultTopicQueueNums)
		}
		r, err = newTopicRoute(topic, d), nil
	}
	if err != nil {
		return nil, err
	}
	if len(r.writeQueues) == 0 {
		return nil, fmt.Errorf("%w: %s has no writable queue on a broker with a master", ErrTopicNotFound, topic)
	}
	return r.writeQueues, nil
}

// brokerAddr returns the master address of brokerName, asking the name
// servers for topic's route if the broker is not known yet.
func (c *Client) brokerAddr(ctx context.Context, brokerName, topic string) (string, error) {
	if a := c.routes.masterAddr(brokerName); a != "" {
		return a, nil
	}
	if topic != "" {
		if _, err := c.fetchRoute(ctx, topic); err != nil {
			return "", err
		}
		if a := c.routes.masterAddr(brokerName); a != "" {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrBrokerNotFound, brokerName)
}

// refreshRoutes fetches every cached topic's route again, except those
// it forgets: unused for routeIdleRounds intervals and subscribed to by no
// registered consumer. A failure keeps the old route.
func (c *Client) refreshRoutes(ctx context.Context) {
	idleSince := time.Now().Add(-routeIdleRounds * c.opts.RouteRefreshInterval)
	subscribed := c.subscribedTopics()
	for _, topic := range c.routes.topicNames() {
		if !subscribed[topic] && c.routes.forgetIdle(topic, idleSince) {
			c.log.Debug("client: route no longer used, forgotten", "topic", topic)
			continue
		}
		if _, err := c.lookupRoute(ctx, topic, false); err != nil && ctx.Err() == nil {
			c.log.Debug("client: route refresh failed", "topic", topic, "err", err)
		}
	}
	c.routes.prune()
}

// refreshBrokers learns every broker group from the name servers' cluster
// info, so that a producer group is heartbeated to brokers it has not sent
// to (those may hold its half messages from another process).
func (c *Client) refreshBrokers(ctx context.Context) error {
	const op = "GET_BROKER_CLUSTER_INFO"
	resp, addr, err := c.invokeNamesrv(ctx, op, remoting.ReqGetBrokerClusterInfo, nil)
	if err != nil {
		return err
	}
	if resp.Code != remoting.RespSuccess {
		return &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	var ci clusterInfo
	if err := json.Unmarshal(fastjson.QuoteNumericKeys(resp.Body), &ci); err != nil {
		return fmt.Errorf("client: %s from %s: %w", op, addr, err)
	}
	bds := make([]brokerData, 0, len(ci.BrokerAddrTable))
	names := make(map[string]bool, len(ci.BrokerAddrTable))
	for name, b := range ci.BrokerAddrTable {
		if b.BrokerName == "" {
			b.BrokerName = name
		}
		bds = append(bds, b)
		names[b.BrokerName] = true
	}
	c.routes.learn(bds)
	c.routes.setCluster(names)
	return nil
}

// invokeNamesrv sends a request to the name servers in turn, starting with
// the one after the last used, until one answers.
func (c *Client) invokeNamesrv(ctx context.Context, op string, code int16, ext map[string]string) (*remoting.Command, string, error) {
	addrs := c.opts.NamesrvAddrs
	start := int(c.nsNext.Add(1))
	var errs []error
	for i := range addrs {
		addr := addrs[(start+i)%len(addrs)]
		resp, err := c.invoke(ctx, addr, op, newRequest(code, ext))
		if err == nil {
			return resp, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			break
		}
	}
	return nil, "", errors.Join(errs...)
}
