package store

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fillSegments appends n messages of ~9 KB to topic "ret" queue 0.
func fillSegments(t *testing.T, s *Store, n int) []AppendResult {
	t.Helper()
	var res []AppendResult
	for i := 0; i < n; i++ {
		m := testMsg("ret", 0, i)
		m.Body = append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte("r"), 9000)...)
		res = append(res, mustAppend(t, s, m))
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	return res
}

func TestRetentionByAge(t *testing.T) {
	o := testOptions(t, SyncFlush)
	clock := &fakeClock{now: time.Now()}
	o.Now = clock.Now
	o.FileReserved = time.Hour
	o.diskUsage = func() (float64, error) { return 0.10, nil }
	s := openStore(t, o)
	defer func() { s.Close() }()   // the store reopened below, too
	res := fillSegments(t, s, 100) // ~4 segments of 256 KiB
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if s.MinPhysicalOffset() != 0 {
		t.Fatalf("young segments were removed: min offset %d", s.MinPhysicalOffset())
	}
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, o.Dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments left, want only the active one", len(segs))
	}
	minPhys := s.MinPhysicalOffset()
	if minPhys != res[len(res)-1].PhysicalOffset-res[len(res)-1].PhysicalOffset%o.SegmentSize {
		t.Fatalf("min offset %d is not the active segment's base", minPhys)
	}
	lo, hi := s.QueueBounds("ret", 0)
	var firstKept int
	for firstKept = range res {
		if res[firstKept].PhysicalOffset >= minPhys {
			break
		}
	}
	if lo != int64(firstKept) || hi != 100 {
		t.Fatalf("queue bounds [%d,%d), want [%d,100)", lo, hi, firstKept)
	}
	r, err := s.GetMessages("ret", 0, 0, GetOptions{})
	if err != nil || r.Status != OffsetTooSmall || r.NextBeginOffset != lo {
		t.Fatalf("pull from 0 after retention = %v next %d (%v), want OFFSET_TOO_SMALL next %d", r.Status, r.NextBeginOffset, err, lo)
	}
	got := readAll(t, s, "ret", 0)
	if len(got) != 100-firstKept || string(got[0].Body[:4]) != fmt.Sprintf("%04d", firstKept) {
		t.Fatalf("read %d records starting %q after retention", len(got), got[0].Body[:4])
	}
	if offs, _ := s.QueryByKey("ret", "order-1", 0, 0, 5); len(offs) != 0 {
		t.Fatalf("index still points into a removed segment: %v", offs)
	}
	if offs, _ := s.QueryByKey("ret", "order-99", 0, 0, 5); len(offs) != 1 {
		t.Fatalf("index lost a kept key: %v", offs)
	}
	if _, err := s.ReadMessage(res[0].PhysicalOffset); err == nil {
		t.Fatal("a record of a removed segment is still readable")
	}
	// The bounds survive a restart.
	s.Close()
	s = openStore(t, o)
	if lo2, hi2 := s.QueueBounds("ret", 0); lo2 != lo || hi2 != hi {
		t.Fatalf("bounds after restart [%d,%d), want [%d,%d)", lo2, hi2, lo, hi)
	}
}

func TestRetentionByDiskWatermark(t *testing.T) {
	o := testOptions(t, SyncFlush)
	var usage atomic.Value
	usage.Store(0.10)
	o.diskUsage = func() (float64, error) { return usage.Load().(float64), nil }
	s := openStore(t, o)
	defer s.Close()
	fillSegments(t, s, 100)
	before := len(segmentFiles(t, o.Dir))
	// Above the 85% watermark: each removal "frees" space until under it.
	usage.Store(0.90)
	removed := 0
	o2 := s.opts.diskUsage
	s.opts.diskUsage = func() (float64, error) {
		u, err := o2()
		if removed > 0 {
			u = 0.80
		}
		removed++
		return u, err
	}
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if after := len(segmentFiles(t, o.Dir)); after != before-1 {
		t.Fatalf("segments %d -> %d; want exactly the oldest removed", before, after)
	}
	if s.MinPhysicalOffset() != o.SegmentSize {
		t.Fatalf("min offset %d, want %d", s.MinPhysicalOffset(), o.SegmentSize)
	}
}
