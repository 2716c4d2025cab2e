package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Rebalancing: which queues of each subscribed topic this member consumes.
// Broadcasting takes them all. Clustering asks a broker for the group's
// members (GET_CONSUMER_LIST_BY_GROUP) and splits the topic's readable
// queues among them as RocketMQ's AllocateMessageQueueAveragely does, so
// that Java and Go members of one group agree. A round runs at Start, when
// a broker sends NOTIFY_CONSUMER_IDS_CHANGED, every RebalanceInterval, and
// soon again after a round that could not finish (no route yet, a broker
// that does not list this member yet, a queue locked by another member).

// rebalanceRetryDelay is the wait before a round that could not finish is
// run again; it doubles with each such round, up to RebalanceInterval.
const rebalanceRetryDelay = 500 * time.Millisecond

// rebalanceLoop runs rounds until the consumer closes.
func (pc *PushConsumer) rebalanceLoop(ctx context.Context) {
	tick := time.NewTicker(pc.opts.RebalanceInterval)
	defer tick.Stop()
	retry := time.NewTimer(rebalanceRetryDelay)
	defer retry.Stop()
	delay := rebalanceRetryDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-pc.kick:
		case <-retry.C:
		}
		if pc.rebalance(ctx) || ctx.Err() != nil {
			delay = rebalanceRetryDelay
			continue
		}
		retry.Reset(delay)
		delay = min(2*delay, pc.opts.RebalanceInterval)
	}
}

// rebalance runs one round over every subscription; it reports whether
// every topic's share was worked out and taken.
func (pc *PushConsumer) rebalance(ctx context.Context) bool {
	complete := true
	for _, s := range pc.subscriptions() {
		want, err := pc.allocate(ctx, s.topic)
		if err != nil {
			if ctx.Err() == nil {
				pc.log.Debug("client: rebalance postponed", "topic", s.topic, "err", err)
			}
			complete = false
			continue
		}
		if !pc.updateQueues(ctx, s, want) {
			complete = false
		}
	}
	return complete
}

// errNotMember means a broker does not list this client in its group yet
// (its heartbeat has not arrived).
var errNotMember = errors.New("this client is not a member of the group yet")

// allocate returns the queues of topic this member should consume.
func (pc *PushConsumer) allocate(ctx context.Context, topic string) ([]MessageQueue, error) {
	r, err := pc.c.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	mqs, err := r.sortedReadQueues(topic)
	if err != nil {
		return nil, err
	}
	if pc.opts.Model == Broadcasting {
		return mqs, nil
	}
	ids, err := pc.consumerIDs(ctx, r)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(ids, pc.c.id) {
		pc.c.kickHeartbeat()
		return nil, errNotMember
	}
	return allocateAveragely(mqs, ids, pc.c.id), nil
}

// allocateAveragely gives member me its share of mqs: consecutive runs of
// len(mqs)/len(ids) queues, the first len(mqs)%len(ids) members one more
// (RocketMQ's AllocateMessageQueueAveragely). mqs and ids are sorted.
func allocateAveragely(mqs []MessageQueue, ids []string, me string) []MessageQueue {
	idx := slices.Index(ids, me)
	n, m := len(mqs), len(ids)
	if idx < 0 || n == 0 {
		return nil
	}
	mod := n % m
	size := n / m
	switch {
	case n <= m:
		size = 1
	case mod > 0 && idx < mod:
		size++
	}
	start := idx * size
	if mod == 0 || idx >= mod {
		start += mod
	}
	var out []MessageQueue
	for i := 0; i < min(size, n-start); i++ {
		out = append(out, mqs[(start+i)%n])
	}
	return out
}

// consumerIDs asks the topic's brokers, in turn, for the group's members.
func (pc *PushConsumer) consumerIDs(ctx context.Context, r *topicRoute) ([]string, error) {
	const op = "GET_CONSUMER_LIST_BY_GROUP"
	var errs []error
	for _, name := range routeBrokers(r) {
		addr, err := pc.c.brokerAddr(ctx, name, r.topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		req := newRequest(remoting.ReqGetConsumerListByGroup, map[string]string{"consumerGroup": pc.opts.Group})
		resp, err := pc.c.invoke(ctx, addr, op, req)
		if err == nil && resp.Code != remoting.RespSuccess {
			err = &BrokerError{Op: op, Addr: addr, Code: resp.Code, Remark: resp.Remark}
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		var body struct {
			ConsumerIDList []string `json:"consumerIdList"`
		}
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			errs = append(errs, fmt.Errorf("client: %s from %s: %w", op, addr, err))
			continue
		}
		sort.Strings(body.ConsumerIDList)
		return body.ConsumerIDList, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: %s has no broker", ErrTopicNotFound, r.topic)
	}
	return nil, errors.Join(errs...)
}

// routeBrokers returns the names of the brokers holding a route's readable
// queues, sorted.
func routeBrokers(r *topicRoute) []string {
	var out []string
	for _, q := range r.readQueues {
		if !slices.Contains(out, q.BrokerName) {
			out = append(out, q.BrokerName)
		}
	}
	sort.Strings(out)
	return out
}

// updateQueues drops the queues of s.topic this member no longer gets and
// starts the new ones (orderly clustering: only those it could lock). It
// reports false if some new queue could not be taken yet.
func (pc *PushConsumer) updateQueues(ctx context.Context, s *subscription, want []MessageQueue) bool {
	pc.mu.Lock()
	var drop []*processQueue
	for mq, q := range pc.queues {
		if mq.Topic == s.topic && !slices.Contains(want, mq) {
			drop = append(drop, q)
		}
	}
	for mq := range pc.resetStarts {
		if mq.Topic == s.topic && !slices.Contains(want, mq) {
			delete(pc.resetStarts, mq) // another member's now
		}
	}
	var add []MessageQueue
	complete := true
	for _, mq := range want {
		if q, ok := pc.queues[mq]; ok {
			if q.isDropped() {
				complete = false // still draining; take it again once it has left
			}
			continue
		}
		add = append(add, mq)
	}
	pc.mu.Unlock()
	for _, q := range drop {
		pc.log.Debug("client: queue reassigned", "queue", q.mq)
		pc.dropQueue(q)
	}
	if len(add) == 0 {
		return complete
	}
	lockedAt := time.Now()
	missed := add[:0:0]
	if pc.opts.Orderly && pc.opts.Model == Clustering {
		// Until the queues are in the table: releaseStale, which finds
		// a queue not in it and releases its lock, must not have its
		// release reach the broker after this lock.
		pc.lockMu.Lock()
		defer pc.lockMu.Unlock()
		// The grant's age counts from the request, not from before the
		// wait for lockMu (a renewal or drops may hold it a while).
		lockedAt = time.Now()
		got, _ := pc.lockNew(ctx, add)
		if len(got) < len(add) {
			complete = false
		}
		for _, mq := range add {
			if !slices.Contains(got, mq) {
				missed = append(missed, mq)
			}
		}
		add = got
	}
	// Even when the consumer is closing: its queues then stop at once, and
	// Close releases the locks of the queues in the table.
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, mq := range missed {
		delete(pc.resetStarts, mq) // another member may move it meanwhile
	}
	for _, mq := range add {
		q := newProcessQueue(pc.ctx, mq, s)
		if off, ok := pc.resetStarts[mq]; ok {
			q.startAt = off
			delete(pc.resetStarts, mq)
		}
		q.commitGate = pc.commitGate(mq.BrokerName)
		q.setLocked(true, lockedAt)
		pc.startQueueLocked(q)
	}
	return complete
}
