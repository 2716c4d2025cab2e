package fsutil

import (
	"errors"
	"math"
	"os"

	"golang.org/x/sys/windows"
)

const (
	directIO = 0
	syncOp   = "FlushFileBuffers"
)

func datasync(fd uintptr) error { return windows.FlushFileBuffers(windows.Handle(fd)) }

func allocate(f *os.File, size int64) error { return extend(f, size) }

func tryLock(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, math.MaxUint32, math.MaxUint32, &ol)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return ErrLocked
	}
	return &os.PathError{Op: "LockFileEx", Path: f.Name(), Err: err}
}

func space(path string) (DiskSpace, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return DiskSpace{}, &os.PathError{Op: "GetDiskFreeSpaceEx", Path: path, Err: err}
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return DiskSpace{}, &os.PathError{Op: "GetDiskFreeSpaceEx", Path: path, Err: err}
	}
	return DiskSpace{Total: total, Free: free, Avail: avail}, nil
}

// syncDir does nothing: NTFS journals directory entries itself, and
// Windows refuses FlushFileBuffers on a directory opened for reading.
func syncDir(*os.File) error { return nil }
