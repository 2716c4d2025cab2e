package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/halfbackmq/halfback/message"
)

func TestScanVisitsEveryRecordAcrossSegments(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.SegmentSize = 4 << 20
	o.MaxMessageSize = 2 << 20
	s := openStore(t, o)
	var offs []int64
	for i := range 300 {
		m := testMsg("scan", int32(i%3), i)
		if i%50 == 7 {
			m.Body = bytes.Repeat([]byte{byte(i)}, 3<<19) // 1.5 MiB: larger than one scan read
		}
		offs = append(offs, mustAppend(t, s, m).PhysicalOffset)
	}
	if offs[len(offs)-1] < 2*o.SegmentSize {
		t.Fatalf("records fill only %d bytes: the test needs several segments", offs[len(offs)-1])
	}
	var got []int64
	end, err := s.Scan(0, func(e *message.Ext) error {
		got = append(got, e.CommitLogOffset)
		return nil
	})
	if err != nil || end != s.MaxPhysicalOffset() {
		t.Fatalf("Scan: end %d (log end %d), %v", end, s.MaxPhysicalOffset(), err)
	}
	if len(got) != len(offs) {
		t.Fatalf("scanned %d records, stored %d", len(got), len(offs))
	}
	for i := range offs {
		if got[i] != offs[i] {
			t.Fatalf("record %d at %d, want %d", i, got[i], offs[i])
		}
	}
	// From the middle, and stopped early.
	var n int
	stop, err := s.Scan(offs[100], func(e *message.Ext) error {
		if n == 10 {
			return ErrStopScan
		}
		if e.CommitLogOffset != offs[100+n] {
			t.Fatalf("from the middle: record %d at %d", n, e.CommitLogOffset)
		}
		n++
		return nil
	})
	if err != nil || stop != offs[110] {
		t.Fatalf("stopped scan: at %d want %d, %v", stop, offs[110], err)
	}
	boom := errors.New("boom")
	if _, err := s.Scan(0, func(*message.Ext) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
	if _, err := s.Scan(offs[1]+3, func(*message.Ext) error { return nil }); err == nil {
		t.Fatal("scan from inside a record succeeded")
	}
}
