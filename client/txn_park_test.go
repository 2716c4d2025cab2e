package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// Unknown answers until the checks are used up park the transaction; an
// operator's resume brings the checks back, and the now-known answer
// (rollback for one, commit for the other) settles it.
func TestTxnParkedResumedThenSettledByCheckBack(t *testing.T) {
	cl := startCluster(t, nil, func(o *broker.Options) {
		o.Txn = txn.Options{Timeout: 100 * time.Millisecond, CheckInterval: 100 * time.Millisecond, CheckMax: 2}
	})
	c := newClient(t, cl.ns.Addr(), nil)
	var known atomic.Bool
	var commitID atomic.Value
	p := newProducer(t, c, ProducerOptions{CheckListener: CheckListenerFunc(
		func(_ context.Context, r *CheckRequest) TransactionState {
			switch {
			case !known.Load():
				return Unknown
			case r.Receipt.TransactionID == commitID.Load():
				return Commit
			}
			return Rollback
		})})
	topic := uniq("pay")
	commit, err := p.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("commit me")})
	if err != nil {
		t.Fatal(err)
	}
	commitID.Store(commit.TransactionID)
	if _, err := p.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("roll me back")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "both transactions parked", func() bool {
		return len(cl.b.Transactions().List(txn.Parked, 0)) == 2
	})
	known.Store(true)
	for _, x := range cl.b.Transactions().List(txn.Parked, 0) {
		if _, err := cl.b.Transactions().Resume(context.Background(), x.MsgID); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "both settled", func() bool { return cl.b.Transactions().Stats().Pending == 0 })
	var got []*MessageExt
	testutil.WaitFor(t, 10*time.Second, "the committed message visible", func() bool {
		got = cl.stored(t, topic)
		return len(got) >= 1
	})
	if len(got) != 1 || string(got[0].Body) != "commit me" {
		t.Fatalf("visible: %v", got)
	}
	if s := cl.b.Transactions().Stats(); s.CheckCommits != 1 || s.CheckRollbacks != 1 || s.ParkedTotal != 2 {
		t.Fatalf("stats %+v", s)
	}
}
