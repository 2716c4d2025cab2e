package txn

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/halfbackmq/halfback/message"
)

// An operator names a transaction by its offset message id, its
// transaction id or its offset. Two live transactions may share a
// transaction id (another group's, or a reset workflow's step run again
// with other data): the id then names neither, and resolving or resuming
// by it must not act on whichever the map yields first.
func TestAnIDOfSeveralTransactionsIsRefused(t *testing.T) {
	r := newRig(t)
	first := r.half("wf-1/pay")
	other := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("x"), Properties: message.Properties{
		message.PropertyUniqKey: "wf-1/pay", message.PropertyProducerGroup: "other"}.Encode()}
	second, err := r.svc.SendHalf(context.Background(), other, "")
	if err != nil || second.PhysicalOffset == first.PhysicalOffset {
		t.Fatalf("other group's half: %+v %v", second, err)
	}
	r.useUpChecks() // both parked
	if _, err := r.svc.Find("wf-1/pay"); !errors.Is(err, ErrAmbiguousID) {
		t.Fatalf("Find by a shared transaction id: %v, want ErrAmbiguousID", err)
	}
	if x, ok := r.svc.Get("wf-1/pay", -1); ok {
		t.Fatalf("Get by a shared transaction id found %+v", x)
	}
	if _, err := r.svc.Resume(context.Background(), "wf-1/pay"); !errors.Is(err, ErrAmbiguousID) {
		t.Fatalf("Resume by a shared transaction id: %v, want ErrAmbiguousID", err)
	}
	// Each is still found by its own offset message id and offset.
	for _, res := range []int64{first.PhysicalOffset, second.PhysicalOffset} {
		x, err := r.svc.Find(strconv.FormatInt(res, 10))
		if err != nil || x.HalfOffset != res {
			t.Fatalf("Find(%d) = %+v %v", res, x, err)
		}
		if y, err := r.svc.Find(x.MsgID); err != nil || y.HalfOffset != res {
			t.Fatalf("Find(%s) = %+v %v", x.MsgID, y, err)
		}
	}
	if x, err := r.svc.Resume(context.Background(), first.MsgID); err != nil || x.HalfOffset != first.PhysicalOffset || x.Status != Pending {
		t.Fatalf("Resume by offset message id: %+v %v", x, err)
	}
}

// A half message without a UNIQ_KEY (a client that sets none) is found by
// its offsets only: an empty id names no transaction.
func TestAnEmptyIDNamesNoTransaction(t *testing.T) {
	r := newRig(t)
	m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("x"), Properties: message.Properties{
		message.PropertyProducerGroup: "pg"}.Encode()}
	if _, err := r.svc.SendHalf(context.Background(), m, ""); err != nil {
		t.Fatal(err)
	}
	r.useUpChecks()
	if x, err := r.svc.Find(""); !errors.Is(err, ErrUnknownTransaction) {
		t.Fatalf("Find(\"\") = %+v %v, want ErrUnknownTransaction", x, err)
	}
	if x, ok := r.svc.Get("", -1); ok {
		t.Fatalf("Get(\"\", -1) found %+v", x)
	}
	if x, err := r.svc.Resume(context.Background(), ""); !errors.Is(err, ErrUnknownTransaction) {
		t.Fatalf("Resume(\"\") = %+v %v, want ErrUnknownTransaction", x, err)
	}
}
