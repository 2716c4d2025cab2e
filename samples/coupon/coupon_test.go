package coupon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/workflows"
)

func openDB(t *testing.T) *orders.DB {
	t.Helper()
	db, err := orders.Open(context.Background(), orders.Options{DSN: filepath.Join(t.TempDir(), "orders.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func paidMessage(t *testing.T, orderID string) *client.MessageExt {
	t.Helper()
	body, err := json.Marshal(workflows.OrderEvent{OrderID: orderID, User: "ann", Amount: 1999, PaymentID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	return &client.MessageExt{Message: client.Message{Topic: workflows.TopicOrderEvents, Tags: workflows.TagOrderPaid,
		Keys: []string{orderID}, Body: body}, MsgID: orderID + "/pay"}
}

// TestRedeliveryGrantsOnce delivers the same OrderPaid message three
// times (as at-least-once delivery may): one coupon, each delivery
// acknowledged.
func TestRedeliveryGrantsOnce(t *testing.T) {
	db := openDB(t)
	var granted []bool
	h := Handler(db, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe: func(_ *client.MessageExt, g bool) { granted = append(granted, g) }})
	ctx := context.Background()
	m := paidMessage(t, "o1")
	for range 3 {
		if res, err := h(ctx, []*client.MessageExt{m}); res != client.ConsumeSuccess || err != nil {
			t.Fatalf("handler: %v, %v; want success", res, err)
		}
	}
	if len(granted) != 3 || !granted[0] || granted[1] || granted[2] {
		t.Errorf("granted per delivery %v, want [true false false]", granted)
	}
	coupons, err := db.Coupons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(coupons) != 1 || coupons["o1"] != 1 {
		t.Errorf("coupons %v, want one for o1", coupons)
	}
}

// TestFailureIsNotAcknowledged: a message the handler cannot apply is
// retried (not acknowledged) and leaves nothing behind.
func TestFailureIsNotAcknowledged(t *testing.T) {
	db := openDB(t)
	h := Handler(db, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	bad := paidMessage(t, "o2")
	bad.Body = []byte("not json")
	res, err := h(ctx, []*client.MessageExt{bad})
	if res != client.ConsumeRetryLater || !errors.Is(err, ErrBadEvent) {
		t.Errorf("bad body: %v, %v; want ConsumeRetryLater and ErrBadEvent", res, err)
	}

	db.Close() // the local transaction fails: nothing committed, nothing acknowledged
	if res, err := h(ctx, []*client.MessageExt{paidMessage(t, "o3")}); res != client.ConsumeRetryLater || err == nil {
		t.Errorf("closed database: %v, %v; want ConsumeRetryLater with an error", res, err)
	}
}

// TestOversizedBadEventLogsBounded: a malformed message of 1 MiB on the
// topic (retried up to 16 times) must not write its whole body, quoted,
// into the log at every delivery.
func TestOversizedBadEventLogsBounded(t *testing.T) {
	db := openDB(t)
	var logged countingWriter
	h := Handler(db, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	bad := paidMessage(t, "o4")
	bad.Body = make([]byte, 1<<20) // binary zeros: %q makes each byte 4
	res, err := h(context.Background(), []*client.MessageExt{bad})
	if res != client.ConsumeRetryLater || !errors.Is(err, ErrBadEvent) {
		t.Fatalf("bad body: %v, %v; want ConsumeRetryLater and ErrBadEvent", res, err)
	}
	if logged > 4096 || len(err.Error()) > 1024 {
		t.Errorf("one delivery of a 1 MiB bad message logged %d bytes, error of %d bytes", int(logged), len(err.Error()))
	}
}

type countingWriter int

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
