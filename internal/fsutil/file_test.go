package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestTryLockIsExclusiveAcrossOpenFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	first, second := open(), open()
	defer second.Close()
	if err := TryLock(first); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if err := TryLock(second); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open file of a locked file: %v, want ErrLocked", err)
	}
	first.Close() // drops the lock
	if err := TryLock(second); err != nil {
		t.Fatalf("lock after the holder closed: %v", err)
	}
}

func TestDataSyncOfAClosedFileFails(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := DataSync(f); err != nil {
		t.Fatalf("sync: %v", err)
	}
	f.Close()
	err = DataSync(f)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != f.Name() {
		t.Fatalf("sync of a closed file: %v, want a PathError naming the file", err)
	}
}

func TestAllocateExtendsWithZerosAndNeverShrinks(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("head"); err != nil {
		t.Fatal(err)
	}
	if err := Allocate(f, 1<<16); err != nil {
		t.Fatal(err)
	}
	if err := Allocate(f, 10); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1<<16 || string(b[:4]) != "head" {
		t.Fatalf("file is %d bytes starting %q, want 65536 starting \"head\"", len(b), b[:min(len(b), 4)])
	}
	for i, c := range b[4:] {
		if c != 0 {
			t.Fatalf("byte %d is %d, want 0", i+4, c)
		}
	}
}

func TestSpace(t *testing.T) {
	sp, err := Space(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if sp.Total == 0 || sp.Free > sp.Total || sp.Avail > sp.Free {
		t.Fatalf("space %+v: want Avail <= Free <= Total and Total > 0", sp)
	}
	if _, err := Space(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("space of a missing path: %v, want ErrNotExist", err)
	}
}
