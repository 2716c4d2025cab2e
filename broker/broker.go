package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
)

// Broker serves RocketMQ's remoting protocol over the store and the delay
// scheduler. Open starts it; Close stops it.
type Broker struct {
	opts      Options
	store     *store.Store
	delay     *delay.Scheduler
	txn       *txn.Service
	life      *lifecycle.Recorder // the message lifecycle record (trace.go)
	filters   filterCache         // compiled SQL92 subscriptions (sqlfilter.go)
	topics    *topicTable
	subGroups *subGroupTable // consumer groups' settings (subgroups.go)
	srv       *remoting.Server
	addr      string                    // advertised address
	groups    *groupState               // consumer groups, offsets, queue locks
	pulls     *pullHolder               // long-polling pulls
	reg       atomic.Pointer[registrar] // name-server registration, if any

	metrics *brokerMetrics  // nil when metrics are off (metrics.go)
	counts  runtimeCounters // GET_BROKER_RUNTIME_INFO's (runtime.go)

	delayLevels []time.Duration // the scheduler's levels, for due times in the lifecycle record

	// inMemoryBytes is AccessMessageInMemoryMaxRatio of the machine's
	// memory: how far back from the end of the commit log a message
	// counts as in memory (offsets.go, startsAtZero).
	inMemoryBytes int64

	// dispatchHooks are called, in order, after records become visible in
	// a consume queue (long polling registers here). They must not block.
	hooksMu       sync.RWMutex
	dispatchHooks []func(topic string, qid int32, maxOffset int64)

	// topicAdmin serializes the changes to the topic table: an admin
	// request's (create or update, delete) from start to end, and a
	// creation on first use (lockTopicAdmin). A deletion then never
	// removes a topic created while it ran.
	topicAdmin sync.Mutex
	// topicAdminWaits, if set (tests only), runs when lockTopicAdmin
	// finds topicAdmin held, before it waits for it.
	topicAdminWaits func()
	// midDeleteTopic, if set (tests only), runs in handleDeleteTopic
	// between the store's cut and the removal of the topic's config.
	midDeleteTopic func(topic string)

	// checkStalled holds, per producer connection, until when check-backs
	// skip it after a check write did not finish in checkWriteWait (txn.go).
	checkStalled sync.Map // *remoting.Conn -> time.Time

	// consumerCalls has a slot per call forwarded to a consumer in flight
	// (callconsumer.go, maxConsumerCalls).
	consumerCalls chan struct{}

	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Open opens the store and the scheduler, listens on ListenAddr and
// starts serving.
func Open(opts Options) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	b := &Broker{opts: opts, stop: make(chan struct{}), consumerCalls: make(chan struct{}, maxConsumerCalls)}
	b.counts.started = time.Now()
	b.inMemoryBytes = inMemoryBytes(opts)
	b.groups = newGroupState(opts.Store.Dir)
	b.pulls = newPullHolder(b)
	var ready atomic.Bool
	opts.Store.OnDispatch = func(topic string, qid int32, maxOffset int64) {
		if ready.Load() {
			b.onDispatch(topic, qid, maxOffset)
		}
	}
	// Listen first: message ids carry the address clients reach the broker
	// at, which with port 0 is known only now. Requests that arrive before
	// the store is open are told the broker is busy, except a send-back:
	// its connection is closed (see handleSendBack).
	mux := b.routes()
	var err error
	b.srv, err = remoting.Listen(remoting.ServerOptions{Addr: opts.ListenAddr, Logger: opts.Logger, MaxInFlightBytes: opts.MaxInFlightBytes,
		Handler: remoting.HandlerFunc(func(ctx context.Context, c *remoting.Conn, req *remoting.Command) *remoting.Command {
			if !ready.Load() {
				if req.Code == remoting.ReqConsumerSendMsgBack {
					// The Go client v2.1.2 takes any answer to a send-back as
					// stored (see handleSendBack): close, so that it retries.
					c.Close()
					return nil
				}
				return remoting.NewResponse(req, remoting.RespSystemBusy, "broker is starting")
			}
			return mux.Serve(ctx, c, req)
		}),
		Inline: inlineRequest})
	if err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", opts.ListenAddr, err)
	}
	var loopback bool
	b.addr, loopback = advertised(opts.AdvertiseAddr, b.srv.Addr())
	if loopback {
		opts.Logger.Warn("broker: listening on every interface but the machine has no non-loopback IPv4 address; "+
			"advertising loopback, which only local clients can dial (set broker.advertiseAddr)", "addr", b.addr)
	}
	if !opts.Store.StoreHost.IsValid() {
		opts.Store.StoreHost = storeHost(b.addr, opts.Logger)
	}
	fail := func(err error, closers ...func() error) (*Broker, error) {
		for _, c := range closers {
			c()
		}
		b.srv.Close()
		return nil, err
	}
	if b.delayLevels = opts.Delay.Levels; b.delayLevels == nil {
		b.delayLevels, _ = delay.ParseLevels(delay.DefaultLevels)
	}
	b.metrics = newBrokerMetrics(opts.MeterProvider)
	if hook, own := b.metrics.flushHook(), opts.Store.OnFlush; hook != nil && own != nil {
		opts.Store.OnFlush = func(d time.Duration) { hook(d); own(d) }
	} else if hook != nil {
		opts.Store.OnFlush = hook
	}
	opts.Store.DeferRetention = true // started once the holds are there (below)
	// The store first: it locks the data directory (store.ErrLocked when
	// another broker has it), before anything else in it is opened.
	if b.store, err = store.Open(opts.Store); err != nil {
		return fail(err)
	}
	for _, c := range b.groups.offsets.clampToQueues(b.store.Queues()) {
		opts.Logger.Warn("broker: a committed offset was past its queue's end (messages lost to a power cut "+
			"under ASYNC_FLUSH?); lowered to the end, so the next messages stored there are consumed",
			"group", c.Group, "topic", c.Topic, "queueId", c.QueueID, "offset", c.From, "end", c.To)
	}
	if !opts.DisableLifecycle {
		if b.life, err = lifecycle.Open(lifecycle.Options{Dir: filepath.Join(opts.Store.Dir, "lifecycle"),
			Retention: opts.LifecycleRetention, Logger: opts.Logger, Paused: b.diskFull}); err != nil {
			return fail(err, b.store.Close)
		}
	}
	closeLife := func() error { return b.life.Close() }
	if b.life == nil {
		closeLife = func() error { return nil }
	}
	opts.Delay.OnDelivered = b.onDelivered
	if b.delay, err = delay.New(b.store, opts.Delay); err != nil {
		return fail(err, b.store.Close, closeLife)
	}
	opts.Txn.Checker = txn.CheckerFunc(b.checkTransaction)
	opts.Txn.OnParked = b.onParked
	opts.Txn.OnLateEnd = b.onLateEnd
	if b.txn, err = txn.Open(b.store, opts.Txn); err != nil {
		return fail(err, b.delay.Close, b.store.Close, closeLife)
	}
	// Retention keeps what the scheduler will still deliver and every open
	// transaction's half message (moved forward when its segment is due),
	// and starts only now that both can say what that is. The holds stay
	// until the store closes: after its owner closed, a hold fails, which
	// keeps everything.
	b.store.Hold("delay", b.delay)
	b.store.Hold("transactions", b.txn)
	b.store.StartRetention()
	if b.topics, err = openTopicTable(opts.Store.Dir, opts.DefaultQueueNums, !opts.DisableAutoCreateTopic, systemTopics(b.delay.Levels(), opts.ClusterName), opts.Logger); err != nil {
		return fail(err, b.txn.Close, b.delay.Close, b.store.Close, closeLife)
	}
	if b.subGroups, err = openSubGroupTable(opts.Store.Dir, !opts.DisableAutoCreateSubscriptionGroup, opts.MaxReconsumeTimes); err != nil {
		return fail(err, b.txn.Close, b.delay.Close, b.store.Close, closeLife)
	}
	switch {
	case b.subGroups.fresh && b.offsetTable().broken != nil:
		// Seeding happens once, and the groups only the offsets file
		// names would miss it for good: it waits for a start that can
		// read the file, and until then the table is not written (a
		// written one would not be seeded).
		b.subGroups.unseeded = fmt.Errorf("broker: subscription groups are not written before they are seeded, "+
			"which waits for a readable %s: %w", b.offsetTable().path, errOffsetsUnavailable)
		opts.Logger.Warn("broker: subscription groups not seeded while the consumer offsets file cannot be read",
			"path", b.offsetTable().path)
	case b.subGroups.fresh:
		if err := b.subGroups.seed(b.knownGroups()); err != nil {
			return fail(err, b.txn.Close, b.delay.Close, b.store.Close, closeLife)
		}
	}
	if err := b.metrics.register(b); err != nil {
		opts.Logger.Warn("broker metrics not registered", "err", err)
	}
	ready.Store(true)
	b.delay.Start()
	b.txn.Start()
	b.delay.Notify(delay.ScheduleTopic) // deliver what fell due while stopped
	b.startBackground()
	return b, nil
}

// routes is the table of request handlers; each file registers its codes.
func (b *Broker) routes() *remoting.Mux {
	mux := remoting.NewMux()
	b.registerTopics(mux)
	b.registerSend(mux)
	b.registerReply(mux)
	b.registerPull(mux)
	b.registerCheckClientConfig(mux)
	b.registerCallConsumer(mux)
	b.registerLookup(mux)
	b.registerGroups(mux)
	b.registerOffsets(mux)
	b.registerLocks(mux)
	b.registerSendBack(mux)
	b.registerAdmin(mux)
	b.registerSubGroups(mux)
	b.registerRuntime(mux)
	b.registerConfig(mux)
	b.registerTxn(mux)
	b.registerTrace(mux)
	return mux
}

// startBackground starts the broker's periodic work (name-server
// registration and the like); each piece adds itself here.
func (b *Broker) startBackground() {
	b.startRegistration()
	b.startGroupExpiry()
	b.startOffsetFlush()
	b.startRateSampling()
}

// every runs fn every d in a goroutine until the broker stops.
func (b *Broker) every(d time.Duration, fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
				fn()
			}
		}
	}()
}

// onDispatch fans the store's dispatch event out to the scheduler and hooks.
func (b *Broker) onDispatch(topic string, qid int32, maxOffset int64) {
	b.delay.Notify(topic)
	b.hooksMu.RLock()
	defer b.hooksMu.RUnlock()
	for _, h := range b.dispatchHooks {
		h(topic, qid, maxOffset)
	}
}

// onDispatchHook adds a hook called after records become visible.
func (b *Broker) onDispatchHook(h func(topic string, qid int32, maxOffset int64)) {
	b.hooksMu.Lock()
	b.dispatchHooks = append(b.dispatchHooks, h)
	b.hooksMu.Unlock()
}

// Addr is the address the broker advertises (and, by default, listens on).
func (b *Broker) Addr() string { return b.addr }

// Store returns the broker's message store.
func (b *Broker) Store() *store.Store { return b.store }

// Transactions returns the broker's transaction service.
func (b *Broker) Transactions() *txn.Service { return b.txn }

// Scheduler returns the broker's delay scheduler.
func (b *Broker) Scheduler() *delay.Scheduler { return b.delay }

// closeGrace bounds how long Close waits for held pulls to be answered
// before it closes the connections.
const closeGrace = 2 * time.Second

// Close stops serving, then closes the scheduler and the store (each
// writes its checkpoint).
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(b.stop)
	b.metrics.close()
	b.pulls.close(closeGrace) // answer held pulls while their connections are open
	err := b.srv.Close()
	b.pulls.wait()
	b.wg.Wait()
	err = errors.Join(err, b.closeGroups())
	err = errors.Join(err, b.txn.Close(), b.delay.Close(), b.topics.close(), b.store.Close())
	if b.life != nil {
		err = errors.Join(err, b.life.Close())
	}
	return err
}
