package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const (
	directIO = unix.O_DIRECT
	syncOp   = "fdatasync"
)

func datasync(fd uintptr) error {
	for {
		if err := unix.Fdatasync(int(fd)); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// allocate uses fallocate(2) (mode 0: allocate and extend); where the file
// system does not support it, it only extends the file.
func allocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return extend(f, size)
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}
