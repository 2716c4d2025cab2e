package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// lockDir takes an exclusive lock (flock; LockFileEx on Windows) on <dir>/lock, which the store
// holds until Close, as RocketMQ's store locks its lock file. A second
// store on the directory, in this process or another, would take the
// first one's abort marker for a crash and recover, truncate and rewrite
// files a live store is writing: Open refuses it with ErrLocked instead.
// The kernel drops the lock when the process dies, so a crash leaves
// nothing to clean up.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: lock file: %w", err)
	}
	if err := fsutil.TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, fsutil.ErrLocked) {
			return nil, fmt.Errorf("%w: %s is locked (%s)", ErrLocked, dir, path)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return f, nil
}
