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
	if !strings.Contains(logs.String(), "disk full") {
		t.Fatalf("no log line on the change to full:\n%s", logs.String())
	}

	usage.Store(0.85)
	testutil.WaitFor(t, 5*time.Second, "the disk no longer reported full", func() bool { full, _ := s.DiskFull(); return !full })
	if !strings.Contains(logs.String(), "disk no longer full") {
		t.Fatalf("no log line on the change back:\n%s", logs.String())
	}
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
