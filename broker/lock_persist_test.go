package broker

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// A lock that had expired before the broker stopped (its owner is gone:
// another member could take the queue at once, and the group no longer
// counts as orderly) must not come back as just renewed after a restart.
func TestExpiredLockNotRevivedByRestart(t *testing.T) {
	o := testOptions(t)
	b := startBroker(t, o)
	c := dial(t, b)
	if got := lockQueues(t, c, "g", "A", 0); !slices.Equal(got, []int32{0}) {
		t.Fatalf("A got %v", got)
	}
	// A dies; its lock expires (the 10 s prune has not run yet).
	now := time.Now()
	b.lockTable().setClock(func() time.Time { return now.Add(DefaultLockMaxLiveTime + time.Second) }, DefaultLockMaxLiveTime)
	if _, ok := b.lockTable().owner("g", mqRef{Topic: "orders", BrokerName: "broker-a", QueueID: 0}); ok {
		t.Fatal("lock still live before the restart")
	}
	if b.groupIsOrderly("g") {
		t.Fatal("group orderly before the restart")
	}
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = startBroker(t, o)
	c = dial(t, b)
	if b.groupIsOrderly("g") {
		t.Errorf("after a restart the group counts as orderly again (its %%RETRY%% sends go to the DLQ) from a lock that had expired")
	}
	if got := lockQueues(t, c, "g", "B", 0); !slices.Equal(got, []int32{0}) {
		t.Errorf("after a restart B got %v for a queue whose lock had expired before it, want [0]", got)
	}
}

// BenchmarkLockOwnerChange measures a single-queue LOCK_BATCH that
// changes a queue's owner (as the Java and Go clients lock a newly
// assigned queue, one request per queue), with 10,000 other locks in the
// table: the owners' file is written off the table's mutex, coalesced.
// go test -run '^$' -bench LockOwnerChange ./broker/
func BenchmarkLockOwnerChange(b *testing.B) {
	br := startBroker(b, testOptions(b))
	c := dial(b, br)
	for g := range 50 {
		qids := make([]int32, 200)
		for i := range qids {
			qids[i] = int32(i)
		}
		lockQueuesB(b, c, fmt.Sprintf("other%d", g), "X", qids...)
	}
	owners := []string{"A", "B"}
	b.ResetTimer()
	for i := range b.N {
		lockQueuesB(b, c, "g", owners[i%2], int32(i%1000))
		unlockB(b, c, "g", owners[i%2], int32(i%1000))
	}
}

func lockQueuesB(b *testing.B, c *remoting.Conn, group, client string, qids ...int32) {
	b.Helper()
	var mqs []mqRef
	for _, q := range qids {
		mqs = append(mqs, mqRef{Topic: "orders", BrokerName: "broker-a", QueueID: q})
	}
	body, _ := json.Marshal(lockBatchBody{ConsumerGroup: group, ClientID: client, MQSet: mqs})
	if resp := call(b, c, remoting.ReqLockBatchMQ, nil, body); resp.Code != remoting.RespSuccess {
		b.Fatalf("lock: %d %s", resp.Code, resp.Remark)
	}
}

func unlockB(b *testing.B, c *remoting.Conn, group, client string, qids ...int32) {
	b.Helper()
	var mqs []mqRef
	for _, q := range qids {
		mqs = append(mqs, mqRef{Topic: "orders", BrokerName: "broker-a", QueueID: q})
	}
	body, _ := json.Marshal(lockBatchBody{ConsumerGroup: group, ClientID: client, MQSet: mqs})
	if resp := call(b, c, remoting.ReqUnlockBatchMQ, nil, body); resp.Code != remoting.RespSuccess {
		b.Fatalf("unlock: %d %s", resp.Code, resp.Remark)
	}
}
