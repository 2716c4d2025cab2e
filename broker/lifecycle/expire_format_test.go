package lifecycle

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

// writeOldFormat writes e as the writer did before expiry entries were
// per batch: one expiry entry per event, keyed by write time and the
// event's sequence number, listing the event's keys.
func writeOldFormat(t *testing.T, r *Recorder, e Event, seq uint64, now time.Time) {
	t.Helper()
	v, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	b := r.db.NewBatch()
	defer b.Close()
	wt := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	var written []byte
	put := func(k, v []byte) {
		if err := b.Set(k, v, nil); err != nil {
			t.Fatal(err)
		}
		written = binary.AppendUvarint(written, uint64(len(k)))
		written = append(written, k...)
	}
	ek := binary.BigEndian.AppendUint64(idKey(prefixEvent, e.MsgID), uint64(e.Time.UnixNano()))
	put(binary.BigEndian.AppendUint64(ek, seq), v)
	for _, k := range strings.Fields(e.Keys) {
		put(append(idKey(prefixKey, k), e.MsgID...), wt)
	}
	if e.TraceID != "" {
		put(append(idKey(prefixTrace, e.TraceID), e.MsgID...), wt)
	}
	x := binary.BigEndian.AppendUint64([]byte{prefixExpiry}, uint64(now.UnixNano()))
	if err := b.Set(binary.BigEndian.AppendUint64(x, seq), written, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

// A database the per-event format wrote expires as before next to the
// per-batch entries: the old events and their keys go when they are due,
// a key an old event wrote and a new one wrote again stays with the new
// one, and nothing newer than the retention is touched.
func TestExpireReadsBothEntryFormats(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := open(t, clk)
	tid := "4bf92f3577b34da6a3ce929d0e0e4736"
	for i, id := range []string{"old1", "old2"} {
		writeOldFormat(t, r, Event{MsgID: id, Time: clk.now(), Kind: Stored, Keys: "k-" + id + " shared", TraceID: tid}, uint64(i+1), clk.now())
	}
	clk.add(30 * time.Minute)
	r.Record(Event{MsgID: "old2", Kind: Delivered, Keys: "k-old2"}) // old2's key written again, by the new format
	r.Record(Event{MsgID: "new", Kind: Stored, Keys: "shared", TraceID: tid})
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	clk.add(40 * time.Minute) // the old entries are 70 min old, the new ones 40
	if err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	if msgs, err := r.Lookup("old1", 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Lookup(old1) after its old-format entry expired: %+v, %v", msgs, err)
	}
	if msgs, _ := r.Lookup("k-old1", 0); len(msgs) != 0 {
		t.Fatalf("Lookup(k-old1): %+v, want nothing", msgs)
	}
	if msgs, _ := r.Lookup("k-old2", 0); len(msgs) != 1 || len(msgs[0].Events) != 1 || msgs[0].Events[0].Kind != Delivered {
		t.Fatalf("Lookup(k-old2): %+v, want old2's newer event only", msgs)
	}
	for _, q := range []string{"shared", tid} {
		if msgs, _ := r.Lookup(q, 0); len(msgs) != 1 || msgs[0].MsgID != "new" {
			t.Fatalf("Lookup(%s): %+v, want only new", q, msgs)
		}
	}
	clk.add(30 * time.Minute) // everything past the retention
	if err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := r.scan(nil, func(k, _ []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d keys left once every entry expired", n)
	}
}
