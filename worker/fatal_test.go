package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	_ "unsafe" // go:linkname, for the SDK's poll grace period below

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	temporalclient "go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// pollGraceEnv sets, in a worker process the tests start, how long the
// Temporal SDK retries a poll error it does not retry for ever
// (NamespaceNotFound, say) before it stops the worker: 2 minutes by
// default, which a test need not wait out.
const pollGraceEnv = "HALFBACK_E2E_POLL_GRACE"

// setRetryLongPollGracePeriod is the SDK's own test hook (internal, "for
// test use only, not safe to call with a running worker"): it is called
// in init, before any worker exists.
//
//go:linkname setRetryLongPollGracePeriod go.temporal.io/sdk/internal.SetRetryLongPollGracePeriod
func setRetryLongPollGracePeriod(period time.Duration)

func init() {
	if v := os.Getenv(pollGraceEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: %v", pollGraceEnv, v, err))
		}
		setRetryLongPollGracePeriod(d)
	}
}

// TestWorkerExitsWhenTemporalStopsIt runs the worker's main in a process
// of its own on a namespace of its own, then deletes the namespace: the
// SDK stops the Temporal worker on the polls' NamespaceNotFound (and the
// plugin's producer and check consumer with it), and the process must
// then exit with an error naming the cause, not wait on for a signal as
// if it still served the task queue.
func TestWorkerExitsWhenTemporalStopsIt(t *testing.T) {
	hostPort := devServer(t)
	cfg := testConfig(t, hostPort)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ns := fmt.Sprintf("halfback-fatal-%d", time.Now().UnixNano())
	nc, err := temporalclient.NewNamespaceClient(temporalclient.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tc, err := temporalclient.DialContext(ctx, temporalclient.Options{HostPort: hostPort, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	pollers := func() int {
		d, err := tc.DescribeTaskQueue(ctx, cfg.Temporal.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			return -1 // the frontend does not know the new namespace yet
		}
		return len(d.GetPollers())
	}
	// A worker started before the frontend knows the namespace would
	// fail its first polls, and stop for that.
	testutil.WaitFor(t, time.Minute, "the frontend to know the namespace", func() bool { return pollers() >= 0 })

	cmd, out, done := startWorkerProcess(t, cfg, "HALFBACK_TEMPORAL_NAMESPACE="+ns, pollGraceEnv+"=1ms")
	testutil.WaitFor(t, time.Minute, "the worker to poll its task queue", func() bool {
		return strings.Contains(out.String(), `msg="worker ready"`) && pollers() > 0
	})
	if _, err := tc.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	// The polls in flight end within the server's long-poll interval
	// (about a minute); the next ones fail.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("worker exited 0 after its Temporal worker stopped, want an error")
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("worker still running 3m after its namespace was deleted: its Temporal worker stopped, the process waits on")
	}
	for _, line := range []string{`Worker received non-retriable error`, `worker: the Temporal worker on task queue ` + cfg.Temporal.TaskQueue,
		`msg="namesrv: broker unregistered"`} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("worker output lacks %s", line)
		}
	}
}
