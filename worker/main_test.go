package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// TestWorkerStopsOnSIGTERM runs the worker's main in a process of its
// own, with its embedded broker, and stops it with SIGTERM: it must stop
// the Temporal worker, the clients, the database and the broker, and exit
// 0.
func TestWorkerStopsOnSIGTERM(t *testing.T) {
	cfg := testConfig(t, devServer(t))
	cmd, out, done := startWorkerProcess(t, cfg)
	testutil.WaitFor(t, time.Minute, "the worker to be ready", func() bool {
		return strings.Contains(out.String(), `msg="worker ready"`)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("worker still running 30s after SIGTERM")
	}
	for _, line := range []string{`msg="stopping worker"`, `msg="Stopped Worker"`, `msg="namesrv: broker unregistered"`, `msg="worker stopped"`} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("worker output lacks %s", line)
		}
	}
}
