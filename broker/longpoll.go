package broker

import (
	"strconv"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Long polling (RocketMQ's PullRequestHoldService). A pull that finds
// nothing new and carries the suspend flag is held instead of answered: the
// handler returns nil and the holder answers it later with Conn.Reply, by
// running the pull again, as soon as the store dispatches a message to that
// topic/queue past the pull's offset that passes its tag filter, or with
// what there is (usually PULL_NOT_FOUND) when min(suspendTimeoutMillis,
// Options.LongPollTimeout) has passed. A held pull of a connection that
// closes is dropped; on Close every held pull is answered PULL_NOT_FOUND.

func newPullHolder(b *Broker) *pullHolder {
	return &pullHolder{
		b:       b,
		byQueue: make(map[heldQueue]map[*heldPull]struct{}),
		byConn:  make(map[*remoting.Conn]map[*heldPull]struct{}),
		bytes:   make(map[*remoting.Conn]int),
		turns:   make(map[*remoting.Conn]chan struct{}),

		maxBytes: maxHeldBytesPerConn,
	}
}

type heldQueue struct {
	topic string
	qid   int32
}

// heldPull is one suspended pull request.
type heldPull struct {
	conn  *remoting.Conn
	req   *remoting.Command
	pr    pullRequest
	timer *time.Timer
	size  int // what it counts against its connection's maxHeldBytesPerConn
	// from is the queue offset past which a dispatch wakes it: pr.offset,
	// or the end of what a wake found nothing in for its filter.
	from     int64
	deadline time.Time
	turn     chan struct{} // its connection's answer turn (pullHolder.turns)
}

// pullHolder keeps the held pulls by queue and by connection.
type pullHolder struct {
	b *Broker

	mu      sync.Mutex
	closed  bool
	byQueue map[heldQueue]map[*heldPull]struct{}
	byConn  map[*remoting.Conn]map[*heldPull]struct{}
	bytes   map[*remoting.Conn]int // heldSize of each connection's held pulls
	// turns has one slot per connection, held while one of its pulls is
	// answered: woken pulls of a connection are answered one at a time,
	// so those of a peer that stopped reading wait as small goroutines
	// rather than each keep its answer (up to maxPullBytes or one whole
	// message) until the stuck write fails.
	turns map[*remoting.Conn]chan struct{}
	n     int
	// maxBytes is maxHeldBytesPerConn (a test lowers it).
	maxBytes int

	answering sync.WaitGroup // answers in flight; added to only under mu while open
}

// maxHeldBytesPerConn bounds what one connection's held pulls keep: a
// held pull frees its in-flight slot but keeps its request header (its body,
// which PULL_MESSAGE does not use, is dropped), so without a bound one
// connection could make the broker keep any number of frames. It bounds
// bytes, not pulls: a consumer holds one pull per queue it consumes, and
// one process shares one connection among all its consumer groups, so a
// count low enough to bound large frames would turn a consumer of many
// queues into one that pulls in a loop (a pull refused a hold is answered
// at once, and the clients pull again at once). At heldPullOverhead plus
// an official client's ~300-byte header, 16 MiB holds some 20,000 pulls.
const maxHeldBytesPerConn = 16 << 20

// heldPullOverhead is what a held pull costs beyond its header's strings:
// the heldPull, its timer and its map entries.
const heldPullOverhead = 512

// heldSize is what a held pull counts against maxHeldBytesPerConn.
func heldSize(req *remoting.Command) int {
	n := heldPullOverhead + len(req.Remark)
	for k, v := range req.ExtFields {
		n += len(k) + len(v)
	}
	return n
}

// hold suspends a pull for at most wait. It reports false if the holder is
// closed, or the connection's held pulls would pass maxHeldBytesPerConn,
// in which case the caller answers at once.
func (h *pullHolder) hold(conn *remoting.Conn, req *remoting.Command, pr pullRequest, wait time.Duration) bool {
	req.Body = nil
	return h.add(&heldPull{conn: conn, req: req, pr: pr, size: heldSize(req), from: pr.offset, deadline: time.Now().Add(wait)}, wait)
}

// add registers p for at most wait, as hold.
func (h *pullHolder) add(p *heldPull, wait time.Duration) bool {
	conn, pr := p.conn, p.pr
	key := heldQueue{pr.topic, pr.queueID}
	h.mu.Lock()
	if h.closed || h.bytes[conn]+p.size > h.maxBytes {
		h.mu.Unlock()
		return false
	}
	if h.byQueue[key] == nil {
		h.byQueue[key] = make(map[*heldPull]struct{})
	}
	h.byQueue[key][p] = struct{}{}
	firstOfConn := h.byConn[conn] == nil
	if firstOfConn {
		h.byConn[conn] = make(map[*heldPull]struct{})
		h.turns[conn] = make(chan struct{}, 1)
	}
	p.turn = h.turns[conn]
	h.byConn[conn][p] = struct{}{}
	h.bytes[conn] += p.size
	h.n++
	p.timer = time.AfterFunc(wait, func() { h.expire(p) })
	h.mu.Unlock()

	if firstOfConn {
		conn.OnClose(h.dropConn)
	}
	// A message dispatched between the pull's read and its registration
	// would otherwise wait for the timeout.
	if _, maxOff := h.b.store.QueueBounds(pr.topic, pr.queueID); maxOff > p.from {
		h.notify(pr.topic, pr.queueID, maxOff)
	}
	// Likewise a reset of the group's offsets on the queue (reset.go)
	// assigned after the pull looked for one: its wakeGroup came first.
	if h.b.offsetTable().resetPending(pr.group, pr.topic, pr.queueID) {
		h.wake(pr.topic, func(q *heldPull) bool { return q == p })
	}
	return true
}

// notify is the store's dispatch hook: it answers the pulls of topic/queue
// that wait below maxOffset (answerArrival). It never blocks on the answers.
func (h *pullHolder) notify(topic string, qid int32, maxOffset int64) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	var ready []*heldPull
	for p := range h.byQueue[heldQueue{topic, qid}] {
		if maxOffset > p.from {
			h.removeLocked(p)
			ready = append(ready, p)
		}
	}
	h.answering.Add(len(ready))
	h.mu.Unlock()
	for _, p := range ready {
		go h.answerArrival(p)
	}
}

// answerArrival answers a pull woken by messages of its queue, unless
// none of them, to the queue's end, passes its tag filter: it is then held
// again for the rest of its wait, until a message past them, as
// PullRequestHoldService keeps a pull whose filter the arriving message's
// tag code does not match.
func (h *pullHolder) answerArrival(p *heldPull) {
	defer h.answering.Done()
	if !h.takeTurn(p) {
		return
	}
	defer func() { <-p.turn }()
	pr, resp := h.rerun(p)
	if next := resp.Ext("nextBeginOffset"); resp.Code == remoting.RespPullRetryImmediately && next == resp.Ext("maxOffset") {
		from, _ := strconv.ParseInt(next, 10, 64)
		q := &heldPull{conn: p.conn, req: p.req, pr: pr, size: p.size, from: from, deadline: p.deadline}
		if wait := time.Until(p.deadline); wait > 0 && h.add(q, wait) {
			return
		}
	}
	h.reply(p, resp)
}

// wakeTopic answers at once every pull held on a queue of topic, which
// was deleted: each is run again, as at its timeout, rather than waiting
// for a message past an offset of the queue that is gone.
func (h *pullHolder) wakeTopic(topic string) { h.wake(topic, func(*heldPull) bool { return true }) }

// wakeGroup answers at once the pulls of group held on a queue of topic,
// whose offsets were reset (reset.go): each is run again and told.
func (h *pullHolder) wakeGroup(topic, group string) {
	h.wake(topic, func(p *heldPull) bool { return p.pr.group == group })
}

// wake answers at once the pulls held on a queue of topic that pick accepts.
func (h *pullHolder) wake(topic string, pick func(*heldPull) bool) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	var ready []*heldPull
	for key, set := range h.byQueue {
		if key.topic == topic {
			for p := range set {
				if pick(p) {
					ready = append(ready, p)
				}
			}
		}
	}
	for _, p := range ready {
		h.removeLocked(p)
	}
	h.answering.Add(len(ready))
	h.mu.Unlock()
	for _, p := range ready {
		go h.answer(p)
	}
}

// expire answers a pull whose wait is over, unless it was answered already.
func (h *pullHolder) expire(p *heldPull) {
	h.mu.Lock()
	if h.closed || !h.removeLocked(p) {
		h.mu.Unlock()
		return
	}
	h.answering.Add(1)
	h.mu.Unlock()
	h.answer(p)
}

// answer runs the pull again, without suspending it, and replies.
func (h *pullHolder) answer(p *heldPull) {
	defer h.answering.Done()
	if !h.takeTurn(p) {
		return
	}
	defer func() { <-p.turn }()
	_, resp := h.rerun(p)
	h.reply(p, resp)
}

// takeTurn waits for p's connection's answer turn. It reports false,
// holding nothing, if the connection closed meanwhile: the answer could
// not be sent.
func (h *pullHolder) takeTurn(p *heldPull) bool {
	p.turn <- struct{}{}
	if p.conn.Err() != nil {
		<-p.turn
		return false
	}
	return true
}

// rerun runs a held pull again. It reads the request's header again: the
// group's subscription, and with it the tag filter, may have changed while
// the pull was held (a heartbeat of a consumer that subscribed anew), as
// PullMessageProcessor re-reads it.
func (h *pullHolder) rerun(p *heldPull) (pullRequest, *remoting.Command) {
	pr, resp := h.b.parsePull(p.req)
	if resp == nil {
		resp, _ = h.b.resetPull(p.req, pr)
	}
	if resp == nil {
		resp = h.b.pullOnce(p.req, pr)
	}
	return pr, resp
}

// reply sends a held pull's answer.
func (h *pullHolder) reply(p *heldPull, resp *remoting.Command) {
	if err := p.conn.Reply(p.req, resp); err != nil {
		h.b.opts.Logger.Debug("broker: held pull not answered", "remote", p.conn.RemoteAddr(), "err", err)
	}
}

// dropConn forgets the held pulls of a closed connection.
func (h *pullHolder) dropConn(conn *remoting.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.byConn[conn] {
		h.removeLocked(p)
	}
	delete(h.byConn, conn)
	delete(h.bytes, conn)
	delete(h.turns, conn)
}

// removeLocked unregisters p and stops its timer; it reports whether p was
// still held.
func (h *pullHolder) removeLocked(p *heldPull) bool {
	key := heldQueue{p.pr.topic, p.pr.queueID}
	if _, ok := h.byQueue[key][p]; !ok {
		return false
	}
	p.timer.Stop()
	delete(h.byQueue[key], p)
	if len(h.byQueue[key]) == 0 {
		delete(h.byQueue, key)
	}
	// The connection's entry stays, even empty, until it closes: its
	// OnClose callback is registered once, not once per hold.
	delete(h.byConn[p.conn], p)
	h.bytes[p.conn] -= p.size
	h.n--
	return true
}

// held returns how many pulls are waiting.
func (h *pullHolder) held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// shuttingDown is the answer to a pull the holder would have held once it
// is closed. SYSTEM_BUSY, not PULL_NOT_FOUND: on PULL_NOT_FOUND clients
// pull again at once, on the connection the broker closes next, and a pull
// in flight then is never answered; the official Go client does not fail
// a closed connection's calls and waits out its 30 s pull timeout before
// it pulls that queue again. On an error the clients pause instead (the
// official ones 3 s, halfback's 1 s).
func shuttingDown(req *remoting.Command) *remoting.Command {
	return remoting.NewResponse(req, remoting.RespSystemBusy, "broker is shutting down")
}

// isClosed reports whether close has run: hold refuses every pull.
func (h *pullHolder) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// close answers every held pull with shuttingDown and refuses new ones. It
// waits at most grace for the answers (a connection whose peer stopped
// reading would hold one for its WriteTimeout); wait waits for the rest,
// once the server has closed the connections.
func (h *pullHolder) close(grace time.Duration) {
	h.mu.Lock()
	h.closed = true
	var all []*heldPull
	for _, set := range h.byQueue {
		for p := range set {
			all = append(all, p)
		}
	}
	for _, p := range all {
		h.removeLocked(p)
	}
	h.answering.Add(len(all))
	h.mu.Unlock()
	for _, p := range all {
		go func() {
			defer h.answering.Done()
			_ = p.conn.Reply(p.req, shuttingDown(p.req))
		}()
	}
	done := make(chan struct{})
	go func() {
		h.answering.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// wait waits for the answers in flight.
func (h *pullHolder) wait() { h.answering.Wait() }
