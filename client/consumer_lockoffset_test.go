package client

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/remotetest"
)

// TestOrderlyLostLockDoesNotCommitOverNewOwner: an orderly member whose
// queue lock passed to another member (as after a broker restart, or once
// the broker expired the lock of a member it could not hear from) while a
// handler call of that queue ran must not commit the queue's offset when
// the call ends: the new owner has consumed and committed further, and
// the old member's offset would take the group back, so that the next
// owner consumes again what was consumed already.
func TestOrderlyLostLockDoesNotCommitOverNewOwner(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic, group := uniq("ordered"), uniq("og")
	sendKeyed(t, p, topic, []string{"a"}, 0, 5)
	cl.waitStored(t, topic, 5)

	var (
		mu      sync.Mutex
		mq      MessageQueue
		blocked = make(chan struct{})
		release = make(chan struct{})
		once    sync.Once
	)
	h := func(_ context.Context, msgs []*MessageExt) (ConsumeResult, error) {
		m := msgs[0]
		if string(m.Body) == "a-1" {
			once.Do(func() {
				mu.Lock()
				mq = MessageQueue{Topic: m.Topic, BrokerName: cl.name, QueueID: m.QueueID}
				mu.Unlock()
				close(blocked)
				<-release
			})
		}
		return ConsumeSuccess, nil
	}
	pc := startConsumer(t, newClient(t, cl.ns.Addr(), nil), ConsumerOptions{Group: group, Orderly: true,
		FromWhere: ConsumeFromFirst, LockRenewInterval: 50 * time.Millisecond, PersistInterval: 20 * time.Millisecond},
		topic, "*", h)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	select {
	case <-blocked:
	case <-ctxT(t, 15*time.Second).Done():
		t.Fatal("a-1 never reached the handler")
	}
	mu.Lock()
	q := mq
	mu.Unlock()

	conn := remotetest.Dial(t, cl.b.Addr())
	committed := func() int64 {
		resp := remotetest.Call(t, conn, remoting.ReqQueryConsumerOffset, map[string]string{
			"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(q.QueueID)), "setZeroIfNotFound": "false"}, nil)
		if resp.Code != remoting.RespSuccess {
			return -1
		}
		off, _ := strconv.ParseInt(resp.Ext("offset"), 10, 64)
		return off
	}
	waitFor(t, "a-0's offset committed", func() bool { return committed() == 1 })

	// Another member takes the queue's lock behind the first one's back ...
	lock := func(code int16, clientID string) string {
		return string(lockRequestAs(t, conn, code, group, clientID, q))
	}
	// (The first member renews its lock every 50 ms, so a renewal can come
	// between the unlock and the lock: then both are sent again.)
	waitFor(t, "the new owner granted the lock", func() bool {
		lock(remoting.ReqUnlockBatchMQ, pc.c.id)
		return lock(remoting.ReqLockBatchMQ, "new-owner") != `{"lockOKMQSet":[]}`
	})
	waitFor(t, "the first member to learn it lost the lock", func() bool {
		for _, pq := range pc.processQueues() {
			if pq.mq == q && pq.lockValid() {
				return false
			}
		}
		return true
	})
	// ... consumes the rest of the queue and commits it.
	if resp := remotetest.Call(t, conn, remoting.ReqUpdateConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(q.QueueID)), "commitOffset": "5"}, nil); resp.Code != remoting.RespSuccess {
		t.Fatalf("new owner's commit: %d %s", resp.Code, resp.Remark)
	}

	// The first member's call ends; it gives the queue up.
	released = true
	close(release)
	waitFor(t, "the first member to give the queue up", func() bool {
		for _, m := range pc.queueList() {
			if m == q {
				return false
			}
		}
		return true
	})
	if got := committed(); got != 5 {
		t.Fatalf("committed offset of %v is %d after the member that lost its lock gave it up, want the new owner's 5", q, got)
	}
}
