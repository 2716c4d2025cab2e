package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const (
	directIO = 0 // macOS has F_NOCACHE, not an open flag
	syncOp   = "fullfsync"
)

// datasync asks the drive to write its cache too (F_FULLFSYNC); a file
// system that cannot gets a plain fsync, as os.File.Sync does.
func datasync(fd uintptr) error {
	for {
		_, err := unix.FcntlInt(fd, unix.F_FULLFSYNC, 0)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return fsync(fd)
		}
		return err
	}
}

func fsync(fd uintptr) error {
	for {
		if err := unix.Fsync(int(fd)); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func allocate(f *os.File, size int64) error { return extend(f, size) }
