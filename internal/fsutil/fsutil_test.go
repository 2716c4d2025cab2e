package fsutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for _, want := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if err := WriteFileAtomic(filepath.Join(t.TempDir(), "missing", "f"), nil); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// MkdirAll names the parent of each directory it created, deepest first
// (the directories whose entries changed), and none for an existing one;
// MkdirAllSync creates them too.
func TestMkdirAllReturnsTheChangedParents(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	parents, err := MkdirAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a", "b"), filepath.Join(root, "a"), root}
	if !slices.Equal(parents, want) {
		t.Fatalf("MkdirAll(%s) = %v, want %v", dir, parents, want)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s not created: %v", dir, err)
	}
	if parents, err := MkdirAll(dir); err != nil || len(parents) != 0 {
		t.Fatalf("MkdirAll of an existing directory = %v, %v; want none", parents, err)
	}
	if err := MkdirAllSync(filepath.Join(dir, "d", "e")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "d", "e")); err != nil || !fi.IsDir() {
		t.Fatalf("MkdirAllSync did not create the directory: %v", err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllSync(filepath.Join(file, "x")); err == nil {
		t.Fatal("MkdirAllSync under a regular file succeeded")
	}
}
