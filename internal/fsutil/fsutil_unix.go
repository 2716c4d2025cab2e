//go:build linux || darwin || freebsd

package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func tryLock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrLocked
		}
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
}

func space(path string) (DiskSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return DiskSpace{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	// Bavail is signed on FreeBSD (it goes below zero when the reserve is
	// in use).
	return DiskSpace{Total: st.Blocks, Free: st.Bfree, Avail: uint64(max(int64(st.Bavail), 0))}, nil
}

// syncDir fsyncs an open directory.
func syncDir(d *os.File) error { return d.Sync() }
