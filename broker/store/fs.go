package store

import (
	"os"
	"sync"
	"syscall"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// file is what the store needs of an open file. The commit log's durability
// rests on WriteAt and Sync; tests wrap it to inject faults.
type file interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes written data durable (fdatasync).
	Sync() error
	// Allocate makes the file size bytes long if it is shorter, reserving
	// blocks for it where the file system can (fallocate); the new bytes
	// read as zeros. It does not write them: see commitLog.fill.
	Allocate(size int64) error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	// Name is the path the file was opened with.
	Name() string
	Close() error
}

// fileSystem opens files. The default is the operating system.
type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

// Sync uses fdatasync: the data and the size, without timestamps. It
// holds the descriptor while it does (RawConn.Control), so that a Close
// from another goroutine (retention dropping a consume-queue file while a
// checkpoint syncs it) makes it fail rather than race, or sync whatever
// file reused the descriptor's number.
func (f osFile) Sync() error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for serr = syscall.Fdatasync(int(fd)); serr == syscall.EINTR; serr = syscall.Fdatasync(int(fd)) {
		}
	})
	if cerr == nil {
		cerr = serr
	}
	if cerr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: cerr}
	}
	return nil
}

// Allocate uses fallocate(2) (mode 0: allocate and extend). Where the
// file system does not support it, it only extends the file.
func (f osFile) Allocate(size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case nil:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			fi, err := f.Stat()
			if err != nil || fi.Size() >= size {
				return err
			}
			return f.Truncate(size)
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}

// directIOAlign is the alignment direct I/O (O_DIRECT) needs of a
// transfer's offset, length and memory: the logical block size, which is
// at most a page on the disks Linux supports.
const directIOAlign = 4096

// zeroPages returns zeroChunk bytes of zeros at a page-aligned address, as
// direct I/O needs: an anonymous mapping (Go's allocator does not promise
// the alignment), shared by every fill and never written after this. Each
// page is touched once so that it is a page of its own rather than the
// kernel's shared zero page, which some kernels will not pin for I/O. It
// returns nil if the mapping fails.
var zeroPages = sync.OnceValue(func() []byte {
	b, err := syscall.Mmap(-1, 0, zeroChunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	for i := 0; i < len(b); i += directIOAlign {
		b[i] = 0
	}
	return b
})

var (
	syncDir         = fsutil.SyncDir
	writeFileAtomic = fsutil.WriteFileAtomic
	removeAll       = os.RemoveAll
)
