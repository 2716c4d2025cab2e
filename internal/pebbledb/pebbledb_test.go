package pebbledb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"
)

// TestOpenCreatesAndReopens checks that Open creates a database, that a
// synced write survives a close and reopen, and that a path that is a
// file, not a directory, is an error.
func TestOpenCreatesAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("k"), []byte("v"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get([]byte("k"))
	if err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	closer.Close()

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(file); err == nil {
		db.Close()
		t.Fatal("Open on a regular file succeeded")
	}
}
