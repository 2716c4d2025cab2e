package pebbledb

import "github.com/cockroachdb/pebble"

// MemTableSize is Pebble's write buffer. The default (4 MiB) flushes and
// compacts so often under an index write per message that compactions took
// a quarter of the CPU in `halfback bench store`; 64 MiB made async appends
// 25-35% faster there.
const MemTableSize = 64 << 20

// Open opens (or creates) a Pebble database in dir. Pebble's informational
// log lines are dropped; its errors reach the caller as returned errors.
func Open(dir string) (*pebble.DB, error) {
	return pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, MemTableSize: MemTableSize})
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}

func (quietLogger) Fatalf(format string, args ...interface{}) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
