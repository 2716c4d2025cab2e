package txn

import (
	"context"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/pebbledb"
	"github.com/halfbackmq/halfback/message"
)

// scenario leaves one transaction of each kind: committed, rolled back,
// pending with one check, parked.
func scenario(t *testing.T, r *rig) {
	t.Helper()
	c, rb := r.half("committed"), r.half("rolled-back")
	r.half("parked")
	if _, err := r.end(c, Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := r.end(rb, Rollback); err != nil {
		t.Fatal(err)
	}
	r.useUpChecks()
	r.half("pending")
	r.clock.Advance(testOpts.Timeout)
	r.svc.checkRound()
}

func liveState(r *rig) map[string]string {
	out := map[string]string{}
	for _, x := range r.svc.List(0, 0) {
		out[x.TransactionID] = x.StatusName + "/" + string(rune('0'+x.Checks))
	}
	return out
}

func TestStateSurvivesRestart(t *testing.T) {
	r := newRig(t)
	scenario(t, r)
	want := map[string]string{"parked": "parked/3", "pending": "pending/1"}
	if got := liveState(r); !mapsEqual(got, want) {
		t.Fatalf("before restart %v", got)
	}
	r.reopen()
	if got := liveState(r); !mapsEqual(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
	if got := r.waitDelivered(1); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("delivered %v", got)
	}
}

func TestStateIsRebuiltFromTheLogAlone(t *testing.T) {
	r := newRig(t)
	scenario(t, r)
	r.close()
	if err := os.RemoveAll(r.dir + "/txn"); err != nil {
		t.Fatal(err)
	}
	r.open()
	// Check counts are not in the log: the rebuilt pending one starts over,
	// the parked one stays parked (its parked copy is in the log).
	got := liveState(r)
	if got["parked"] != "parked/0" || got["pending"] != "pending/0" || len(got) != 2 {
		t.Fatalf("rebuilt state %v", got)
	}
	var c EndResult
	for _, x := range []string{"committed", "rolled-back"} {
		if _, ok := r.svc.Get(x, -1); ok {
			t.Fatalf("resolved %s found as live", x)
		}
	}
	offs := mustFind(t, r, "committed")
	m, err := r.st.ReadMessage(offs)
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := r.svc.Get("", m.PreparedTransactionOffset); !ok || x.Status != Committed {
		t.Fatalf("rebuilt committed transaction %+v %v (%v)", x, ok, c)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Under AsyncFlush the store fsyncs on its own interval. The checkpoint
// syncs states that follow records the store wrote (a commit's message),
// so it first makes those records durable: otherwise an OS crash could
// keep "committed" and lose the message.
func TestCheckpointMakesRecordsDurable(t *testing.T) {
	r := newRigWith(t, func(o *store.Options) {
		o.FlushType, o.FlushInterval, o.CheckpointInterval = store.AsyncFlush, time.Hour, time.Hour
	})
	h := r.half("a")
	if _, err := r.end(h, Commit); err != nil {
		t.Fatal(err)
	}
	end := r.st.MaxPhysicalOffset() // past the commit's message and op record
	if d := r.st.DurableOffset(); d >= end {
		t.Fatalf("the commit is durable (%d >= %d) before any checkpoint: the test shows nothing", d, end)
	}
	if err := r.svc.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if d := r.st.DurableOffset(); d < end {
		t.Fatalf("checkpoint synced the committed state while its records were not durable (durable end %d, written %d)", d, end)
	}
}

// Options.CheckpointInterval "bounds the replay after a crash": with no
// transaction activity the checkpoint still moves "covered", the final one
// of a clean Close too, so the next Open does not replay (read and decode)
// every record stored since the last transaction change or the last Open.
func TestCleanCloseCoversRecordsWithoutTransactions(t *testing.T) {
	r := newRig(t)
	body := []byte(strings.Repeat("x", 1024))
	for range 200 {
		if _, err := r.st.Append(context.Background(), &message.Message{Topic: "other", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	end := r.st.MaxPhysicalOffset()
	r.close() // clean: final checkpoint
	db, err := pebbledb.Open(r.dir + "/txn")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(keyCovered)
	if err != nil {
		t.Fatal(err)
	}
	covered := int64(binary.BigEndian.Uint64(v))
	closer.Close()
	if covered < end {
		t.Fatalf("after a clean Close covered is %d, the log ends at %d: the next Open replays %d bytes of non-transaction records",
			covered, end, end-covered)
	}
}
