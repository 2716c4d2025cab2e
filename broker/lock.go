package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fsutil"
)

// Ordered-queue locks: an orderly consumer locks each queue it consumes so
// that exactly one client of its group owns a queue at a time (RocketMQ's
// RebalanceLockManager). A lock lives until it is unlocked, renewed by its
// owner, or expires after DefaultLockMaxLiveTime without renewal (clients
// renew every 20 s and treat their own view as stale after 30 s, so a lost
// owner stops consuming before another client can take the queue). Locks
// are not dropped when a connection closes, for the same reason.
//
// Who owns which queue is also kept in <dataDir>/config/locks.json, written
// when an owner changes (not on renewals), and a restarted broker takes
// every owner found there as just renewed. RocketMQ's table lives in
// memory only: after a restart a member waiting for a queue took it at
// once, while its previous owner (which renews every 20 s) could still be
// in a handler call on it, and the two ran the queue side by side. An
// owner that died meanwhile loses its queues after DefaultLockMaxLiveTime,
// as without a restart.

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
	path    string       // the owners' file; "" keeps none
	log     *slog.Logger // a failed write of the file (the table goes on)
}

// savedLock is one owner in the owners' file.
type savedLock struct {
	Group    string `json:"group"`
	MQ       mqRef  `json:"mq"`
	ClientID string `json:"clientId"`
}

func newLockTable() *lockTable {
	return &lockTable{now: time.Now, maxLive: DefaultLockMaxLiveTime, groups: make(map[string]map[mqRef]*lockEntry)}
}

// openLockTable returns a lock table kept in <dataDir>/config/locks.json,
// with the owners found there taken as just renewed. A file that cannot
// be read is logged and the table starts empty, as RocketMQ's does.
func openLockTable(dataDir string, log *slog.Logger) *lockTable {
	t := newLockTable()
	t.path, t.log = filepath.Join(dataDir, "config", "locks.json"), log
	b, err := os.ReadFile(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return t
	}
	var saved []savedLock
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		log.Warn("broker: queue lock owners not restored", "file", t.path, "err", err)
		return t
	}
	now := t.now()
	for _, l := range saved {
		if t.groups[l.Group] == nil {
			t.groups[l.Group] = make(map[mqRef]*lockEntry)
		}
		t.groups[l.Group][l.MQ] = &lockEntry{clientID: l.ClientID, renewed: now}
	}
	return t
}

// saveLocked writes the owners' file after an owner changed. A failure is
// logged: the file only narrows a restart's window, the table goes on.
func (t *lockTable) saveLocked() {
	if t.path == "" {
		return
	}
	saved := []savedLock{}
	for g, m := range t.groups {
		for mq, e := range m {
			saved = append(saved, savedLock{Group: g, MQ: mq, ClientID: e.clientID})
		}
	}
	b, err := json.Marshal(saved)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(t.path), 0o755); err == nil {
			err = fsutil.WriteFileAtomic(t.path, b)
		}
	}
	if err != nil {
		t.log.Warn("broker: queue lock owners not saved", "file", t.path, "err", err)
	}
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
	changed := false
	for _, mq := range mqs {
		e := m[mq]
		if e != nil && e.clientID != clientID && !t.expired(e, now) {
			continue
		}
		changed = changed || e == nil || e.clientID != clientID
		m[mq] = &lockEntry{clientID: clientID, renewed: now}
		ok = append(ok, mq)
	}
	if len(m) == 0 {
		delete(t.groups, group)
	}
	if changed {
		t.saveLocked()
	}
	return ok
}

// unlock releases the queues clientID holds; others' locks are kept.
func (t *lockTable) unlock(group, clientID string, mqs []mqRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.groups[group]
	changed := false
	for _, mq := range mqs {
		if e := m[mq]; e != nil && e.clientID == clientID {
			delete(m, mq)
			changed = true
		}
	}
	if m != nil && len(m) == 0 {
		delete(t.groups, group)
	}
	if changed {
		t.saveLocked()
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
	changed := false
	for g, m := range t.groups {
		for mq, e := range m {
			if t.expired(e, now) {
				delete(m, mq)
				changed = true
			}
		}
		if len(m) == 0 {
			delete(t.groups, g)
		}
	}
	if changed {
		t.saveLocked()
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
