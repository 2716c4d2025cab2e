package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// Ordered-queue locks: an orderly consumer locks each queue it consumes so
// that exactly one client of its group owns a queue at a time (RocketMQ's
// RebalanceLockManager). A lock lives until it is unlocked, renewed by its
// owner, or expires after DefaultLockMaxLiveTime without renewal (clients
// renew every 20 s and treat their own view as stale after 30 s, so a lost
// owner stops consuming before another client can take the queue). Locks
// are not dropped when a connection closes, for the same reason.

// DefaultLockMaxLiveTime is RocketMQ's REBALANCE_LOCK_MAX_LIVE_TIME.
const DefaultLockMaxLiveTime = 60 * time.Second

// mqRef names one queue of a topic on a broker, in RocketMQ's JSON
// shape.
type mqRef struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

type lockEntry struct {
	clientID string
	renewed  time.Time
}

type lockTable struct {
	mu      sync.Mutex
	now     func() time.Time
	maxLive time.Duration
	groups  map[string]map[mqRef]*lockEntry
}

func newLockTable() *lockTable {
	return &lockTable{now: time.Now, maxLive: DefaultLockMaxLiveTime, groups: make(map[string]map[mqRef]*lockEntry)}
}

// setClock replaces the table's clock and lock lifetime (tests).
func (t *lockTable) setClock(now func() time.Time, maxLive time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.now, t.maxLive = now, maxLive
}

func (t *lockTable) expired(e *lockEntry, now time.Time) bool { return now.Sub(e.renewed) > t.maxLive }

// lock takes or renews each queue for clientID and returns those it holds:
// free ones, its own, and ones whose owner's lock expired.
func (t *lockTable) lock(group, clientID string, mqs []mqRef) []mqRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	m := t.groups[group]
	if m == nil {
		m = make(map[mqRef]*lockEntry)
		t.groups[group] = m
	}
	ok := make([]mqRef, 0, len(mqs))
	for _, mq := range mqs {
		e := m[mq]
		if e != nil && e.clientID != clientID && !t.expired(e, now) {
			continue
		}
		m[mq] = &lockEntry{clientID: clientID, renewed: now}
		ok = append(ok, mq)
	}
	if len(m) == 0 {
		delete(t.groups, group)
	}
	return ok
}

// unlock releases the queues clientID holds; others' locks are kept.
func (t *lockTable) unlock(group, clientID string, mqs []mqRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.groups[group]
	for _, mq := range mqs {
		if e := m[mq]; e != nil && e.clientID == clientID {
			delete(m, mq)
		}
	}
	if m != nil && len(m) == 0 {
		delete(t.groups, group)
	}
}

// owner returns who holds a queue's live lock.
func (t *lockTable) owner(group string, mq mqRef) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.groups[group][mq]
	if e == nil || t.expired(e, t.now()) {
		return "", false
	}
	return e.clientID, true
}

// anyLive reports whether the group holds an unexpired lock, which is how
// RocketMQ's broker tells an orderly group (isLockAllExpired).
func (t *lockTable) anyLive(group string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, e := range t.groups[group] {
		if !t.expired(e, now) {
			return true
		}
	}
	return false
}

// prune forgets expired locks.
func (t *lockTable) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for g, m := range t.groups {
		for mq, e := range m {
			if t.expired(e, now) {
				delete(m, mq)
			}
		}
		if len(m) == 0 {
			delete(t.groups, g)
		}
	}
}

// lockBatchBody is the LOCK_BATCH_MQ / UNLOCK_BATCH_MQ body
// (LockBatchRequestBody, UnlockBatchRequestBody).
type lockBatchBody struct {
	ConsumerGroup string  `json:"consumerGroup"`
	ClientID      string  `json:"clientId"`
	MQSet         []mqRef `json:"mqSet"`
}

// registerLocks handles ordered-queue locking.
func (b *Broker) registerLocks(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqLockBatchMQ, b.handleLockBatch)
	mux.HandleFunc(remoting.ReqUnlockBatchMQ, b.handleUnlockBatch)
}

func parseLockBody(req *remoting.Command) (*lockBatchBody, *remoting.Command) {
	var body lockBatchBody
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return nil, remoting.NewResponse(req, remoting.RespSystemError, "bad lock request body: "+err.Error())
	}
	if body.ConsumerGroup == "" || body.ClientID == "" {
		return nil, remoting.NewResponse(req, remoting.RespSystemError, "lock request needs consumerGroup and clientId")
	}
	// Names no client may use would only take room in the lock table
	// until they expire.
	if err := message.ValidateGroup(body.ConsumerGroup); err != nil {
		return nil, remoting.NewResponse(req, remoting.RespSystemError, "lock request: "+err.Error())
	}
	for _, mq := range body.MQSet {
		if err := message.ValidateTopic(mq.Topic); err != nil {
			return nil, remoting.NewResponse(req, remoting.RespSystemError, "lock request: "+err.Error())
		}
		if mq.QueueID < 0 {
			return nil, remoting.NewResponse(req, remoting.RespSystemError, fmt.Sprintf("lock request: queueId %d of %s is negative", mq.QueueID, mq.Topic))
		}
	}
	return &body, nil
}

// handleLockBatch answers {"lockOKMQSet": [...]}: the queues the client
// now holds.
func (b *Broker) handleLockBatch(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, errResp := parseLockBody(req)
	if errResp != nil {
		return errResp
	}
	locked := b.lockTable().lock(body.ConsumerGroup, body.ClientID, body.MQSet)
	if len(locked) < len(body.MQSet) {
		b.opts.Logger.Debug("some queues are locked by another client", "group", body.ConsumerGroup, "client", body.ClientID,
			"asked", len(body.MQSet), "locked", len(locked))
	}
	out, err := json.Marshal(struct {
		LockOKMQSet []mqRef `json:"lockOKMQSet"`
	}{locked})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = out
	return resp
}

func (b *Broker) handleUnlockBatch(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, errResp := parseLockBody(req)
	if errResp != nil {
		return errResp
	}
	b.lockTable().unlock(body.ConsumerGroup, body.ClientID, body.MQSet)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// groupIsOrderly reports whether group holds a live queue lock, i.e. is
// consuming orderly. RocketMQ sends a %RETRY% message of such a group
// straight to its DLQ (SendMessageProcessor.handleRetryAndDLQ).
func (b *Broker) groupIsOrderly(group string) bool { return b.lockTable().anyLive(group) }
