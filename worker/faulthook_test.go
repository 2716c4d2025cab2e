package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// The crash tests' fault hook lives in the test binary only: a worker
// process they start (the test binary run as the worker) with
// HALFBACK_KILL_AT=before:<activity type> or after:<activity type>
// SIGKILLs itself when an attempt of that activity starts, or right after
// one succeeded (before Temporal hears of it). The worker built from
// main.go has no such hook.

// killAtEnv names the environment variable of the crash-test fault hook:
// "before:<activity type>" or "after:<activity type>".
const killAtEnv = "HALFBACK_KILL_AT"

func init() {
	testInterceptors = func(log *slog.Logger) ([]interceptor.WorkerInterceptor, error) {
		hook, err := killHookFromEnv(os.Getenv(killAtEnv), log)
		if hook == nil || err != nil {
			return nil, err
		}
		return []interceptor.WorkerInterceptor{hook}, nil
	}
}

// killHook is a worker interceptor that SIGKILLs the worker process at one
// point of one activity type: when an attempt starts (before), or once an
// attempt returned without error and before its result reaches Temporal
// (after). Crash tests use it to stop a worker between a transactional
// step's half message and its end, the way a power cut would: no deferred
// call, no graceful stop.
type killHook struct {
	interceptor.WorkerInterceptorBase
	activityType string
	after        bool
	log          *slog.Logger
	kill         func() // SIGKILLs this process; tests replace it
}

// killHookFromEnv parses the value of HALFBACK_KILL_AT; "" means no hook.
func killHookFromEnv(v string, log *slog.Logger) (*killHook, error) {
	if v == "" {
		return nil, nil
	}
	when, typ, ok := strings.Cut(v, ":")
	if !ok || typ == "" || when != "before" && when != "after" {
		return nil, fmt.Errorf("%s=%q: want before:<activity type> or after:<activity type>", killAtEnv, v)
	}
	log.Warn("fault hook armed: this worker SIGKILLs itself", "at", v)
	return &killHook{activityType: typ, after: when == "after", log: log, kill: killSelf}, nil
}

// killSelf kills the process as SIGKILL does (TerminateProcess on Windows).
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
}

// InterceptActivity wraps every activity with the hook.
func (k *killHook) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &killActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, hook: k}
}

type killActivity struct {
	interceptor.ActivityInboundInterceptorBase
	hook *killHook
}

// ExecuteActivity runs the activity, killing the process before or after
// it when it is of the hook's type.
func (a *killActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	hit := info.ActivityType.Name == a.hook.activityType
	if hit && !a.hook.after {
		a.hook.fire(info, "before")
	}
	res, err := a.Next.ExecuteActivity(ctx, in)
	if hit && a.hook.after && err == nil {
		a.hook.fire(info, "after")
	}
	return res, err
}

func (k *killHook) fire(info activity.Info, when string) {
	k.log.Warn("fault hook: SIGKILL", "when", when, "activity", info.ActivityType.Name,
		"workflow", info.WorkflowExecution.ID, "attempt", info.Attempt)
	k.kill()
}
