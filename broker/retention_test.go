package broker

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

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
