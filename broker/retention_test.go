package broker

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// retentionOptions make every full, dispatched segment due for removal
// at once (kept 1 ms, checked every 20 ms), with small segments; the log
// goes to logs.
func retentionOptions(t *testing.T, logs *testutil.Buffer) Options {
	o := txnOptions(t)
	o.Txn.Timeout = time.Hour // no check-back while the test runs
	o.Store.SegmentSize, o.Store.MaxMessageSize = 256<<10, 32<<10
	o.Store.FileReserved, o.Store.RetentionCheckPeriod = time.Millisecond, 20*time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return o
}

// fill appends n messages of 8 KiB to topic "filler".
func fill(t *testing.T, b *Broker, n int) {
	t.Helper()
	big := strings.Repeat("f", 8<<10)
	for i := range n {
		if _, err := b.store.Append(t.Context(), &message.Message{Topic: "filler", Body: []byte(big),
			Properties: message.Properties{message.PropertyUniqKey: "F" + strconv.Itoa(i)}.Encode()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetentionKeepsPendingDelayedAndOpenTransactions checks that
// retention, with every old segment due for removal, keeps a delayed
// message not yet delivered (it logs that a hold keeps the segment) and
// catches up once it is delivered; and that it moves an open
// transaction's half message forward, removes the old segment, and the
// transaction still commits with its message.
func TestRetentionKeepsPendingDelayedAndOpenTransactions(t *testing.T) {
	t.Run("delayed", func(t *testing.T) {
		var logs testutil.Buffer
		o := retentionOptions(t, &logs)
		levels, err := delay.ParseLevels("4s")
		if err != nil {
			t.Fatal(err)
		}
		o.Delay.Levels = levels
		b := startBroker(t, o)
		c := dial(t, b)
		resp := mustSend(t, c, "later", 0, props("DELAY", "1", "UNIQ_KEY", "D1"), "kept")
		_, phys, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
		if err != nil {
			t.Fatalf("send response %v: %v", resp.ExtFields, err)
		}
		fill(t, b, 100) // 800 KiB: three segments behind the active one

		waitFor(t, "retention to report the delay scheduler's hold", func() bool {
			return strings.Contains(logs.String(), "hold=delay") || b.store.MinPhysicalOffset() > phys
		})
		if b.store.MinPhysicalOffset() > phys {
			t.Fatalf("the delayed message's segment was removed (min offset %d > %d)", b.store.MinPhysicalOffset(), phys)
		}
		if _, hi := b.store.QueueBounds("later", 0); hi != 0 {
			t.Fatal("the hold was reported only after the delivery; the test proves nothing (a loaded machine?)")
		}
		got := waitQueueMsgs(t, b, "later", 0, 1)
		if string(got[0].Body) != "kept" {
			t.Fatalf("delivered %q", got[0].Body)
		}
		waitFor(t, "retention to remove the delivered message's old segment", func() bool {
			return b.store.MinPhysicalOffset() > phys
		})
	})

	t.Run("transaction", func(t *testing.T) {
		var logs testutil.Buffer
		b := startBroker(t, retentionOptions(t, &logs))
		c := dial(t, b)
		ref := sendHalfRaw(t, c, "orders", "T1")
		half, err := strconv.ParseInt(ref["commitLogOffset"], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, b, 100)
		// The open transaction's message is moved to the end of the log,
		// and its old segment goes.
		waitFor(t, "retention to remove the half message's segment", func() bool {
			return b.store.MinPhysicalOffset() > half
		})
		if !strings.Contains(logs.String(), "moved open transactions' messages") {
			t.Fatalf("no move was logged:\n%s", logs.String())
		}
		if tx, ok := b.txn.Get("T1", -1); !ok || tx.Status != txn.Pending {
			t.Fatalf("the transaction after the move: %+v (found %v)", tx, ok)
		}
		if r := endTxn(t, c, ref, message.TransactionCommitType); r.Code != 0 {
			t.Fatalf("commit: %d %s", r.Code, r.Remark)
		}
		if got := waitQueueMsgs(t, b, "orders", 0, 1); string(got[0].Body) != "body-T1" {
			t.Fatalf("committed %q", got[0].Body)
		}
	})
}

// gatedHandler holds the goroutine that logs msg, the first time, until
// the gate opens: a hook into the middle of what logs it.
type gatedHandler struct {
	slog.Handler
	msg           string
	once          *sync.Once
	entered, gate chan struct{}
}

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() {
			close(h.entered)
			<-h.gate
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h gatedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.Handler = h.Handler.WithAttrs(as)
	return h
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	h.Handler = h.Handler.WithGroup(name)
	return h
}

// TestPullOfRemovedMessagesRetriesImmediately: between removing a
// segment and dropping the queue entries that point into it, a pull whose
// entries all point into the removed segment must be answered as
// RocketMQ's PullMessageProcessor answers MESSAGE_WAS_REMOVING:
// PULL_RETRY_IMMEDIATELY, past them. PULL_NOT_FOUND says nothing new
// arrived: a pull carrying the suspend flag is then held for the long
// poll (up to 15 s), each time, 800 entries at a time.
func TestPullOfRemovedMessagesRetriesImmediately(t *testing.T) {
	var logs testutil.Buffer
	o := retentionOptions(t, &logs)
	g := gatedHandler{Handler: o.Logger.Handler(), msg: "removed commit-log segment",
		once: new(sync.Once), entered: make(chan struct{}), gate: make(chan struct{})}
	o.Store.Logger = slog.New(g)
	b := startBroker(t, o)
	var released sync.Once
	release := func() { released.Do(func() { close(g.gate) }) }
	t.Cleanup(release) // before the broker's Close, registered earlier
	c := dial(t, b)
	for i := range 5 {
		mustSend(t, c, "gone", 0, "", strconv.Itoa(i))
	}
	fill(t, b, 100) // the five are in the first segment, alone in their queue
	<-g.entered     // the first segment is out of the log; the queues not yet trimmed
	if b.store.MinPhysicalOffset() == 0 {
		t.Fatal("no segment was removed")
	}
	if lo, _ := b.store.QueueBounds("gone", 0); lo != 0 {
		t.Fatalf("queue min %d: the queue was trimmed already; the test proves nothing", lo)
	}
	r := pull(t, c, "gone", 0, 0, 0, "", 0)
	if r.Code != remoting.RespPullRetryImmediately || r.Ext("nextBeginOffset") != "5" {
		t.Errorf("pull of removed messages: code %d %q next %s, want PULL_RETRY_IMMEDIATELY (%d) next 5",
			r.Code, r.Remark, r.Ext("nextBeginOffset"), remoting.RespPullRetryImmediately)
	}
	release()
	waitFor(t, "the queue trimmed", func() bool {
		lo, _ := b.store.QueueBounds("gone", 0)
		return lo == 5
	})
	if r := pull(t, c, "gone", 0, 0, 0, "", 0); r.Code != remoting.RespPullOffsetMoved || r.Ext("nextBeginOffset") != "5" {
		t.Errorf("pull after the trim: code %d next %s, want PULL_OFFSET_MOVED next 5", r.Code, r.Ext("nextBeginOffset"))
	}
}
