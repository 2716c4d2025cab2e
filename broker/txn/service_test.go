package txn

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

func TestHalfMessageIsInvisibleUntilCommitted(t *testing.T) {
	r := newRig(t)
	res := r.half("a", message.PropertyDelayTimeLevel, "3")
	ext, err := r.st.ReadMessage(res.PhysicalOffset)
	if err != nil {
		t.Fatal(err)
	}
	if ext.Topic != HalfTopic || ext.QueueID != 0 || ext.Property(message.PropertyRealTopic) != "orders" ||
		ext.Property(message.PropertyRealQueueID) != "1" || ext.Property(message.PropertyDelayTimeLevel) != "" {
		t.Fatalf("half record: topic %s q%d props %q", ext.Topic, ext.QueueID, ext.Properties)
	}
	if got := r.delivered(); len(got) != 0 {
		t.Fatalf("half message visible before commit: %v", got)
	}
	if l := r.svc.List(0, 0); len(l) != 1 || l[0].Status != Pending || l[0].TransactionID != "a" || l[0].Topic != "orders" {
		t.Fatalf("List = %+v", l)
	}

	out, err := r.end(res, Commit)
	if err != nil || out.Duplicate || out.Txn.Status != Committed {
		t.Fatalf("commit: %+v %v", out, err)
	}
	if got := r.waitDelivered(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("delivered %v", got)
	}
	m, err := r.st.ReadMessage(out.Committed.PhysicalOffset)
	if err != nil {
		t.Fatal(err)
	}
	if message.TransactionType(m.SysFlag) != message.TransactionCommitType || m.PreparedTransactionOffset != res.PhysicalOffset ||
		m.Property(message.PropertyRealTopic) != "" || m.Property(message.PropertyTransactionPrepared) != "" ||
		string(m.Body) != "body-a" || m.Property(message.PropertyKeys) != "order-a" {
		t.Fatalf("committed record: sysFlag %d prepared %d props %q", m.SysFlag, m.PreparedTransactionOffset, m.Properties)
	}
	if l := r.svc.List(0, 0); len(l) != 0 {
		t.Fatalf("resolved transaction still listed: %+v", l)
	}
}

func TestEndIsIdempotentAndRefusesTheOtherOutcome(t *testing.T) {
	r := newRig(t)
	c, rb := r.half("c"), r.half("r")
	if _, err := r.end(c, Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := r.end(rb, Rollback); err != nil {
		t.Fatal(err)
	}
	end := r.st.MaxPhysicalOffset()
	for range 3 {
		if out, err := r.end(c, Commit); err != nil || !out.Duplicate || out.Txn.Status != Committed {
			t.Fatalf("repeated commit: %+v %v", out, err)
		}
		if out, err := r.end(rb, Rollback); err != nil || !out.Duplicate || out.Txn.Status != RolledBack {
			t.Fatalf("repeated rollback: %+v %v", out, err)
		}
	}
	if _, err := r.end(c, Rollback); !errors.Is(err, ErrConflict) {
		t.Fatalf("rollback after commit: %v", err)
	}
	if _, err := r.end(rb, Commit); !errors.Is(err, ErrConflict) {
		t.Fatalf("commit after rollback: %v", err)
	}
	if got := r.st.MaxPhysicalOffset(); got != end {
		t.Fatalf("duplicates and conflicts wrote %d bytes", got-end)
	}
	if got := r.waitDelivered(1); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("delivered %v", got)
	}
	r.reopen() // outcomes are remembered across a restart
	if out, err := r.end(c, Commit); err != nil || !out.Duplicate {
		t.Fatalf("commit after restart: %+v %v", out, err)
	}
	if _, err := r.end(rb, Commit); !errors.Is(err, ErrConflict) {
		t.Fatalf("commit after rollback, after restart: %v", err)
	}
	if got := r.delivered(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("delivered after restart %v", got)
	}
}

func TestEndRefusesForgedRequests(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	end := r.st.MaxPhysicalOffset()
	ctx := context.Background()
	cases := []struct {
		name string
		req  EndRequest
		want error
	}{
		{"wrong group", EndRequest{Group: "other", HalfOffset: res.PhysicalOffset, QueueOffset: res.QueueOffset, Outcome: Commit}, ErrWrongGroup},
		{"wrong queue offset", EndRequest{Group: "pg", HalfOffset: res.PhysicalOffset, QueueOffset: res.QueueOffset + 7, Outcome: Commit}, ErrWrongOffset},
		{"unknown offset", EndRequest{Group: "pg", HalfOffset: res.PhysicalOffset + 1, Outcome: Commit}, ErrUnknownTransaction},
		{"offset past the log", EndRequest{Group: "pg", HalfOffset: 1 << 40, Outcome: Rollback}, ErrUnknownTransaction},
	}
	for _, c := range cases {
		if _, err := r.svc.End(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if out, err := r.end(res, Unknown); err != nil || out.Txn.Status != Pending {
		t.Fatalf("unknown outcome: %+v %v", out, err)
	}
	if got := r.st.MaxPhysicalOffset(); got != end {
		t.Fatalf("refused requests wrote %d bytes", got-end)
	}
	if l := r.svc.List(Pending, 0); len(l) != 1 {
		t.Fatalf("transaction no longer pending: %+v", l)
	}
}

func TestConcurrentCommitsWriteOnce(t *testing.T) {
	r := newRig(t)
	res := r.half("a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := r.end(res, Commit)
			if err != nil {
				t.Error(err)
				return
			}
			if !out.Duplicate {
				mu.Lock()
				writes++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if writes != 1 {
		t.Fatalf("%d commits wrote the message", writes)
	}
	if got := r.waitDelivered(1); len(got) != 1 {
		t.Fatalf("delivered %v", got)
	}
}

func TestSendHalfRefusesBadMessages(t *testing.T) {
	r := newRig(t)
	end := r.st.MaxPhysicalOffset()
	cases := map[string]*message.Message{
		"no group":     {Topic: "orders", Body: []byte("x")},
		"system topic": {Topic: HalfTopic, Body: []byte("x"), Properties: message.Properties{message.PropertyProducerGroup: "pg"}.Encode()},
		"bad topic":    {Topic: "bad topic!", Body: []byte("x"), Properties: message.Properties{message.PropertyProducerGroup: "pg"}.Encode()},
	}
	for name, m := range cases {
		if _, err := r.svc.SendHalf(context.Background(), m, ""); !errors.Is(err, ErrBadHalf) {
			t.Errorf("%s: got %v, want ErrBadHalf", name, err)
		}
	}
	if got := r.st.MaxPhysicalOffset(); got != end {
		t.Fatalf("refused halves wrote %d bytes", got-end)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{{}, {Dir: "d", Timeout: -1}, {Dir: "d", CheckInterval: -1}, {Dir: "d", CheckMax: -1},
		{Dir: "d", MaxChecksPerRound: -1}, {Dir: "d", CheckpointInterval: -time.Second}}
	for _, o := range bad {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := Open(st, Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open without Dir: %v", err)
	}
}

func TestSendHalfWithTheIDOfALiveOneReturnsIt(t *testing.T) {
	r := newRig(t)
	first := r.half("wf-1/create")
	end := r.st.MaxPhysicalOffset()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if again := r.half("wf-1/create"); again.PhysicalOffset != first.PhysicalOffset || again.QueueOffset != first.QueueOffset || again.MsgID != first.MsgID {
				t.Errorf("repeated half send stored %+v, want the live %+v", again, first)
			}
		}()
	}
	wg.Wait()
	if got := r.st.MaxPhysicalOffset(); got != end {
		t.Fatalf("repeated half sends wrote %d bytes", got-end)
	}
	if s := r.svc.Stats(); s.DuplicateHalves != 8 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Another message under the live one's id (a reset workflow's step run
	// again with other data) is its own transaction: answered with the
	// live one, its sender would commit that one's body. Its retry is a
	// duplicate of it, and both stay live.
	other := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("other body"), Properties: message.Properties{
		message.PropertyUniqKey: "wf-1/create", message.PropertyProducerGroup: "pg"}.Encode()}
	second, err := r.svc.SendHalf(context.Background(), other, "")
	if err != nil || second.PhysicalOffset == first.PhysicalOffset {
		t.Fatalf("another body under a live id: %+v %v; want a half message of its own", second, err)
	}
	if again, err := r.svc.SendHalf(context.Background(), other, ""); err != nil || again.PhysicalOffset != second.PhysicalOffset {
		t.Fatalf("its retry: %+v %v; want %+v", again, err, second)
	}
	if s := r.svc.Stats(); s.Pending != 2 {
		t.Fatalf("stats %+v, want 2 pending", s)
	}
	if _, err := r.end(second, Rollback); err != nil {
		t.Fatal(err)
	}
	if again := r.half("wf-1/create"); again.PhysicalOffset != first.PhysicalOffset {
		t.Fatalf("after the other one's rollback a retry stored %+v, want the live %+v", again, first)
	}
	// Another group's message with the same id is its own transaction.
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("x"), Properties: message.Properties{
		message.PropertyUniqKey: "wf-1/create", message.PropertyProducerGroup: "other"}.Encode()}
	if res, err := r.svc.SendHalf(context.Background(), m, ""); err != nil || res.PhysicalOffset == first.PhysicalOffset {
		t.Fatalf("other group: %+v %v", res, err)
	}
	if again := r.half("wf-1/create"); again.PhysicalOffset != first.PhysicalOffset {
		t.Fatalf("after another group's half of the id a retry stored %+v, want the live %+v", again, first)
	}
	// Once resolved, the id is free again (a new transaction).
	if _, err := r.end(first, Commit); err != nil {
		t.Fatal(err)
	}
	if again := r.half("wf-1/create"); again.PhysicalOffset == first.PhysicalOffset {
		t.Fatal("a resolved transaction's id returned the resolved half message")
	}
}

func TestConcurrentHalfSendsOfOneIDStoreOne(t *testing.T) {
	r := newRig(t)
	var wg sync.WaitGroup
	offs := make([]int64, 8)
	for i := range offs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offs[i] = r.half("same-id").PhysicalOffset
		}()
	}
	wg.Wait()
	for _, o := range offs {
		if o != offs[0] {
			t.Fatalf("concurrent sends of one id stored several half messages: %v", offs)
		}
	}
	if l := r.svc.List(0, 0); len(l) != 1 {
		t.Fatalf("live: %+v", l)
	}
}
