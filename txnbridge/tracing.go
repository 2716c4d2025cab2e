package txnbridge

import (
	"fmt"

	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// NewTracingInterceptor returns Temporal's OpenTelemetry tracing
// interceptor, which traces through the global tracer provider (a no-op
// unless the application installed an SDK) and carries the trace context
// in workflow, activity and signal headers. The plugin adds one to its
// workers; give one to a Temporal client's Interceptors (the starter's,
// the payer's, the one the check consumer signals through) so that the
// workflows it starts, and the signals it sends, continue the caller's
// trace:
//
//	ti, err := txnbridge.NewTracingInterceptor()
//	tc, err := client.Dial(client.Options{Interceptors: []interceptor.ClientInterceptor{ti}})
//
// A client's interceptors also reach the workers made from it: a worker
// whose client has one needs no other (Options.DisableTracing).
func NewTracingInterceptor() (interceptor.Interceptor, error) {
	ti, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{})
	if err != nil {
		return nil, fmt.Errorf("txnbridge: tracing interceptor: %w", err)
	}
	return ti, nil
}
