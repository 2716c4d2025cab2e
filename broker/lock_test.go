package broker

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

func lockBody(t *testing.T, group, client string, qids ...int32) []byte {
	t.Helper()
	body := lockBatchBody{ConsumerGroup: group, ClientID: client}
	for _, q := range qids {
		body.MQSet = append(body.MQSet, mqRef{Topic: "orders", BrokerName: "broker-a", QueueID: q})
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lockQueues sends LOCK_BATCH_MQ and returns the queue ids granted, sorted.
func lockQueues(t *testing.T, c *remoting.Conn, group, client string, qids ...int32) []int32 {
	t.Helper()
	resp := call(t, c, remoting.ReqLockBatchMQ, nil, lockBody(t, group, client, qids...))
	if resp.Code != remoting.RespSuccess {
		t.Fatalf("lock: %d %s", resp.Code, resp.Remark)
	}
	var out struct {
		LockOKMQSet []mqRef `json:"lockOKMQSet"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		t.Fatalf("lock response %q: %v", resp.Body, err)
	}
	got := []int32{}
	for _, mq := range out.LockOKMQSet {
		got = append(got, mq.QueueID)
	}
	slices.Sort(got)
	return got
}

func unlockQueues(t *testing.T, c *remoting.Conn, group, client string, qids ...int32) {
	t.Helper()
	if resp := call(t, c, remoting.ReqUnlockBatchMQ, nil, lockBody(t, group, client, qids...)); resp.Code != remoting.RespSuccess {
		t.Fatalf("unlock: %d %s", resp.Code, resp.Remark)
	}
}

func TestLockBatchCompete(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c1, c2 := dial(t, b), dial(t, b)

	if got := lockQueues(t, c1, "g", "C1", 0, 1); !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("C1 got %v", got)
	}
	if got := lockQueues(t, c2, "g", "C2", 1, 2); !slices.Equal(got, []int32{2}) {
		t.Fatalf("C2 got %v, want only 2", got)
	}
	if got := lockQueues(t, c1, "g", "C1", 0, 1, 2); !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("C1 renewal got %v", got)
	}
	// Another group is independent.
	if got := lockQueues(t, c2, "other", "C2", 0); !slices.Equal(got, []int32{0}) {
		t.Fatalf("other group got %v", got)
	}
	// Unlocking someone else's queue does nothing; the owner's unlock frees it.
	unlockQueues(t, c2, "g", "C2", 1)
	if got := lockQueues(t, c2, "g", "C2", 1); len(got) != 0 {
		t.Fatalf("C2 took a queue C1 holds: %v", got)
	}
	unlockQueues(t, c1, "g", "C1", 1)
	if got := lockQueues(t, c2, "g", "C2", 1); !slices.Equal(got, []int32{1}) {
		t.Fatalf("C2 after C1 unlocked got %v", got)
	}
	if owner, ok := b.lockTable().owner("g", mqRef{Topic: "orders", BrokerName: "broker-a", QueueID: 1}); !ok || owner != "C2" {
		t.Fatalf("owner of queue 1 = %q %v", owner, ok)
	}
	// An empty set is answered with an empty list.
	if got := lockQueues(t, c1, "g", "C1"); len(got) != 0 {
		t.Fatalf("empty lock got %v", got)
	}
}

func TestLockExpiryHandsOver(t *testing.T) {
	b := startBroker(t, testOptions(t))
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	b.lockTable().setClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }, DefaultLockMaxLiveTime)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c1, c2 := dial(t, b), dial(t, b)

	if got := lockQueues(t, c1, "g", "C1", 0); !slices.Equal(got, []int32{0}) {
		t.Fatalf("C1 got %v", got)
	}
	if !b.groupIsOrderly("g") {
		t.Fatal("a group holding a lock is not orderly")
	}
	advance(DefaultLockMaxLiveTime) // exactly at the limit: still held
	if got := lockQueues(t, c2, "g", "C2", 0); len(got) != 0 {
		t.Fatalf("C2 took a live lock: %v", got)
	}
	advance(time.Millisecond)
	if b.groupIsOrderly("g") {
		t.Fatal("expired locks still count")
	}
	if got := lockQueues(t, c2, "g", "C2", 0); !slices.Equal(got, []int32{0}) {
		t.Fatalf("C2 after expiry got %v", got)
	}
	if got := lockQueues(t, c1, "g", "C1", 0); len(got) != 0 {
		t.Fatalf("C1 got its lock back: %v", got)
	}

	// Closing the owner's connection does not free the queue: the owner may
	// still be consuming what it pulled (clients trust a lock for 30 s).
	c2.Close()
	waitFor(t, "connection closed", func() bool { return c2.Err() != nil })
	if got := lockQueues(t, c1, "g", "C1", 0); len(got) != 0 {
		t.Fatalf("C1 took the queue of a disconnected owner early: %v", got)
	}
	advance(DefaultLockMaxLiveTime + time.Second)
	b.lockTable().prune()
	if got := lockQueues(t, c1, "g", "C1", 0); !slices.Equal(got, []int32{0}) {
		t.Fatalf("C1 after the owner's lock expired got %v", got)
	}
}

func TestLockBadInput(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	for _, code := range []int16{remoting.ReqLockBatchMQ, remoting.ReqUnlockBatchMQ} {
		for _, body := range []string{`{`, `{"consumerGroup":"g","mqSet":[]}`, `{"clientId":"C"}`, `{"consumerGroup":"g","clientId":"C","mqSet":{}}`,
			`{"consumerGroup":"bad group","clientId":"C","mqSet":[]}`,
			`{"consumerGroup":"g","clientId":"C","mqSet":[{"topic":"bad topic","brokerName":"b","queueId":0}]}`,
			`{"consumerGroup":"g","clientId":"C","mqSet":[{"topic":"orders","brokerName":"b","queueId":-1}]}`} {
			if resp := call(t, c, code, nil, []byte(body)); resp.Code != remoting.RespSystemError {
				t.Errorf("code %d body %s: response %d, want SYSTEM_ERROR", code, body, resp.Code)
			}
		}
	}
	if got := lockQueues(t, c, "g", "C", 3); !slices.Equal(got, []int32{3}) {
		t.Fatalf("after bad input: %v", got)
	}
}
