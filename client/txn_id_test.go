package client

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A half message with a deterministic ID sent twice (a retried activity)
// opens one transaction: the second SendHalf gets the first one's receipt.
func TestSendHalfWithAnIDIsIdempotent(t *testing.T) {
	cl := startCluster(t, nil, nil)
	p := newProducer(t, newClient(t, cl.ns.Addr(), nil), ProducerOptions{})
	topic := uniq("orders")
	m := &Message{Topic: topic, Body: []byte("order 42 created"), Keys: []string{"order-42"}, ID: "wf-order-42/create"}
	first, err := p.SendHalf(ctxT(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.SendHalf(ctxT(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || first.TransactionID != "wf-order-42/create" || first.MsgID != "wf-order-42/create" {
		t.Fatalf("second SendHalf %+v, first %+v", again, first)
	}
	if err := p.EndTransaction(ctxT(t, 10*time.Second), first, Commit); err != nil {
		t.Fatal(err)
	}
	if s := cl.b.Transactions().Stats(); s.Halves != 1 || s.DuplicateHalves != 1 {
		t.Fatalf("broker stats %+v", s)
	}
	for _, bad := range []string{"has space", "ctl\x01", strings.Repeat("x", MaxIDLength+1)} {
		if _, err := p.SendHalf(ctxT(t, 10*time.Second), &Message{Topic: topic, Body: []byte("x"), ID: bad}); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("ID %q: %v, want ErrInvalidMessage", bad, err)
		}
	}
}
