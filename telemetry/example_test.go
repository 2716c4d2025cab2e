package telemetry_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"

	"github.com/halfbackmq/halfback/telemetry"
)

// With exporter none and no metrics address nothing runs: the global
// providers are the no-op ones.
func ExampleSetup() {
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Exporter: telemetry.ExporterNone})
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(context.Background())
	_, span := otel.Tracer("example").Start(context.Background(), "send orders")
	fmt.Println("recording:", span.IsRecording(), "metrics:", telemetry.MetricsEnabled(nil), "endpoint:", tel.MetricsAddr() != "")
	span.End()
	// Output: recording: false metrics: false endpoint: false
}
