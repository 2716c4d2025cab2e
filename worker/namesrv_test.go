package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// externalConfig is testConfig for a worker of an external broker whose
// name server is at addr, where nothing listens yet.
func externalConfig(t *testing.T, hostPort string) (cfg *config.Config, addr string) {
	t.Helper()
	addr = testutil.FreeAddr(t)
	cfg = testConfig(t, hostPort)
	cfg.Worker.EmbeddedBroker = false
	cfg.Broker.NamesrvAddr = addr
	return cfg, addr
}

// waitForWaitingLine waits until the worker says it is not ready and
// names the name server it waits for, or says it is ready; it fails the
// test if it said it is ready.
func waitForWaitingLine(t *testing.T, out *testutil.Buffer, addr string) {
	t.Helper()
	testutil.WaitFor(t, time.Minute, "a line naming the name server the worker waits for, or a ready line", func() bool {
		return strings.Contains(out.String(), `msg="worker ready"`) ||
			strings.Contains(out.String(), `msg="worker not ready: no name server answers; still trying" namesrv=[`+addr+`]`)
	})
	if strings.Contains(out.String(), `msg="worker ready"`) {
		t.Fatalf("worker ready while no name server answers at %s", addr)
	}
}

// With an external broker the worker says "worker ready" (what people and
// scripts/demo.sh wait for) only once its name server answers; until then
// it says, naming the address, that it is still trying.
func TestWorkerReadyOnlyOnceTheNameServerAnswers(t *testing.T) {
	hostPort := devServer(t)
	cfg, addr := externalConfig(t, hostPort)
	cmd, out, done := startWorkerProcess(t, cfg)
	waitForWaitingLine(t, out, addr)

	// The broker comes, with its name server on addr.
	bcfg := testConfig(t, hostPort)
	bcfg.Namesrv.Embedded = true
	bcfg.Namesrv.ListenAddr = addr
	b, err := startBroker(context.Background(), bcfg, testLogger(t, "broker"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testutil.WaitFor(t, time.Minute, "the worker to be ready once the name server answers", func() bool {
		return strings.Contains(out.String(), `msg="worker ready"`)
	})
	stopWorkerProcess(t, cmd, done, 30*time.Second)
}

// A stop signal while the worker waits for its name server stops it
// promptly, as any stop: exit 0, having stopped what it started.
func TestWorkerStopsWhileWaitingForTheNameServer(t *testing.T) {
	cfg, addr := externalConfig(t, devServer(t))
	cmd, out, done := startWorkerProcess(t, cfg)
	waitForWaitingLine(t, out, addr)
	stopWorkerProcess(t, cmd, done, 30*time.Second)
	for _, line := range []string{`msg="stopping worker"`, `msg="Stopped Worker"`, `msg="worker stopped"`} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("worker output lacks %s", line)
		}
	}
	if strings.Contains(out.String(), `msg="worker ready"`) {
		t.Errorf("worker said it was ready, with no name server at %s", addr)
	}
}
