package fsutil

import (
	"errors"
	"os"
	"path/filepath"
)

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return syncDir(d)
}

// WriteFileAtomic replaces path with data: it writes a temporary file,
// fsyncs it, renames it over path and fsyncs the directory, so a crash
// leaves either the old or the new content.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// returns the parent of each directory it created, deepest first: the
// directories to fsync for the new ones to survive a power loss.
func MkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		up := filepath.Dir(d)
		if up == d {
			break
		}
		d = up
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	parents := make([]string, len(missing))
	for i, d := range missing {
		parents[i] = filepath.Dir(d)
	}
	return parents, nil
}

// MkdirAllSync is MkdirAll followed by an fsync of each created
// directory's parent, so that the new directories survive a power loss
// (a file later made durable in one of them is otherwise lost with it).
// When dir exists already its parent is synced all the same: an earlier
// call may have created it and been killed before its sync.
func MkdirAllSync(dir string) error {
	parents, err := MkdirAll(dir)
	if err != nil {
		return err
	}
	if len(parents) == 0 {
		parents = []string{filepath.Dir(dir)}
	}
	for _, p := range parents {
		if err := SyncDir(p); err != nil {
			return err
		}
	}
	return nil
}
