package fsutil

import (
	"errors"
	"os"
)

// ErrLocked is TryLock's answer when another open file, in this process or
// another, holds the lock.
var ErrLocked = errors.New("fsutil: file is locked")

// DirectIO is the open flag for direct I/O (O_DIRECT): writes bypass the
// page cache and need block-aligned offsets, lengths and memory. It is 0
// where the system has no such flag, and callers then write through the
// page cache.
const DirectIO = directIO

// DataSync makes f's written data and size durable: fdatasync on Linux,
// F_FULLFSYNC on macOS (its fsync leaves data in the drive's cache),
// FlushFileBuffers on Windows. It holds the descriptor while it does
// (RawConn.Control), so that a Close from another goroutine makes it fail
// rather than race, or sync whatever file reused the descriptor's number.
func DataSync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &os.PathError{Op: syncOp, Path: f.Name(), Err: err}
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = datasync(fd) }); err != nil {
		serr = err
	}
	if serr != nil {
		return &os.PathError{Op: syncOp, Path: f.Name(), Err: serr}
	}
	return nil
}

// Allocate makes f size bytes long if it is shorter, reserving the blocks
// where the system can (fallocate on Linux; elsewhere the file is only
// extended). The new bytes read as zeros.
func Allocate(f *os.File, size int64) error {
	return allocate(f, size)
}

// extend makes f size bytes long if it is shorter.
func extend(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() >= size {
		return err
	}
	return f.Truncate(size)
}

// TryLock takes an exclusive lock on f without waiting: flock on Unix,
// LockFileEx on Windows. Two open files contend for it, in one process as
// in two, and the system drops it when f is closed or the process dies.
// It returns ErrLocked when the lock is held elsewhere.
func TryLock(f *os.File) error {
	return tryLock(f)
}

// DiskSpace is a file system's size and free space, in any one unit.
type DiskSpace struct {
	Total uint64 // the file system's size
	Free  uint64 // free, including what is reserved for the administrator
	Avail uint64 // free to an unprivileged process
}

// Space returns the space of the file system holding path.
func Space(path string) (DiskSpace, error) {
	return space(path)
}
