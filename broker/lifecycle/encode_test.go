package lifecycle

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// marshalReference is e as encoding/json writes it without HTML escaping.
func marshalReference(t *testing.T, e *Event) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(e)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// checkAppendEvent fails t unless appendEvent writes e byte for byte as
// encoding/json does (without HTML escaping), or both refuse it.
func checkAppendEvent(t *testing.T, e *Event) {
	t.Helper()
	want, werr := marshalReference(t, e)
	got, gerr := appendEvent([]byte("prefix"), e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("appendEvent(%+v) error %v, encoding/json's %v", e, gerr, werr)
	}
	if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("appendEvent(%+v)\n = %s\nencoding/json\n   %s", e, got[len("prefix"):], want)
	}
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	odd := time.FixedZone("odd", -(3*3600 + 15*60 + 7)) // seconds in the offset
	ts := time.Date(2026, 11, 25, 1, 2, 3, 456789000, time.UTC)
	full := Event{
		MsgID: "7F00000100012A9F0000000000000001", Time: ts, Kind: DeadLettered,
		Topic: "%DLQ%g", Queue: -1, Offset: 1 << 62, OffsetMsgID: "0A000001", Flush: "SYNC_FLUSH",
		Level: 18, DueAt: ts.Add(time.Hour), From: FromConsumer, Check: 15, Group: "g",
		Reconsume: 16, Keys: "order-42 user-7", Tag: "<a&b>", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Detail: "line\n\"quoted\" \\ \x00 \u2028 \xff é",
	}
	for _, e := range []Event{
		{},
		{MsgID: "m", Time: ts},
		full,
		{MsgID: "m", Time: ts.In(east), DueAt: ts.In(odd), Level: -1, Check: -2, Reconsume: -3},
		{MsgID: "m", Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{MsgID: "m", Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{MsgID: "m", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, // refused by both
		{MsgID: "m", Time: ts, DueAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{MsgID: "m", Time: ts.In(time.FixedZone("far", 24*3600))},
		{MsgID: "m", Time: ts.In(time.FixedZone("near", 24*3600-60))},
		{MsgID: "m", Time: time.Now()}, // a monotonic reading and the local zone
	} {
		checkAppendEvent(t, &e)
	}
}

func FuzzAppendEventMatchesEncodingJSON(f *testing.F) {
	f.Add("m", int64(1_764_000_000_123_456_789), 0, "stored", "orders", int32(3), int64(9), "", "SYNC_FLUSH", 0, int64(0), "", 0, "", 0, "k1 k2", "tag", "", "")
	f.Add("\xff<>&", int64(-9_000_000_000_000_000_000), -720, "x\u2028", "\x00", int32(-1), int64(-1), "o", "", -3, int64(1), "admin", 2, "g", 16, " ", "\t", "t", "d\"\\")
	f.Fuzz(func(t *testing.T, id string, nanos int64, zoneMin int, kind, topic string, queue int32, offset int64,
		offMsgID, flush string, level int, dueNanos int64, from string, check int, group string, reconsume int,
		keys, tag, traceID, detail string) {
		zone := time.FixedZone("z", zoneMin%(26*60)*60)
		e := Event{MsgID: id, Time: time.Unix(0, nanos).In(zone), Kind: Kind(kind), Topic: topic, Queue: queue,
			Offset: offset, OffsetMsgID: offMsgID, Flush: flush, Level: level, From: from, Check: check,
			Group: group, Reconsume: reconsume, Keys: keys, Tag: tag, TraceID: traceID, Detail: detail}
		if dueNanos != 0 {
			e.DueAt = time.Unix(dueNanos, 0).UTC() // seconds: years far outside 0-9999 too
		}
		checkAppendEvent(t, &e)
	})
}
