package main

import (
	"bytes"
	"strings"
	"testing"
)

// `go run ./worker prod.yaml` (the config file given without --config)
// is refused naming the argument; it was ignored, and the worker ran with
// ./config.yaml or the defaults. (A bad environment value would stop run
// at config loading, past the argument.)
func TestWorkerRejectsArguments(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("HALFBACK_STORE_FLUSHTYPE", "bogus")
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"prod.yaml"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "prod.yaml") {
		t.Fatalf("run(prod.yaml) = %v; want an error about the unexpected argument prod.yaml", err)
	}
}
