package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Heartbeats: every HeartbeatInterval, and promptly after a group is
// registered or a broker is first heard of or connected to, the client
// sends HEART_BEAT with its producer and consumer groups to every known
// broker (masters only unless a consumer group is registered, as the Go
// client does). A broker sends CHECK_TRANSACTION_STATE and
// NOTIFY_CONSUMER_IDS_CHANGED only over connections that heartbeated.

// heartbeatData is the HEART_BEAT body (RocketMQ's HeartbeatData).
type heartbeatData struct {
	ClientID        string         `json:"clientID"`
	ProducerDataSet []producerData `json:"producerDataSet"`
	ConsumerDataSet []consumerData `json:"consumerDataSet"`
}

// producerData is one producer group in a heartbeat.
type producerData struct {
	GroupName string `json:"groupName"`
}

// consumerData is one consumer group in a heartbeat (RocketMQ's
// ConsumerData). ConsumeType is CONSUME_PASSIVELY (push) or
// CONSUME_ACTIVELY (pull); MessageModel CLUSTERING or BROADCASTING;
// ConsumeFromWhere CONSUME_FROM_LAST_OFFSET, CONSUME_FROM_FIRST_OFFSET or
// CONSUME_FROM_TIMESTAMP.
type consumerData struct {
	GroupName           string             `json:"groupName"`
	ConsumeType         string             `json:"consumeType"`
	MessageModel        string             `json:"messageModel"`
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []subscriptionData `json:"subscriptionDataSet"`
	UnitMode            bool               `json:"unitMode"`
}

// subscriptionData is one subscribed topic (RocketMQ's SubscriptionData):
// SubString is the tag expression ("*" or "TagA || TagB"), TagsSet its
// tags and CodeSet their hash codes (message.TagsCode), SubVersion a
// timestamp in ms that grows with each change, ExpressionType "TAG".
type subscriptionData struct {
	Topic           string   `json:"topic"`
	SubString       string   `json:"subString"`
	TagsSet         []string `json:"tagsSet"`
	CodeSet         []int64  `json:"codeSet"`
	SubVersion      int64    `json:"subVersion"`
	ExpressionType  string   `json:"expressionType"`
	ClassFilterMode bool     `json:"classFilterMode"`
}

// registerProducerGroup adds a producer group with its check listener to
// the heartbeats. It fails with ErrGroupRegistered if the group has one.
func (c *Client) registerProducerGroup(group string, l CheckListener, timeout time.Duration) error {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok := c.producers[group]; ok {
		return fmt.Errorf("%w: producer group %q has a check listener", ErrGroupRegistered, group)
	}
	c.producers[group] = checkEntry{listener: l, timeout: timeout}
	if int64(timeout) > c.checkWait.Load() {
		c.checkWait.Store(int64(timeout)) // under groupsMu
	}
	c.kickHeartbeat()
	return nil
}

// unregisterProducerGroup removes a producer group from the heartbeats.
// Brokers forget it when the connection closes or after two minutes
// without a heartbeat naming it.
func (c *Client) unregisterProducerGroup(group string) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	delete(c.producers, group)
}

// leaveProducerGroup tells the brokers this client heartbeated that it no
// longer answers group's check-backs (UNREGISTER_CLIENT), as RocketMQ's
// producers do at shutdown: a broker would otherwise send it check-backs,
// counted against the half messages' check limit, until the group expires
// there. Only open connections carry a registration.
func (c *Client) leaveProducerGroup(group string) { c.leaveGroup("producerGroup", group) }

// leaveGroup sends UNREGISTER_CLIENT for a producer or consumer group
// (field is its ext field) over the open broker connections, to all of
// them at once: a broker that does not answer must not keep the group
// registered on the others for a request timeout.
func (c *Client) leaveGroup(field, group string) {
	var wg sync.WaitGroup
	for _, addr := range c.routes.brokerAddrs(true) {
		conn := c.pool.open(addr)
		if conn == nil {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
			defer cancel()
			resp, err := conn.Invoke(ctx, newRequest(remoting.ReqUnregisterClient,
				map[string]string{"clientID": c.id, field: group}))
			if err == nil && resp.Code != remoting.RespSuccess {
				err = &BrokerError{Op: "UNREGISTER_CLIENT", Addr: addr, Code: resp.Code, Remark: resp.Remark}
			}
			if err != nil {
				c.log.Debug("client: unregister failed", "broker", addr, field, group, "err", err)
			}
		})
	}
	wg.Wait()
}

// registerConsumerGroup adds a consumer group to the heartbeats: data is
// called for each heartbeat, so it always reports current subscriptions.
// Call kickHeartbeat after a subscription change. It fails with
// ErrGroupRegistered if the group is already registered.
func (c *Client) registerConsumerGroup(group string, data func() consumerData) error {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok := c.consumers[group]; ok {
		return fmt.Errorf("%w: consumer group %q", ErrGroupRegistered, group)
	}
	c.consumers[group] = data
	c.kickHeartbeat()
	return nil
}

// hasConsumerGroup reports whether a consumer group is registered.
func (c *Client) hasConsumerGroup(group string) bool {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	_, ok := c.consumers[group]
	return ok
}

// unregisterConsumerGroup removes a consumer group from the heartbeats.
func (c *Client) unregisterConsumerGroup(group string) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	delete(c.consumers, group)
}

// subscribedTopics returns the topics the registered consumer groups
// subscribe to, their retry topics included.
func (c *Client) subscribedTopics() map[string]bool {
	c.groupsMu.Lock()
	sources := make([]func() consumerData, 0, len(c.consumers))
	for _, f := range c.consumers {
		sources = append(sources, f)
	}
	c.groupsMu.Unlock()
	out := map[string]bool{}
	for _, f := range sources {
		for _, s := range f().SubscriptionDataSet {
			out[s.Topic] = true
		}
	}
	return out
}

// consumerLeft records that a closing consumer of group is sending its
// UNREGISTER_CLIENT. Only the rounds under way need to know: none, no
// record.
func (c *Client) consumerLeft(group string) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	c.leaveSeq++
	if len(c.hbRounds) > 0 {
		c.left[group] = c.leaveSeq
	}
}

// roundDone ends the heartbeat round that started at mark, and forgets
// the groups that left before every round still under way started.
func (c *Client) roundDone(mark uint64) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	if c.hbRounds[mark]--; c.hbRounds[mark] <= 0 {
		delete(c.hbRounds, mark)
	}
	oldest := c.leaveSeq
	for m := range c.hbRounds {
		oldest = min(oldest, m)
	}
	for g, seq := range c.left {
		if seq <= oldest {
			delete(c.left, g)
		}
	}
}

// leftSince reports whether group's consumer began sending its
// UNREGISTER_CLIENT after leaveSeq was mark, and no consumer of the group
// registered since.
func (c *Client) leftSince(group string, mark uint64) bool {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	_, again := c.consumers[group]
	return c.left[group] > mark && !again
}

// heartbeatBody returns the current heartbeat, sorted by group, and
// leaveSeq at the time, the round's mark: the caller calls roundDone(mark)
// when the round is over.
func (c *Client) heartbeatBody() (heartbeatData, uint64) {
	c.groupsMu.Lock()
	mark := c.leaveSeq
	c.hbRounds[mark]++
	producers := make([]string, 0, len(c.producers))
	for g := range c.producers {
		producers = append(producers, g)
	}
	sources := make(map[string]func() consumerData, len(c.consumers))
	for g, f := range c.consumers {
		sources[g] = f
	}
	c.groupsMu.Unlock()
	hb := heartbeatData{ClientID: c.id, ProducerDataSet: []producerData{}, ConsumerDataSet: []consumerData{}}
	sort.Strings(producers)
	for _, g := range producers {
		hb.ProducerDataSet = append(hb.ProducerDataSet, producerData{GroupName: g})
	}
	for g, f := range sources {
		d := f()
		d.GroupName = g
		hb.ConsumerDataSet = append(hb.ConsumerDataSet, d)
	}
	sort.Slice(hb.ConsumerDataSet, func(i, j int) bool { return hb.ConsumerDataSet[i].GroupName < hb.ConsumerDataSet[j].GroupName })
	return hb, mark
}

// kickHeartbeat asks the heartbeat loop for a round now. It does not block.
func (c *Client) kickHeartbeat() {
	select {
	case c.hbKick <- struct{}{}:
	default: // one is pending
	}
}

// heartbeatLoop runs heartbeat rounds until the client closes.
func (c *Client) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.hbKick:
		}
		if err := c.heartbeatNow(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("client: heartbeat failed", "client", c.id, "err", err)
		}
	}
}

// heartbeatNow sends one heartbeat to every known broker, learning the
// brokers from the name servers first when a producer group is
// registered. It returns the failures joined; nothing is sent when no
// group is registered.
func (c *Client) heartbeatNow(ctx context.Context) error {
	hb, mark := c.heartbeatBody()
	defer c.roundDone(mark)
	if len(hb.ProducerDataSet) == 0 {
		c.routes.setCluster(nil) // the cluster's brokers are no longer needed
	}
	if len(hb.ProducerDataSet) == 0 && len(hb.ConsumerDataSet) == 0 {
		return nil
	}
	var errs []error
	if len(hb.ProducerDataSet) > 0 {
		if err := c.refreshBrokers(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	for _, addr := range c.routes.brokerAddrs(len(hb.ConsumerDataSet) > 0) {
		req := newRequest(remoting.ReqHeartBeat, nil)
		req.Body = body
		resp, err := c.invoke(ctx, addr, "HEART_BEAT", req)
		switch {
		case err != nil:
			errs = append(errs, err)
		case resp.Code != remoting.RespSuccess:
			errs = append(errs, &BrokerError{Op: "HEART_BEAT", Addr: addr, Code: resp.Code, Remark: resp.Remark})
		}
		if ctx.Err() != nil {
			break
		}
	}
	// A group closed while this round was under way: its
	// UNREGISTER_CLIENT may have reached a broker before this heartbeat
	// (built earlier, naming the group) did, registering it again there.
	// Unregister it again, now that every broker has handled the heartbeat.
	for _, p := range hb.ProducerDataSet {
		c.groupsMu.Lock()
		_, still := c.producers[p.GroupName]
		c.groupsMu.Unlock()
		if !still && ctx.Err() == nil {
			c.leaveProducerGroup(p.GroupName)
		}
	}
	// A consumer group only once its consumer's Close sends its own
	// UNREGISTER_CLIENT (after its last offset commit): sooner would hand
	// its queues to the other members early.
	for _, d := range hb.ConsumerDataSet {
		if c.leftSince(d.GroupName, mark) && ctx.Err() == nil {
			c.leaveGroup("consumerGroup", d.GroupName)
		}
	}
	return errors.Join(errs...)
}
