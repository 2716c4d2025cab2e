package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// PushConsumer consumes the topics it subscribes to for one consumer
// group: it pulls every queue assigned to it with long polling and calls
// the subscription's handler. A message counts as consumed only after its
// handler succeeded; the committed offset of a queue never moves past a
// message that has not (the smallest unacknowledged offset is committed).
// A concurrent consumer sends a failed message back to the broker
// (CONSUMER_SEND_MSG_BACK), which redelivers it through %RETRY%<group>
// after a delay, and after MaxReconsumeTimes failures stores it in
// %DLQ%<group>; an orderly one retries it on the spot first. Delivery is
// at least once: after a crash, or when a queue moves to another member,
// the unacknowledged tail is delivered again.
//
// Create it with [Client.NewPushConsumer], call [PushConsumer.Subscribe]
// for each topic, then [PushConsumer.Start]. [PushConsumer.Close] (or the
// Client's Close) stops it. Its methods are safe for concurrent use.
type PushConsumer struct {
	c    *Client
	opts ConsumerOptions
	log  *slog.Logger

	mu      sync.Mutex
	state   consumerState
	subs    map[string]*subscription // by topic; fixed once started
	started time.Time                // when Start began (running info)
	queues  map[MessageQueue]*processQueue
	// resetStarts are the offsets of the queues a pushed reset dropped
	// (consumer_reset.go), where the next rebalance takes them again.
	resetStarts map[MessageQueue]int64
	offsets     offsetStore

	dropCloser func() // unregisters the consumer's Client.onClose hook

	persistMu sync.Mutex // serializes offset commits

	// lockMu serializes lock renewals with the release of a dropped
	// queue's lock, so that a renewal never re-takes a lock just released,
	// and a rebalance's locks of new queues with releaseStale, so that a
	// stale lock's release never undoes them.
	lockMu sync.Mutex
	// lockStop ends the lock renewals, which outlive ctx: Close stops them
	// only once the handler calls have returned (lockDone closes then).
	lockStop context.CancelFunc
	lockDone chan struct{}
	// lockFailing holds the names of the brokers whose last lock request
	// failed (lockFailed logs the first failure only).
	lockLogMu   sync.Mutex
	lockFailing map[string]bool

	sem  chan struct{} // handler calls running, at most Concurrency
	kick chan struct{} // a rebalance is wanted; capacity 1

	gatesMu sync.Mutex
	gates   map[string]*commitGate // by broker name: see PushConsumer.commitGate
	// afterSlot, if set (tests only), runs in acquireFor once a slot is
	// taken, before the commit gate is checked.
	afterSlot func()
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // every goroutine of the consumer
}

type consumerState int

const (
	consumerNew consumerState = iota
	consumerStarted
	consumerClosed
)

// NewPushConsumer returns a consumer for opts.Group; it does nothing until
// Start.
func (c *Client) NewPushConsumer(opts ConsumerOptions) (*PushConsumer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &PushConsumer{
		c: c, opts: opts, log: c.log.With("group", opts.Group),
		subs:   map[string]*subscription{},
		queues: map[MessageQueue]*processQueue{}, resetStarts: map[MessageQueue]int64{},
		sem:         make(chan struct{}, opts.Concurrency),
		kick:        make(chan struct{}, 1),
		gates:       map[string]*commitGate{},
		lockFailing: map[string]bool{},
		ctx:         ctx, cancel: cancel,
	}, nil
}

// Group returns the consumer group.
func (pc *PushConsumer) Group() string { return pc.opts.Group }

// Subscribe consumes topic's messages whose tag matches tagExpr ("*" or
// "" for all, or tags separated by "||") with h. Call it before Start,
// once per topic. It fails with ErrInvalidSubscription for an illegal
// topic, a malformed expression or a nil handler, ErrConsumerStarted after
// Start, ErrClosed after Close.
func (pc *PushConsumer) Subscribe(topic, tagExpr string, h MessageHandler) error {
	return pc.subscribe(topic, h, func() (*subscription, error) { return newSubscription(topic, tagExpr, h) })
}

// SubscribeSQL92 consumes topic's messages whose properties match the
// SQL92 expression expr with h, as RocketMQ's MessageSelector.bySql: the
// broker evaluates expr over each message's properties (user properties,
// TAGS, KEYS) and delivers only those it is TRUE for, e.g.
// "amount > 100 AND TAGS IN ('OrderPaid')". The broker needs
// broker.enablePropertyFilter (RocketMQ's enablePropertyFilter): Start asks
// the topic's brokers (CHECK_CLIENT_CONFIG, as a Java push consumer does)
// and fails with ErrInvalidSubscription and the answer of one that refuses
// the expression. SubscribeSQL92 fails as Subscribe does, and with
// ErrInvalidSubscription naming the syntax error for an expression that
// does not compile.
func (pc *PushConsumer) SubscribeSQL92(topic, expr string, h MessageHandler) error {
	return pc.subscribe(topic, h, func() (*subscription, error) { return newSQL92Subscription(topic, expr, h) })
}

// subscribe checks topic and h, builds the subscription with mk and adds it.
func (pc *PushConsumer) subscribe(topic string, h MessageHandler, mk func() (*subscription, error)) error {
	if err := message.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSubscription, err)
	}
	if h == nil {
		return fmt.Errorf("%w: nil handler for topic %s", ErrInvalidSubscription, topic)
	}
	if topic == retryTopic(pc.opts.Group) {
		return fmt.Errorf("%w: %s is the group's own retry topic, consumed automatically", ErrInvalidSubscription, topic)
	}
	s, err := mk()
	if err != nil {
		return err
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	switch {
	case pc.state == consumerClosed:
		return ErrClosed
	case pc.state == consumerStarted:
		return fmt.Errorf("%w: subscribe to %s before Start", ErrConsumerStarted, topic)
	case pc.subs[topic] != nil:
		return fmt.Errorf("%w: topic %s is subscribed already", ErrInvalidSubscription, topic)
	}
	pc.subs[topic] = s
	return nil
}

// Start registers the group, tells the brokers about it, takes its first
// share of the queues and starts consuming. ctx bounds this first round
// only; the consumer runs until Close. A topic no name server knows yet is
// picked up by a later round. It fails with ErrInvalidSubscription when
// nothing was subscribed, ErrConsumerStarted the second time,
// ErrGroupRegistered if the Client has a consumer of the group,
// ErrOffsetFileInUse if another broadcasting consumer holds the offsets
// file, ErrClosed after Close, or ctx's error (the consumer is then
// closed).
func (pc *PushConsumer) Start(ctx context.Context) error {
	if err := pc.begin(); err != nil {
		return err
	}
	if err := pc.firstRound(ctx); err != nil {
		_ = pc.Close()
		return err
	}
	return nil
}

// firstRound runs Start's first rebalance and starts the loops; begin
// counted it in wg, so that a concurrent Close waits for it.
func (pc *PushConsumer) firstRound(ctx context.Context) error {
	defer pc.wg.Done()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(pc.ctx, cancel)
	defer stop()
	pc.warmUp(sctx)
	if err := pc.checkFilters(sctx); err != nil {
		return err
	}
	pc.rebalance(sctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	if pc.ctx.Err() != nil {
		return ErrClosed
	}
	pc.goLoop(pc.rebalanceLoop)
	pc.goLoop(pc.persistLoop)
	if pc.opts.Orderly && pc.opts.Model == Clustering {
		// Not pc.ctx: a closing consumer keeps renewing its locks until
		// its running handler calls return, so that no other member takes
		// a queue (once the lock expires) under a running call.
		lctx, stop := context.WithCancel(context.Background())
		pc.lockStop, pc.lockDone = stop, make(chan struct{})
		go func() {
			defer close(pc.lockDone)
			pc.lockLoop(lctx)
		}()
	}
	return nil
}

// begin moves the consumer to started and registers it with the Client.
func (pc *PushConsumer) begin() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.c.startMu.Lock()
	defer pc.c.startMu.Unlock()
	switch {
	case pc.state == consumerClosed || pc.c.closed.Load():
		return ErrClosed
	case pc.state == consumerStarted:
		return ErrConsumerStarted
	case len(pc.subs) == 0:
		return fmt.Errorf("%w: no topic subscribed", ErrInvalidSubscription)
	case pc.c.hasConsumerGroup(pc.opts.Group):
		// Before the offsets file is locked: a broadcasting twin in this
		// Client would find it locked by the first.
		return fmt.Errorf("%w: consumer group %q", ErrGroupRegistered, pc.opts.Group)
	}
	store, err := pc.newOffsetStore()
	if err != nil {
		return err
	}
	pc.started = time.Now()
	if pc.opts.Model == Clustering {
		rs, _ := newSubscription(retryTopic(pc.opts.Group), "*", nil)
		rs.retry = true
		pc.subs[rs.topic] = rs
	}
	if err := pc.c.registerConsumerGroup(pc.opts.Group, pc.heartbeatData); err != nil {
		delete(pc.subs, retryTopic(pc.opts.Group))
		store.close()
		return err
	}
	pc.c.pushers.add(pc.c, pc)
	var ok bool
	if pc.dropCloser, ok = pc.c.onClose(func() { _ = pc.Close() }); !ok {
		pc.c.pushers.remove(pc)
		pc.c.unregisterConsumerGroup(pc.opts.Group)
		store.close()
		return ErrClosed
	}
	if pc.opts.ConsumeTimestamp.IsZero() {
		pc.opts.ConsumeTimestamp = time.Now().Add(-DefaultConsumeTimestampAge)
	}
	pc.offsets = store
	pc.state = consumerStarted
	pc.wg.Add(1)
	return nil
}

// warmUp learns the subscribed topics' brokers and heartbeats them, so
// that they count this client as a member before the first rebalance.
func (pc *PushConsumer) warmUp(ctx context.Context) {
	for _, s := range pc.subscriptions() {
		if _, err := pc.c.route(ctx, s.topic); err != nil && ctx.Err() == nil {
			pc.log.Debug("client: consumer topic has no route yet", "topic", s.topic, "err", err)
		}
	}
	if err := pc.c.heartbeatNow(ctx); err != nil && ctx.Err() == nil {
		pc.log.Warn("client: consumer heartbeat failed", "err", err)
	}
}

// checkFilters asks the brokers of each SQL92 subscription's topic
// whether they serve it (CHECK_CLIENT_CONFIG, as a Java push consumer does
// on start): a broker without broker.enablePropertyFilter, or one that
// cannot compile the expression, fails Start with ErrInvalidSubscription
// and its answer. A topic without a route yet, or a broker that does not
// answer, is not checked (its pulls say so).
func (pc *PushConsumer) checkFilters(ctx context.Context) error {
	for _, s := range pc.subscriptions() {
		if s.data.ExpressionType != expressionSQL92 {
			continue
		}
		r, err := pc.c.route(ctx, s.topic)
		if err != nil {
			continue
		}
		body, err := json.Marshal(map[string]any{"clientId": pc.c.id, "group": pc.opts.Group, "subscriptionData": s.data})
		if err != nil {
			return err
		}
		for _, b := range r.data.BrokerDatas {
			addr := b.BrokerAddrs[masterID]
			if addr == "" {
				continue
			}
			req := newRequest(remoting.ReqCheckClientConfig, map[string]string{"clientId": pc.c.id, "group": pc.opts.Group})
			req.Body = body
			resp, err := pc.c.invoke(ctx, addr, "CHECK_CLIENT_CONFIG", req)
			if err != nil {
				pc.log.Warn("client: broker did not check the SQL92 subscription", "broker", addr, "topic", s.topic, "err", err)
				continue
			}
			if resp.Code != remoting.RespSuccess {
				return fmt.Errorf("%w: broker %s refuses the SQL92 subscription to %s (%q): %s",
					ErrInvalidSubscription, addr, s.topic, s.expr, resp.Remark)
			}
		}
	}
	return nil
}

// Closing is closed when Close begins (the consumer's own, or its
// Client's). Close waits for the handler calls running; a handler that
// retries by itself (waiting for a downstream system, say) should give up
// when Closing is closed.
func (pc *PushConsumer) Closing() <-chan struct{} { return pc.ctx.Done() }

// Close stops pulling, waits for the handler calls in progress (their
// contexts are not cancelled), commits the acknowledged offsets, releases
// the orderly queue locks and leaves the group (UNREGISTER_CLIENT), so that
// the other members take over its queues at once. Messages pulled but not
// yet handed to a handler are delivered again later. It returns the
// offset commit's error, if any; a second Close returns ErrClosed. The
// Client's Close closes its consumers first. A handler must not call
// Close (its consumer's or its Client's) and wait for it: Close waits for
// that handler's call. The commit has 3 RequestTimeouts; releasing the
// locks and leaving the group 3 more.
func (pc *PushConsumer) Close() error {
	pc.mu.Lock()
	prev := pc.state
	pc.state = consumerClosed
	pc.mu.Unlock()
	switch prev {
	case consumerClosed:
		return ErrClosed
	case consumerNew:
		pc.cancel()
		return nil
	}
	pc.c.unregisterConsumerGroup(pc.opts.Group)
	pc.cancel()
	pc.wg.Wait()
	if pc.lockStop != nil {
		pc.lockStop()
		<-pc.lockDone
	}
	// The commit has a deadline of its own: a broker that does not answer
	// spends it, and the locks and the group are still left on the others.
	pctx, pcancel := context.WithTimeout(context.Background(), 3*pc.c.opts.RequestTimeout)
	err := pc.persist(pctx, true)
	pcancel()
	pc.offsets.close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*pc.c.opts.RequestTimeout)
	defer cancel()
	var locked []MessageQueue
	if pc.opts.Orderly && pc.opts.Model == Clustering {
		locked = pc.queueList()
	}
	// Recorded before the UNREGISTER_CLIENTs go out: a heartbeat round
	// that named the group and lands after one of them (while Close still
	// waits on another broker) unregisters the group again itself.
	pc.c.consumerLeft(pc.opts.Group)
	pc.leaveBrokers(ctx, locked)
	pc.c.pushers.remove(pc)
	pc.dropCloser()
	return err
}

// goLoop runs f on a goroutine that Close waits for.
func (pc *PushConsumer) goLoop(f func(ctx context.Context)) {
	pc.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		f(pc.ctx)
	}()
}

// subscriptions returns the subscriptions sorted by topic.
func (pc *PushConsumer) subscriptions() []*subscription {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := make([]*subscription, 0, len(pc.subs))
	for _, s := range pc.subs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].topic < out[j].topic })
	return out
}

// subscription returns topic's subscription, or nil.
func (pc *PushConsumer) subscription(topic string) *subscription {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.subs[topic]
}

// soleDLQSubscription returns the subscription of a dead-letter topic
// (%DLQ%<group>) when there is exactly one, else nil.
func (pc *PushConsumer) soleDLQSubscription() *subscription {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var found *subscription
	for t, s := range pc.subs {
		if strings.HasPrefix(t, dlqTopicPrefix) {
			if found != nil {
				return nil
			}
			found = s
		}
	}
	return found
}

// heartbeatData is the group's entry in the Client's heartbeats.
func (pc *PushConsumer) heartbeatData() consumerData {
	d := consumerData{ConsumeType: "CONSUME_PASSIVELY", MessageModel: pc.opts.Model.String(),
		ConsumeFromWhere: pc.opts.FromWhere.String(), SubscriptionDataSet: []subscriptionData{}}
	for _, s := range pc.subscriptions() {
		d.SubscriptionDataSet = append(d.SubscriptionDataSet, s.data)
	}
	return d
}

// kickRebalance asks the rebalance loop for a round now.
func (pc *PushConsumer) kickRebalance() {
	select {
	case pc.kick <- struct{}{}:
	default:
	}
}

// unregisterClient tells the broker at addr that this client left the
// group (UNREGISTER_CLIENT), so that it notifies the other members.
func (pc *PushConsumer) unregisterClient(ctx context.Context, addr string) {
	req := newRequest(remoting.ReqUnregisterClient,
		map[string]string{"clientID": pc.c.id, "consumerGroup": pc.opts.Group})
	resp, err := pc.c.invoke(ctx, addr, "UNREGISTER_CLIENT", req)
	if err == nil && resp.Code != remoting.RespSuccess {
		err = &BrokerError{Op: "UNREGISTER_CLIENT", Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	if err != nil {
		pc.log.Debug("client: unregister consumer failed", "broker", addr, "err", err)
	}
}

// leaveBrokers releases the locks of locked (UNLOCK_BATCH_MQ), then
// unregisters the consumer (UNREGISTER_CLIENT), each broker on its own
// goroutine: a broker that does not answer delays neither the others'
// unlocks, which the members taking the queues over wait for, nor their
// unregisters.
func (pc *PushConsumer) leaveBrokers(ctx context.Context, locked []MessageQueue) {
	locks := byBroker(locked)
	addrs := map[string][]string{}
	for name := range locks {
		addrs[name] = nil
	}
	for _, addr := range pc.c.routes.brokerAddrs(true) {
		name := pc.c.routes.brokerName(addr)
		addrs[name] = append(addrs[name], addr)
	}
	var wg sync.WaitGroup
	for name, as := range addrs {
		wg.Go(func() {
			if qs := locks[name]; len(qs) > 0 {
				pc.unlockQueues(ctx, qs)
			}
			for _, addr := range as {
				pc.unregisterClient(ctx, addr)
			}
		})
	}
	wg.Wait()
}

// consumerSet is a Client's started push consumers by group: the broker's
// NOTIFY_CONSUMER_IDS_CHANGED names a group, and its consumer rebalances;
// RESET_CONSUMER_CLIENT_OFFSET names one, and its consumer moves queues.
// The zero value is ready; the handler is installed with the first
// consumer.
type consumerSet struct {
	mu        sync.Mutex
	byGroup   map[string]*PushConsumer
	installed bool
}

func (s *consumerSet) add(c *Client, pc *PushConsumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byGroup == nil {
		s.byGroup = map[string]*PushConsumer{}
	}
	s.byGroup[pc.opts.Group] = pc
	if !s.installed {
		s.installed = true
		c.handle(remoting.ReqNotifyConsumerIdsChanged, func(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
			if pc := s.get(req.Ext("consumerGroup")); pc != nil {
				pc.log.Debug("client: consumer ids changed")
				pc.kickRebalance()
			}
			return nil
		})
		c.handle(remoting.ReqResetConsumerClientOffset, s.handleResetOffset)
		c.handle(remoting.ReqGetConsumerRunningInfo, s.handleRunningInfo)
		c.handle(remoting.ReqConsumeMessageDirectly, s.handleConsumeDirectly)
		c.handle(remoting.ReqGetConsumerStatusFromClient, s.handleConsumerStatus)
	}
}

func (s *consumerSet) remove(pc *PushConsumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byGroup[pc.opts.Group] == pc {
		delete(s.byGroup, pc.opts.Group)
	}
}

func (s *consumerSet) get(group string) *PushConsumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byGroup[group]
}

// sleepCtx waits d, reporting false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
