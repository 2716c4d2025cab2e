package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Consuming: handler calls, acknowledgement, and what happens to a failed
// message. A concurrent consumer runs each batch on its own goroutine
// (at most Concurrency at once) and sends a failed batch back to the
// broker (CONSUMER_SEND_MSG_BACK, delay level 0: the broker picks level
// 3 + reconsumeTimes, and parks the message in %DLQ%<group> once it was
// consumed MaxReconsumeTimes times); a message the broker takes back is
// acknowledged, one it refuses is stored by an ordinary send to the retry
// topic instead (sendBackOne), and one neither stores is consumed again
// here after SuspendInterval. An orderly consumer runs one batch of a queue at a
// time; a failed batch is consumed again after SuspendInterval until a
// message's ReconsumeTimes (the stored count, which a message from the
// retry topic already carries, plus the retries here) reaches
// MaxReconsumeTimes, as RocketMQ's checkReconsumeTimes; that message is
// then sent back with delay level -1, which the broker stores in the
// dead-letter queue, and the queue moves on once the batch is done.

// dispatch starts a handler goroutine per batch of ds, each once a
// Concurrency slot is free. It reports false if q stopped first; the
// messages not started stay unacknowledged.
func (pc *PushConsumer) dispatch(q *processQueue, ds []*delivered) bool {
	for len(ds) > 0 {
		n := batchLen(ds, pc.opts.ConsumeBatchSize)
		batch := ds[:n]
		ds = ds[n:]
		if !pc.acquireFor(q) {
			return false
		}
		pc.wg.Add(1)
		q.wg.Add(1)
		go func() {
			defer pc.wg.Done()
			defer q.wg.Done()
			pc.consumeConcurrently(q, batch)
		}()
	}
	return true
}

// acquireFor takes a Concurrency slot for a call of q. With SyncCommit it
// waits, too, while a call of a queue of q's broker retries its commit
// (the slot it waited for may be that call's, given back as its retries
// began). It reports false if q stopped first.
//
// q's context is checked again once the gate is found open: a retrying
// call gives up when the consumer closes, so the gate may open because q
// stopped, after the slot was taken. A call started then would be a
// second call in flight while the broker is down (its commit fails too,
// and a crash delivers both again). The consumer's context is checked as
// well: Close cancels it, and it ends its queues' contexts one at a time,
// so the retrying call's queue may have stopped and opened the gate while
// q's context has not ended yet.
func (pc *PushConsumer) acquireFor(q *processQueue) bool {
	for {
		if pc.opts.SyncCommit && !q.commitGate.wait(q.ctx) {
			return false
		}
		if !pc.acquire(q.ctx) {
			return false
		}
		if pc.afterSlot != nil {
			pc.afterSlot()
		}
		if !pc.opts.SyncCommit {
			return true
		}
		if q.commitGate.isOpen() {
			if q.ctx.Err() == nil && pc.ctx.Err() == nil {
				return true
			}
			<-pc.sem
			return false
		}
		<-pc.sem
	}
}

// commitGate returns the gate of broker's queues (processQueue.commitGate).
func (pc *PushConsumer) commitGate(broker string) *commitGate {
	pc.gatesMu.Lock()
	defer pc.gatesMu.Unlock()
	g, ok := pc.gates[broker]
	if !ok {
		g = newCommitGate()
		pc.gates[broker] = g
	}
	return g
}

// batchLen is the length of the first batch of ds: at most n messages, all
// for the same topic's handler (a retry queue mixes topics).
func batchLen(ds []*delivered, n int) int {
	k := 1
	for k < len(ds) && k < n && ds[k].originTopic == ds[0].originTopic {
		k++
	}
	return k
}

// consumeConcurrently runs a batch (its Concurrency slot taken) until it
// is acknowledged, or q stops while it waits to be retried. A failed batch
// goes back to the broker for the group's retry topic (clustering), or is
// retried here (broadcasting, whose members read no retry topic).
func (pc *PushConsumer) consumeConcurrently(q *processQueue, batch []*delivered) {
	for tries := int32(0); ; tries++ {
		ok, hung := pc.callConcurrently(q, batch, tries)
		if ok {
			q.ack(batch)
			// The slot is held through the commit: with SyncCommit the
			// calls that ran but are not committed yet are the calls in
			// flight, at most Concurrency of them. Not through its
			// retries (its broker is down, say).
			pc.syncCommitThen(q, func() { <-pc.sem })
			return
		}
		if !hung { // a hung call gives its slot back when it returns
			<-pc.sem
		}
		if q.isDropped() {
			// A rebalance gave the queue away: its new owner consumes the
			// batch again from the committed offset. Sending it back too
			// would deliver it twice and spend one of its retries.
			return
		}
		if pc.opts.Model == Broadcasting {
			if int(tries)+1 > pc.opts.MaxReconsumeTimes {
				// As RocketMQ's broadcasting consumer, but only after
				// MaxReconsumeTimes local retries rather than at once.
				pc.log.Warn("client: broadcast message failed every retry; dropped", "queue", q.mq,
					"msgId", batch[0].msgID, "tries", tries+1)
				q.ack(batch)
				pc.syncCommit(q)
				return
			}
			if !sleepCtx(q.ctx, pc.opts.SuspendInterval) || !pc.acquireFor(q) {
				return
			}
			continue
		}
		n := len(batch)
		batch = pc.sendBackAll(q, batch, 0, tries)
		if len(batch) < n { // some were taken back: acknowledged
			pc.syncCommit(q)
		}
		if len(batch) == 0 {
			return
		}
		if !sleepCtx(q.ctx, pc.opts.SuspendInterval) || !pc.acquireFor(q) {
			return
		}
	}
}

// callConcurrently runs callHandler for a concurrent consumer's batch.
// A call that has not returned twice ConsumeTimeout after it started
// (ConsumeTimeout past its context's deadline: it ignores ctx; a
// rebalance that ends the context earlier does not shorten this) is taken
// for a failure, reported hung, and left to
// run: it keeps its Concurrency slot, given back when it returns, and
// what it returns then is ignored. Its messages are sent back (or retried
// here) like any failed batch, so that the queue's committed offset
// moves past them, as RocketMQ's consumer sends back a message consumed
// for longer than consumeTimeout (cleanExpireMsg).
func (pc *PushConsumer) callConcurrently(q *processQueue, batch []*delivered, tries int32) (ok, hung bool) {
	var mu sync.Mutex
	abandoned, decided, counts := false, false, false
	// counted decides, once, whether the call's result counts: it does
	// unless the call was taken for hung before it returned. callHandler
	// asks before it ends the call's span, so that the span of a call
	// taken for hung says so whatever the handler returned.
	counted := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if !decided {
			decided, counts = true, !abandoned
		}
		return counts
	}
	res := make(chan bool, 1)
	pc.wg.Add(1) // Close waits for the call, hung or not
	go func() {
		defer pc.wg.Done()
		ok := pc.callHandler(q, batch, tries, counted)
		if !counted() {
			<-pc.sem
			return
		}
		res <- ok
	}()
	t := time.NewTimer(hungAfter(pc.opts.ConsumeTimeout))
	defer t.Stop()
	select {
	case ok := <-res:
		return ok, false
	case <-t.C:
	}
	mu.Lock()
	if decided { // it returned, and its result is on its way
		mu.Unlock()
		return <-res, false
	}
	abandoned = true
	mu.Unlock()
	pc.log.Error("client: message handler did not return within twice ConsumeTimeout; its messages are taken for failed",
		"queue", q.mq, "msgId", batch[0].msgID, "consumeTimeout", pc.opts.ConsumeTimeout)
	return false, true
}

// hungAfter is how long after its start a call with ConsumeTimeout d is
// taken for hung: 2d, or the longest Duration if that overflows (it went
// negative, and every call was taken for hung at once).
func hungAfter(d time.Duration) time.Duration {
	if d > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * d
}

// acquire takes a Concurrency slot, reporting false (and taking none) if
// ctx ended first.
func (pc *PushConsumer) acquire(ctx context.Context) bool {
	select {
	case pc.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if ctx.Err() != nil { // both were ready
		<-pc.sem
		return false
	}
	return true
}

// consumeOrderly consumes q's buffered messages in order, one batch at a
// time, until q stops. With SyncCommit a batch's offset is committed
// before the next batch is taken.
func (pc *PushConsumer) consumeOrderly(q *processQueue) {
	for {
		batch := q.take(pc.opts.ConsumeBatchSize)
		if batch == nil || !pc.consumeOrderlyBatch(q, batch) {
			return
		}
		pc.syncCommit(q)
	}
}

// consumeOrderlyBatch runs a batch until it succeeds or its messages are
// in the dead-letter queue, each once its ReconsumeTimes reached
// MaxReconsumeTimes (the others are consumed again). It reports false if
// q stopped first (the messages left stay unacknowledged).
func (pc *PushConsumer) consumeOrderlyBatch(q *processQueue, batch []*delivered) bool {
	for tries := int32(0); ; tries++ {
		if !pc.holdLock(q) || !pc.acquire(q.ctx) {
			return false
		}
		ok := pc.callHandler(q, batch, tries, nil)
		<-pc.sem
		if ok {
			q.ack(batch)
			return true
		}
		var spent, left []*delivered
		for _, d := range batch {
			if int(d.reconsumeTimes)+int(tries) >= pc.opts.MaxReconsumeTimes {
				spent = append(spent, d)
			} else {
				left = append(left, d)
			}
		}
		if len(spent) > 0 && !pc.deadLetter(q, spent) {
			return false
		}
		if batch = left; len(batch) == 0 {
			return true
		}
		if !sleepCtx(q.ctx, pc.opts.SuspendInterval) {
			return false
		}
	}
}

// deadLetter sends an orderly batch to the dead-letter queue, retrying
// until the broker takes it or q stops.
func (pc *PushConsumer) deadLetter(q *processQueue, batch []*delivered) bool {
	for {
		// tries 0: the dead letter's count stays the stored one, as it
		// was (level -1 picks no delay from it).
		if batch = pc.sendBackAll(q, batch, -1, 0); len(batch) == 0 {
			return true
		}
		if !sleepCtx(q.ctx, pc.opts.SuspendInterval) {
			return false
		}
	}
}

// callHandler runs the handler of the batch's topic and reports success.
// counted, if not nil, reports when the handler has returned whether its
// result still counts (callConcurrently); a result that does not is
// ended in the process span as errHandlerHung. The messages'
// ReconsumeTimes are the stored count plus tries, the local retries so
// far. A panic is a failure. The handler's context ends after
// ConsumeTimeout, or when a rebalance gives q to another member (which
// will consume the batch again), not when the consumer closes.
func (pc *PushConsumer) callHandler(q *processQueue, batch []*delivered, tries int32, counted func() bool) (ok bool) {
	s, topic := pc.handlerSubscription(batch[0].originTopic, q.sub.retry)
	// Copies, deep: a call taken for hung (callConcurrently) still holds
	// its messages while the batch is retried, and a send-back reads
	// d.m's body meanwhile. Sharing the maps, the retry saw what the hung
	// call changed, and a write beside a read is a concurrent map access.
	msgs := make([]*MessageExt, len(batch))
	for i, d := range batch {
		msgs[i] = d.m.clone()
		msgs[i].ReconsumeTimes = d.reconsumeTimes + tries
		msgs[i].Topic = topic
	}
	if s == nil || s.handler == nil {
		pc.log.Warn("client: no handler for a retried message's topic", "topic", topic, "msgId", batch[0].msgID)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), pc.opts.ConsumeTimeout)
	defer cancel()
	stop := context.AfterFunc(q.ctx, func() {
		if q.isDropped() { // by a rebalance; Close cancels q.ctx without dropping
			cancel()
		}
	})
	defer stop()
	res, err := pc.runHandler(ctx, s.handler, topic, msgs, counted)
	if err != nil {
		pc.log.Debug("client: message handler failed", "topic", topic, "msgId", batch[0].msgID, "err", err)
		return false
	}
	return res == ConsumeSuccess
}

// runHandler calls h with msgs of topic in a process span. A panic is
// logged and returned as an error (errHandlerPanicked). counted, if not
// nil, reports once h has returned whether its result still counts (see
// callHandler).
func (pc *PushConsumer) runHandler(ctx context.Context, h MessageHandler, topic string, msgs []*MessageExt, counted func() bool) (res ConsumeResult, err error) {
	ctx, span := startProcess(ctx, pc.opts.Group, pc.opts.Model.String(), topic, msgs)
	defer func() { // after the recover below
		spanErr := err
		switch {
		case counted != nil && !counted():
			spanErr = errors.Join(errHandlerHung, err)
		case res != ConsumeSuccess && err == nil:
			spanErr = errHandlerFailed
		}
		endSpan(span, spanErr)
	}()
	defer func() {
		if p := recover(); p != nil {
			pc.log.Error("client: message handler panicked", "topic", topic, "msgId", msgs[0].MsgID, "panic", p)
			res, err = ConsumeRetryLater, fmt.Errorf("%w: %v", errHandlerPanicked, p)
		}
	}()
	return h(ctx, msgs)
}

// handlerSubscription returns the subscription whose handler gets a
// message of topic (for one of the group's retry topic, its first topic,
// RETRY_TOPIC: retried says so), and the topic the handler is given. A
// retry of a message the group consumed from a dead-letter queue carries
// that message's first topic, not the DLQ the group subscribes: when the
// group does not subscribe that topic it goes back to the handler of its
// sole DLQ subscription.
func (pc *PushConsumer) handlerSubscription(topic string, retried bool) (*subscription, string) {
	s := pc.subscription(topic)
	if s == nil && retried {
		if d := pc.soleDLQSubscription(); d != nil {
			return d, d.topic
		}
	}
	return s, topic
}

// errHandlerPanicked is the error of a handler call that panicked.
var errHandlerPanicked = errors.New("client: message handler panicked")

// errHandlerFailed is the process span's error for a handler that
// returned a result other than ConsumeSuccess without an error.
var errHandlerFailed = errors.New("client: message handler asked for a retry")

// errHandlerHung is the process span's error for a call that returned
// after it was taken for hung: its result was ignored and its messages
// sent back (callConcurrently).
var errHandlerHung = errors.New("client: message handler returned after twice ConsumeTimeout; its result was ignored")

// sendBackAll sends each message of batch back to the broker with the
// delay level, acknowledges those it took and returns the others. tries
// counts the batch's local retries, each after a failed send-back
// (sendBackByContent counts them).
func (pc *PushConsumer) sendBackAll(q *processQueue, batch []*delivered, level int, tries int32) []*delivered {
	var left, taken []*delivered
	for _, d := range batch {
		if err := pc.sendBackOne(q.mq, d, level, tries); err != nil {
			pc.log.Warn("client: send-back failed; retrying locally", "queue", q.mq, "msgId", d.msgID, "err", err)
			left = append(left, d)
			continue
		}
		taken = append(taken, d)
	}
	q.ack(taken)
	return left
}

// sendBackOne sends d back. A refusal (the broker answered, but cannot
// store the copy from the record at d's offset: retention removed it, say)
// is followed by sendBackByContent, as RocketMQ's consumer falls back to
// its producer; retried here, the message would be consumed again for
// ever, never reaching the dead-letter queue, with the queue's offset held
// behind it. A transport failure is not: the broker may have stored it.
func (pc *PushConsumer) sendBackOne(mq MessageQueue, d *delivered, level int, tries int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), pc.c.opts.RequestTimeout)
	err := pc.sendBack(ctx, mq, d, level)
	cancel()
	var be *BrokerError
	if !errors.As(err, &be) {
		return err
	}
	ctx, cancel = context.WithTimeout(context.Background(), pc.c.opts.RequestTimeout)
	defer cancel()
	if err2 := pc.sendBackByContent(ctx, mq, d, level, tries); err2 != nil {
		return errors.Join(err, err2)
	}
	pc.log.Warn("client: send-back refused; stored the retry from the message's content", "queue", mq,
		"msgId", d.msgID, "err", err)
	return nil
}

// sendBackByContent stores the copy a send-back would have, with an
// ordinary send (SEND_MESSAGE_V2) to the group's retry topic on mq's
// broker: d's body, flag and stored properties, RETRY_TOPIC and
// ORIGIN_MESSAGE_ID added if not set yet, delay level 3 + reconsumeTimes,
// and in the request one more reconsume and the consumer's limit, past
// which the broker stores it in %DLQ%<group> instead. Level < 0 (an
// orderly consumer's dead letter) sends limit 0, which it is past.
//
// reconsumeTimes is the stored count plus tries, the local retries after
// failed send-backs, as RocketMQ's consumer raises the message's count on
// each: counting the stored one alone, a message retried here would come
// back sooner, and reach the dead-letter queue after more failures, than
// one whose first send-back got through. (The broker's send-back reads
// the stored count from the record, as RocketMQ's does.)
func (pc *PushConsumer) sendBackByContent(ctx context.Context, mq MessageQueue, d *delivered, level int, tries int32) error {
	const op = "SEND_MESSAGE_V2"
	addr, err := pc.c.brokerAddr(ctx, mq.BrokerName, mq.Topic)
	if err != nil {
		return err
	}
	props := message.RemoveProperties(d.props, message.PropertyDelayTimeLevel, message.PropertyTimerDeliverMS,
		message.PropertyTimerDelayMS, message.PropertyTimerDelaySec, message.PropertyTransactionPrepared,
		message.PropertyReconsumeTime, message.PropertyMaxReconsumeTimes)
	if _, ok := message.Property(props, message.PropertyRetryTopic); !ok {
		props = message.SetProperty(props, message.PropertyRetryTopic, d.originTopic)
	}
	if v, ok := message.Property(props, message.PropertyOriginMessageID); !ok || v == "" {
		// The message's id (its unique key, else the offset id), as
		// RocketMQ's client-side copy: the broker's send-back would use the
		// offset id, but it cannot read the record any more.
		props = message.SetProperty(props, message.PropertyOriginMessageID, d.msgID)
	}
	times := int(d.reconsumeTimes) + int(tries)
	limit := pc.opts.MaxReconsumeTimes
	if level < 0 {
		limit = 0
	} else {
		if level == 0 {
			level = 3 + times
		}
		props = message.SetProperty(props, message.PropertyDelayTimeLevel, strconv.Itoa(level))
	}
	topic := retryTopic(pc.opts.Group)
	o := &outgoing{op: op, code: remoting.ReqSendMessageV2, topic: topic, flag: d.m.Flag, props: props,
		body: d.m.Body, sysFlag: message.CompressionFlags(d.m.SysFlag)}
	req := o.request(clientInnerProducerGroup, MessageQueue{Topic: topic, BrokerName: mq.BrokerName})
	req.ExtFields["j"] = strconv.Itoa(times + 1) // reconsumeTimes
	req.ExtFields["l"] = strconv.Itoa(limit)     // maxReconsumeTimes
	return pc.c.invokeOK(ctx, addr, op, req)
}

// clientInnerProducerGroup is the producer group of sendBackByContent's
// sends, RocketMQ's MixAll.CLIENT_INNER_PRODUCER_GROUP.
const clientInnerProducerGroup = "CLIENT_INNER_PRODUCER"

// sendBack sends one message back (CONSUMER_SEND_MSG_BACK) to the broker
// it was pulled from.
func (pc *PushConsumer) sendBack(ctx context.Context, mq MessageQueue, d *delivered, level int) error {
	const op = "CONSUMER_SEND_MSG_BACK"
	addr, err := pc.c.brokerAddr(ctx, mq.BrokerName, mq.Topic)
	if err != nil {
		return err
	}
	req := newRequest(remoting.ReqConsumerSendMsgBack, map[string]string{
		"group": pc.opts.Group, "offset": strconv.FormatInt(d.commitLogOffset, 10),
		"delayLevel": strconv.Itoa(level), "originMsgId": d.msgID, "originTopic": d.originTopic,
		"unitMode": "false", "maxReconsumeTimes": strconv.Itoa(pc.opts.MaxReconsumeTimes),
	})
	return pc.c.invokeOK(ctx, addr, op, req)
}
