package config_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/halfbackmq/halfback/config"
)

func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "halfback-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	_ = os.WriteFile(path, []byte("store:\n  flushType: async\n  segmentSize: -5\n"), 0o644)

	_, err := config.Load(path)
	fmt.Println(err)
	// Output: config: store.segmentSize: must not be negative (got -5)
}
