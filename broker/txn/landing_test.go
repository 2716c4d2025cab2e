package txn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/store/storetest"
	"github.com/halfbackmq/halfback/message"
)

// A half send whose sync flush times out is answered FLUSH_DISK_TIMEOUT
// with the half message's offsets, and the official clients roll it back
// at once (oneway). The half message is stored, only not yet durable: the
// rollback must wait for it and record the rollback, as RocketMQ (which
// finds the half message in its commit log) does, instead of refusing it
// as an unknown transaction and leaving the producer's decision to
// check-backs.
func TestEndOfAHalfWhoseFlushTimedOutWaitsForIt(t *testing.T) {
	for _, o := range []Outcome{Rollback, Commit} {
		t.Run(o.String(), func(t *testing.T) {
			g := storetest.NewFlushGate()
			r := newRigWith(t, g.Tune)
			r.half("first") // the writer is held after this one's fsync
			open := g.Hold(t, r.st)
			m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte("b"), Properties: message.Properties{
				message.PropertyUniqKey: "a", message.PropertyProducerGroup: "pg"}.Encode()}
			h, err := r.svc.SendHalf(context.Background(), m, "")
			if !errors.Is(err, store.ErrFlushTimeout) || h.MsgID == "" {
				t.Fatalf("half send with a stuck fsync: %+v, %v; want its offsets and ErrFlushTimeout", h, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if res, err := r.svc.End(ctx, EndRequest{Group: "pg", HalfOffset: h.PhysicalOffset, QueueOffset: h.QueueOffset,
				Outcome: o}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s of the half message before its record landed: %+v, %v; want to wait for it", o, res, err)
			}
			open()
			res, err := r.end(h, o)
			if err != nil || res.Duplicate || res.Txn.Status != o.status() {
				t.Fatalf("%s once the half message landed: %+v, %v; want it recorded", o, res, err)
			}
			r.clock.Advance(testOpts.Timeout)
			r.svc.checkRound()
			for _, c := range r.check.got {
				if c.HalfOffset == h.PhysicalOffset {
					t.Fatalf("check-back of a transaction the producer ended: %+v", c)
				}
			}
		})
	}
}
