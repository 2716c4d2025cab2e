package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const (
	directIO = 0 // FreeBSD's O_DIRECT is advisory; the store does not rely on it
	syncOp   = "fdatasync"
)

// datasync is fsync: x/sys has no fdatasync for FreeBSD.
func datasync(fd uintptr) error {
	for {
		if err := unix.Fsync(int(fd)); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func allocate(f *os.File, size int64) error { return extend(f, size) }
