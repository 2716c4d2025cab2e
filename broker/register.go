package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/namesrv"
)

// Name-server registration: the broker sends REGISTER_BROKER with its whole
// topic table to every name server once in Open, then every
// RegisterInterval, and again promptly when its topics change (a topic
// created by UPDATE_AND_CREATE_TOPIC is answered once that registration
// is done); Close sends UNREGISTER_BROKER. Each name server gets one long-lived connection (the
// name server drops a broker whose registering connection closes), redialled
// after an error.

const (
	// registerTimeout bounds one registration round trip
	// (registerBrokerTimeoutMills of RocketMQ 4.x).
	registerTimeout = 6 * time.Second
	// unregisterTimeout bounds the UNREGISTER_BROKER sent while closing.
	unregisterTimeout = 3 * time.Second
	// autoCreateTopicKey is the topic whose route a client falls back to for
	// a topic the name server does not know (TBW102, the Go client's
	// CreateTopicKey). A broker that auto-creates topics registers it, as
	// RocketMQ's does, so clients can send to new topics even when the name
	// server itself does not auto-route them.
	autoCreateTopicKey = "TBW102"
)

// registrar is one broker's registration state. It lives outside Broker so
// that registration stays in this file; Broker.reg points to it.
type registrar struct {
	b     *Broker
	kick  chan struct{} // a pending re-registration; capacity 1
	conns sync.Map      // name-server address → *remoting.Conn

	// Used by one registration at a time (Open's, then the loop's).
	lastTable []byte
	version   namesrv.DataVersion
	lastNames map[string]bool
	reachable map[string]bool // name servers whose last registration succeeded

	// seen holds the topics registered or already announced, so that a
	// dispatch to any other topic (one created on its first send) triggers
	// one prompt re-registration.
	seenMu sync.RWMutex
	seen   map[string]bool

	// next is closed when the next registration round to start has ended
	// (nil until someone waits for one; see registered).
	nextMu sync.Mutex
	next   chan struct{}
}

// startRegistration registers with the name servers before Open returns,
// then keeps registering in the background until the broker stops.
func (b *Broker) startRegistration() {
	if len(b.opts.NamesrvAddrs) == 0 {
		return
	}
	r := &registrar{b: b, kick: make(chan struct{}, 1), lastNames: map[string]bool{},
		reachable: map[string]bool{}, seen: map[string]bool{}}
	b.reg.Store(r)
	ctx, cancel := context.WithCancel(context.Background())
	r.registerAll(ctx)
	b.onDispatchHook(r.noteDispatch)
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		<-b.stop
		cancel() // abandon a registration in flight
	}()
	go func() {
		defer b.wg.Done()
		r.loop(ctx)
	}()
}

// topicsChanged asks for a prompt re-registration after a topic was created
// or deleted. It does not block.
func (b *Broker) topicsChanged() {
	if r := b.reg.Load(); r != nil {
		r.trigger()
	}
}

// registerWait bounds how long an admin request that created a topic
// waits for its registration before it answers (registered): about
// a millisecond with a name server that answers, and short enough that a
// client's request timeout (3 s by default) does not run out behind a
// name server that does not.
const registerWait = 2 * time.Second

// registered asks for a prompt re-registration and waits until one that
// began after the call has ended, at most registerWait (or until ctx ends
// or the broker stops), as RocketMQ's updateAndCreateTopic registers
// before it answers: a client that asks the name servers for the topic's
// route right after the answer finds it.
func (b *Broker) registered(ctx context.Context) {
	r := b.reg.Load()
	if r == nil {
		return
	}
	r.nextMu.Lock()
	if r.next == nil {
		r.next = make(chan struct{})
	}
	done := r.next
	r.nextMu.Unlock()
	r.trigger()
	t := time.NewTimer(registerWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.opts.Logger.Warn("broker: answering a topic change before the name servers have it", "waited", registerWait)
	case <-ctx.Done():
	case <-b.stop:
	}
}

func (r *registrar) trigger() {
	select {
	case r.kick <- struct{}{}:
	default: // one is already pending
	}
}

// noteDispatch is the dispatch hook: a message in a topic the name servers
// were not told about means a topic was created outside the admin requests.
func (r *registrar) noteDispatch(topic string, _ int32, _ int64) {
	r.seenMu.RLock()
	known := r.seen[topic]
	r.seenMu.RUnlock()
	if known {
		return
	}
	r.seenMu.Lock()
	r.seen[topic] = true
	r.seenMu.Unlock()
	r.trigger()
}

// forget drops a deleted topic from seen: a topic created and deleted
// between two registrations is in no registered table, so noteRegistered
// never drops it, and seen would keep the name of every such topic for as
// long as the broker runs. Its next dispatch, if it comes back, announces
// it again.
func (r *registrar) forget(topic string) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	delete(r.seen, topic)
}

// topicDeleted forgets that topic was announced (see registrar.forget).
func (b *Broker) topicDeleted(topic string) {
	if r := b.reg.Load(); r != nil {
		r.forget(topic)
	}
}

// loop re-registers every RegisterInterval and on demand; when the broker
// stops it unregisters and closes its connections.
func (r *registrar) loop(ctx context.Context) {
	t := time.NewTicker(r.b.opts.RegisterInterval)
	defer t.Stop()
	for {
		select {
		case <-r.b.stop:
			r.unregisterAll()
			return
		case <-t.C:
		case <-r.kick:
		}
		r.nextMu.Lock()
		done := r.next // its waiters' topic changes came before this round
		r.next = nil
		r.nextMu.Unlock()
		r.registerAll(ctx)
		if done != nil {
			close(done)
		}
	}
}

// topicTable returns the registration's topic table: every topic of the
// broker, plus TBW102 when it auto-creates topics.
func (r *registrar) topicTable() map[string]namesrv.TopicConfig {
	b := r.b
	table := map[string]namesrv.TopicConfig{}
	for _, tc := range b.topics.all() {
		table[tc.TopicName] = namesrv.TopicConfig{TopicName: tc.TopicName, ReadQueueNums: tc.ReadQueueNums,
			WriteQueueNums: tc.WriteQueueNums, Perm: tc.Perm, TopicSysFlag: tc.TopicSysFlag, Order: tc.Order}
	}
	if _, ok := table[autoCreateTopicKey]; !ok && !b.opts.DisableAutoCreateTopic {
		table[autoCreateTopicKey] = namesrv.TopicConfig{TopicName: autoCreateTopicKey, ReadQueueNums: b.opts.DefaultQueueNums,
			WriteQueueNums: b.opts.DefaultQueueNums, Perm: PermInherit | PermRW}
	}
	return table
}

// registerBody builds the REGISTER_BROKER body, bumping the data version
// when the table changed since the last registration.
func (r *registrar) registerBody() ([]byte, error) {
	table := r.topicTable()
	enc, err := json.Marshal(table) // map keys are sorted: equal tables encode equally
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, r.lastTable) {
		r.lastTable = enc
		r.version = namesrv.DataVersion{Timestamp: time.Now().UnixMilli(), Counter: r.version.Counter + 1}
		r.noteRegistered(table)
	}
	return json.Marshal(namesrv.RegisterBrokerBody{
		TopicConfigSerializeWrapper: namesrv.TopicConfigSerializeWrapper{TopicConfigTable: table, DataVersion: r.version},
		FilterServerList:            []string{},
	})
}

// noteRegistered makes seen hold the registered topics (and any topic
// announced before that the table still lacks, so it triggers only once).
func (r *registrar) noteRegistered(table map[string]namesrv.TopicConfig) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	for name := range r.lastNames {
		if _, ok := table[name]; !ok {
			delete(r.seen, name) // deleted: announce it again if it comes back
		}
	}
	r.lastNames = make(map[string]bool, len(table))
	for name := range table {
		r.lastNames[name] = true
		r.seen[name] = true
	}
}

// registerAll registers with every name server at once and waits for them.
func (r *registrar) registerAll(ctx context.Context) {
	b := r.b
	body, err := r.registerBody()
	if err != nil {
		b.opts.Logger.Error("broker: build registration", "err", err)
		return
	}
	ext := map[string]string{
		"brokerAddr":   b.addr,
		"brokerName":   b.opts.BrokerName,
		"clusterName":  b.opts.ClusterName,
		"brokerId":     strconv.FormatInt(namesrv.MasterID, 10),
		"haServerAddr": "",
		"compressed":   "false",
		// The whole table: the name server stops routing a deleted topic.
		remoting.ExtFullTopicTable: "true",
		// RocketMQ's UtilAll.crc32 keeps the low 31 bits.
		"bodyCrc32": strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)&0x7fffffff), 10),
	}
	errs := make([]error, len(b.opts.NamesrvAddrs))
	var wg sync.WaitGroup
	for i, addr := range b.opts.NamesrvAddrs {
		wg.Go(func() {
			req := remoting.NewRequest(remoting.ReqRegisterBroker, maps.Clone(ext))
			req.Body = body
			ctx, cancel := context.WithTimeout(ctx, registerTimeout)
			defer cancel()
			errs[i] = r.invoke(ctx, addr, req)
		})
	}
	wg.Wait()
	for i, addr := range b.opts.NamesrvAddrs {
		switch {
		case errs[i] != nil && ctx.Err() == nil:
			b.opts.Logger.Warn("broker: register with name server failed", "namesrv", addr, "err", errs[i])
		case errs[i] == nil && !r.reachable[addr]:
			b.opts.Logger.Info("broker: registered with name server", "namesrv", addr, "broker", b.opts.BrokerName,
				"addr", b.addr, "topics", len(r.lastNames))
		}
		r.reachable[addr] = errs[i] == nil
	}
}

// unregisterAll tells every name server the broker is leaving, then closes
// the connections.
func (r *registrar) unregisterAll() {
	b := r.b
	ext := map[string]string{
		"brokerAddr":  b.addr,
		"brokerName":  b.opts.BrokerName,
		"clusterName": b.opts.ClusterName,
		"brokerId":    strconv.FormatInt(namesrv.MasterID, 10),
	}
	var wg sync.WaitGroup
	for _, addr := range b.opts.NamesrvAddrs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), unregisterTimeout)
			defer cancel()
			if err := r.invoke(ctx, addr, remoting.NewRequest(remoting.ReqUnregisterBroker, maps.Clone(ext))); err != nil {
				b.opts.Logger.Warn("broker: unregister from name server failed", "namesrv", addr, "err", err)
			}
		})
	}
	wg.Wait()
	r.conns.Range(func(_, c any) bool {
		c.(*remoting.Conn).Close()
		return true
	})
}

// invoke sends req to the name server at addr over its connection, dialling
// one if needed, and checks for SUCCESS. A transport error closes the
// connection so that the next call redials.
func (r *registrar) invoke(ctx context.Context, addr string, req *remoting.Command) error {
	var conn *remoting.Conn
	if c, ok := r.conns.Load(addr); ok && c.(*remoting.Conn).Err() == nil {
		conn = c.(*remoting.Conn)
	} else {
		var err error
		conn, err = remoting.Dial(ctx, addr, remoting.DialOptions{Logger: r.b.opts.Logger})
		if err != nil {
			return err
		}
		r.conns.Store(addr, conn)
	}
	resp, err := conn.Invoke(ctx, req)
	if err != nil {
		// A slow name server is not a broken connection: closing it would
		// make the name server drop this broker from every route. Close only
		// when the transport failed.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			conn.Close()
		}
		return err
	}
	if resp.Code != remoting.RespSuccess {
		return &remoteError{code: resp.Code, remark: resp.Remark}
	}
	return nil
}

// remoteError is an error response from a name server.
type remoteError struct {
	code   int16
	remark string
}

func (e *remoteError) Error() string {
	return "name server answered code " + strconv.Itoa(int(e.code)) + ": " + e.remark
}
