package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Client is one connection set to a RocketMQ cluster: name-server routes,
// one connection per server address, heartbeats, and the handlers of
// requests brokers send to clients. Producers (and consumers) are created
// from it and share all of that. A Client is safe for concurrent use;
// [Client.Close] ends every goroutine it started.
type Client struct {
	opts   Options
	id     string
	log    *slog.Logger
	mux    *remoting.Mux // broker → client requests, by code
	pool   *connPool
	routes *routeTable
	nsNext atomic.Uint32 // rotates the name server tried first
	uniq   *message.UniqIDs

	// localID names a broadcasting consumer's default offsets file:
	// ClientIP@InstanceName, with InstanceName "DEFAULT" when Options left
	// it unset (RocketMQ changes a DEFAULT instance name to the pid for
	// clustering consumers only), so that a restart finds the file again.
	localID string

	// startMu serializes PushConsumer.Start's registration (from the
	// group check to registerConsumerGroup), so that of two consumers of
	// one group starting at once the second is told ErrGroupRegistered,
	// not that the first has locked the offsets file.
	startMu sync.Mutex

	// Registered groups, carried by heartbeats.
	groupsMu  sync.Mutex
	producers map[string]checkEntry          // producer groups with a check listener
	consumers map[string]func() consumerData // consumer groups
	pushers   consumerSet                    // started push consumers, for NOTIFY_CONSUMER_IDS_CHANGED (consumer.go)
	hbKick    chan struct{}                  // a pending heartbeat round; capacity 1
	closersMu sync.Mutex                     // guards closers
	closers   []closer                       // run first by Close, last added first
	closerSeq uint64                         // ids of closers

	// left maps a consumer group to leaveSeq at its consumer's last
	// UNREGISTER_CLIENT, while a heartbeat round that may name it is under
	// way; hbRounds counts those rounds by their leaveSeq mark
	// (heartbeat.go). Guarded by groupsMu.
	left     map[string]uint64
	leaveSeq uint64
	hbRounds map[uint64]int

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background loops
	checks sync.WaitGroup // check-back listener calls (check.go)
	// checkWait is the longest CheckTimeout registered, in ns: how long
	// Close waits for a listener past its context's end.
	checkWait atomic.Int64
	closed    atomic.Bool
}

// Building on the core (consumers live in this package, client/consumer*.go):
//
//   - c.route(ctx, topic) gives a topic's route; its readQueues are the
//     queues to consume, writeQueues the ones to send to.
//     c.brokerAddr(ctx, brokerName, topic) is a broker's master address;
//     c.routes.brokerAddrs(true) lists every known broker member.
//   - c.invoke(ctx, addr, op, req) sends one request over the shared
//     connection to addr, bounded by RequestTimeout; non-SUCCESS codes are
//     returned, not errors. Build requests with newRequest (ROCKETMQ
//     header encoding; remoting.NewRequest's would be JSON).
//   - c.handle(code, h) serves requests brokers send to the client
//     (NOTIFY_CONSUMER_IDS_CHANGED, ...), on every connection.
//   - c.registerConsumerGroup(group, data) puts a consumerData in every
//     heartbeat (data is called per heartbeat); kickHeartbeat sends one
//     now; unregisterConsumerGroup removes it.
//   - c.goLoop(f) starts a goroutine Close waits for (f's context ends at
//     Close); c.onClose(f) runs f at the start of Close, while connections
//     still work (persisting offsets, unregistering).
//   - newMessageExt converts a decoded record (message.DecodeAll of a pull
//     response body) into a *MessageExt.

// New validates opts and starts a Client: its route refresh and
// heartbeat loops. It contacts no server until first used.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	localName := cmp.Or(opts.InstanceName, defaultInstanceName)
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:      opts,
		id:        opts.ClientIP + "@" + opts.InstanceName,
		localID:   opts.ClientIP + "@" + localName,
		log:       opts.Logger,
		mux:       remoting.NewMux(),
		routes:    newRouteTable(),
		producers: map[string]checkEntry{},
		consumers: map[string]func() consumerData{},
		left:      map[string]uint64{},
		hbRounds:  map[uint64]int{},
		hbKick:    make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
	}
	c.uniq = message.NewUniqIDs(net.ParseIP(opts.ClientIP))
	c.pool = newConnPool(c.mux, opts.Logger, c.connected)
	c.handle(remoting.ReqCheckTransactionState, c.handleCheckTransaction)
	c.goLoop(c.heartbeatLoop)
	c.goLoop(c.routeLoop)
	return c, nil
}

// ClientID returns the id heartbeats carry: ClientIP@InstanceName.
func (c *Client) ClientID() string { return c.id }

// Close stops the background loops, runs the producers' and consumers'
// shutdown work, closes every connection and waits until every goroutine
// the Client started (connection read loops and check-back handlers
// included) has returned, except a check listener that ignores its ended
// context (it is given CheckTimeout plus RequestTimeout, then logged and
// left). Calls in flight fail. A second Close returns ErrClosed.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	c.closersMu.Lock()
	closers := c.closers
	c.closers = nil
	c.closersMu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i].f()
	}
	c.cancel()
	c.wg.Wait()
	c.pool.close()
	// No handler adds a check-back call once the connections are done. A
	// listener that ignores its ended context is left behind, logged,
	// rather than holding Close forever.
	done := make(chan struct{})
	go func() { c.checks.Wait(); close(done) }()
	t := time.NewTimer(time.Duration(c.checkWait.Load()) + c.opts.RequestTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.log.Error("client: a check listener ignored its context; Close returns without it")
	}
	return nil
}

// closer is a function registered with onClose.
type closer struct {
	id uint64
	f  func()
}

// onClose registers f to run at the start of Close, before the loops stop
// and the connections close (a consumer persisting its offsets, say).
// Functions run last registered first. It returns a function that
// unregisters f (for an owner closed before the Client), and reports
// false, registering nothing, if the Client is already closed.
func (c *Client) onClose(f func()) (remove func(), ok bool) {
	c.closersMu.Lock()
	defer c.closersMu.Unlock()
	if c.closed.Load() {
		return func() {}, false
	}
	c.closerSeq++
	id := c.closerSeq
	c.closers = append(c.closers, closer{id, f})
	return func() {
		c.closersMu.Lock()
		defer c.closersMu.Unlock()
		c.closers = slices.DeleteFunc(c.closers, func(x closer) bool { return x.id == id })
	}, true
}

// handle registers h for requests with code that brokers send to this
// client (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...),
// replacing any earlier handler. h runs on its own goroutine per request;
// its context ends when the connection closes. Return nil for a oneway
// request.
func (c *Client) handle(code int16, h remoting.HandlerFunc) { c.mux.Handle(code, h) }

// goLoop runs f on a goroutine that Close waits for; f must return once
// its context is done.
func (c *Client) goLoop(f func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}

// routeLoop refreshes the cached routes every RouteRefreshInterval.
func (c *Client) routeLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.RouteRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.refreshRoutes(ctx)
		}
	}
}

// connected is called with each new connection: a broker hears this
// client's groups on it at once, so that check-backs can use it.
func (c *Client) connected(addr string, _ *remoting.Conn) {
	if c.routes.brokerName(addr) != "" {
		c.kickHeartbeat()
	}
}

// newRequest is remoting.NewRequest in the ROCKETMQ header encoding,
// which every request of the client uses (see the package doc).
func newRequest(code int16, ext map[string]string) *remoting.Command {
	req := remoting.NewRequest(code, ext)
	req.SerializeType = remoting.SerializeRocketMQ
	return req
}

// invoke sends req to addr over the shared connection and waits for the
// response, for at most RequestTimeout within ctx. It returns the response
// whatever its code; a failure without a response is a *transportError
// (wrapping ctx.Err() on a timeout), or ErrClosed once Close has closed
// the connections (until then, the closers registered with onClose can
// still send).
func (c *Client) invoke(ctx context.Context, addr, op string, req *remoting.Command) (*remoting.Command, error) {
	return c.invokeFor(ctx, addr, op, req, c.opts.RequestTimeout)
}

// invokeOK is invoke for a request whose only good answer is SUCCESS:
// another code is a *BrokerError.
func (c *Client) invokeOK(ctx context.Context, addr, op string, req *remoting.Command) error {
	resp, err := c.invoke(ctx, addr, op, req)
	if err != nil {
		return err
	}
	if resp.Code != remoting.RespSuccess {
		return &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
	}
	return nil
}

// invokeFor is invoke bounded by timeout instead of RequestTimeout (a
// long-polling pull outlasts that).
func (c *Client) invokeFor(ctx context.Context, addr, op string, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.pool.get(rctx, addr)
	if err == nil {
		var resp *remoting.Command
		if resp, err = conn.Invoke(rctx, req); err == nil {
			return resp, nil
		}
	}
	if errors.Is(err, ErrClosed) {
		return nil, err
	}
	// refused before anything was written; not a connection that closed
	// on an oversized frame it received (a *DecodeError), which fails
	// every call pending on it
	var de *remoting.DecodeError
	if errors.Is(err, remoting.ErrFrameTooLarge) && !errors.As(err, &de) {
		return nil, fmt.Errorf("%w: %s to %s: %w", ErrMessageTooLarge, op, addr, err)
	}
	return nil, &transportError{op: op, addr: addr, err: err}
}
