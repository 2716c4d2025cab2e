// Package pebbledb opens the Pebble databases the store's key index and the
// delay scheduler's timer index live in, with one set of options.
package pebbledb

import "github.com/cockroachdb/pebble"

// Open opens (or creates) a Pebble database in dir. Pebble's informational
// log lines are dropped; its errors reach the caller as returned errors.
func Open(dir string) (*pebble.DB, error) {
	return pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}

func (quietLogger) Fatalf(format string, args ...interface{}) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
