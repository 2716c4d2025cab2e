package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
)

func TestKillHookFromEnv(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if h, err := killHookFromEnv("", log); h != nil || err != nil {
		t.Errorf(`"": hook %v, err %v; want none`, h, err)
	}
	for _, bad := range []string{"CreateOrderLocal", "during:X", "before:", ":X"} {
		if _, err := killHookFromEnv(bad, log); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	h, err := killHookFromEnv("after:txnbridge.SendHalf", log)
	if err != nil || h.activityType != "txnbridge.SendHalf" || !h.after {
		t.Errorf("after:txnbridge.SendHalf: %+v, %v", h, err)
	}
}

// TestKillHookFires runs activities through the hook with the kill
// replaced by a recorder: it fires only for its activity type, before the
// attempt or after a successful one.
func TestKillHookFires(t *testing.T) {
	errFailed := errors.New("failed")
	for _, tt := range []struct {
		at       string
		activity string
		fails    bool
		want     []string // events in order
	}{
		{"before:A", "A", false, []string{"kill", "run"}},
		{"after:A", "A", false, []string{"run", "kill"}},
		{"after:A", "A", true, []string{"run"}}, // a failed attempt told Temporal nothing worth dying for
		{"before:A", "B", false, []string{"run"}},
	} {
		var events []string
		h, err := killHookFromEnv(tt.at, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		h.kill = func() { events = append(events, "kill") }
		var s testsuite.WorkflowTestSuite
		s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		env := s.NewTestActivityEnvironment()
		env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{h}})
		env.RegisterActivityWithOptions(func(context.Context) error {
			events = append(events, "run")
			if tt.fails {
				return errFailed
			}
			return nil
		}, activity.RegisterOptions{Name: tt.activity})
		_, _ = env.ExecuteActivity(tt.activity)
		if !slices.Equal(events, tt.want) {
			t.Errorf("%s, activity %s, fails %v: events %v, want %v", tt.at, tt.activity, tt.fails, events, tt.want)
		}
	}
}
