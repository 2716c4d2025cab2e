package main

import (
	"os/exec"
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
	stopWorkerProcess(t, cmd, done, 30*time.Second)
	for _, line := range []string{`msg="stopping worker"`, `msg="Stopped Worker"`, `msg="namesrv: broker unregistered"`, `msg="worker stopped"`} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("worker output lacks %s", line)
		}
	}
}

// stopWorkerProcess sends the worker process SIGTERM and waits at most
// within for it to exit 0.
func stopWorkerProcess(t *testing.T, cmd *exec.Cmd, done <-chan error, within time.Duration) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("worker still running %v after SIGTERM", within)
	}
}
