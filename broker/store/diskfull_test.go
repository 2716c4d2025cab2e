package store

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// The store reports a disk fuller than DiskFullRatio within a check period
// and stops reporting it once the disk is under it again, logging both
// changes. Appends go on meanwhile: the broker, not the store, refuses
// producers, so that deliveries and transactions can still be written.
func TestDiskFullReported(t *testing.T) {
	o := testOptions(t, SyncFlush)
	var usage atomic.Value
	usage.Store(0.50)
	o.diskUsage = func() (float64, error) { return usage.Load().(float64), nil }
	var logs testutil.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := openStore(t, o)
	defer s.Close()
	if full, u := s.DiskFull(); full || u != 0.50 {
		t.Fatalf("DiskFull() at 50%% used = %v, %v; want false, 0.5", full, u)
	}

	usage.Store(0.95)
	testutil.WaitFor(t, 5*time.Second, "a full disk reported", func() bool { full, _ := s.DiskFull(); return full })
	if _, u := s.DiskFull(); u != 0.95 {
		t.Fatalf("DiskFull usage %v, want 0.95", u)
	}
	if _, err := s.Append(context.Background(), testMsg("t", 0, 1)); err != nil {
		t.Fatalf("append while the disk is full: %v (the store goes on)", err)
	}
	// The check logs a change after DiskFull reports it.
	testutil.WaitFor(t, 5*time.Second, "a log line on the change to full", func() bool {
		return strings.Contains(logs.String(), "disk full")
	})

	usage.Store(0.85)
	testutil.WaitFor(t, 5*time.Second, "the disk no longer reported full", func() bool { full, _ := s.DiskFull(); return !full })
	testutil.WaitFor(t, 5*time.Second, "a log line on the change back", func() bool {
		return strings.Contains(logs.String(), "disk no longer full")
	})
}

// DiskFullRatio 1 turns the report off: a disk can be no fuller than 100%.
func TestDiskFullRatioOneNeverFull(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.DiskFullRatio = 1
	o.diskUsage = func() (float64, error) { return 1, nil }
	s := openStore(t, o)
	defer s.Close()
	if full, u := s.DiskFull(); full || u != 1 {
		t.Fatalf("DiskFull() with DiskFullRatio 1 at 100%% used = %v, %v; want false, 1", full, u)
	}
}

// A disk fuller than DiskFullRatio gets its space back even when
// DiskMaxUsedRatio is higher (a configuration from before DiskFullRatio,
// say diskMaxUsedRatio 0.95): retention removes segments early above
// either, as RocketMQ cleans at once above diskSpaceWarningLevelRatio.
// Otherwise the broker refuses sends and nothing frees the space but
// FileReserved, days later.
func TestFullDiskRetentionBelowDiskMaxUsedRatio(t *testing.T) {
	o := testOptions(t, SyncFlush)
	o.DeferRetention = true
	o.DiskMaxUsedRatio = 0.95 // DiskFullRatio keeps its default, 0.90
	var st atomic.Pointer[Store]
	o.diskUsage = func() (float64, error) {
		if s := st.Load(); s != nil && s.MinPhysicalOffset() > 0 {
			return 0.80, nil // a segment removed: no longer full
		}
		return 0.92, nil
	}
	s := openStore(t, o)
	st.Store(s)
	defer s.Close()
	fillSegments(t, s, 100)
	if full, _ := s.DiskFull(); !full {
		t.Fatal("a disk 92% used with DiskFullRatio 0.90 is not reported full")
	}
	mustRetain(t, s)
	if s.MinPhysicalOffset() != o.SegmentSize {
		t.Fatalf("min offset %d after retention on a full disk (92%% used, DiskFullRatio 0.90, DiskMaxUsedRatio 0.95), want %d: "+
			"nothing frees the space while sends are refused", s.MinPhysicalOffset(), o.SegmentSize)
	}
	s.checkDisk()
	if full, _ := s.DiskFull(); full {
		t.Fatal("the disk is still reported full once retention freed space")
	}
}

// Disk use is counted as df's Use% (RocketMQ's too): reserved blocks are
// neither used nor available.
func TestUsedFraction(t *testing.T) {
	for _, c := range []struct {
		blocks, free, avail uint64
		want                float64
	}{
		{100, 100, 100, 0},
		{100, 50, 50, 0.5},
		{100, 50, 45, 50.0 / 95}, // 5 blocks reserved
		{100, 90, 25, 10.0 / 35}, // most free blocks reserved: a VM disk here
		{100, 10, 0, 1},          // only reserved blocks left: full for the broker
		{0, 0, 0, 0},
	} {
		if got := usedFraction(c.blocks, c.free, c.avail); got != c.want {
			t.Errorf("usedFraction(%d, %d, %d) = %v, want %v", c.blocks, c.free, c.avail, got, c.want)
		}
	}
}
