package store

import (
	"os"
	"sync"
	"unsafe"

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

// Sync uses fdatasync on Linux (the data and the size, without
// timestamps), F_FULLFSYNC on macOS: fsutil.DataSync, which holds the
// descriptor while it syncs, so that a Close from another goroutine
// (retention dropping a consume-queue file while a checkpoint syncs it)
// makes it fail rather than race.
func (f osFile) Sync() error { return fsutil.DataSync(f.File) }

// Allocate uses fallocate(2) where there is one (fsutil.Allocate); where the
// file system does not support it, it only extends the file.
func (f osFile) Allocate(size int64) error { return fsutil.Allocate(f.File, size) }

// directIOAlign is the alignment direct I/O (O_DIRECT) needs of a
// transfer's offset, length and memory: the logical block size, which is
// at most a page on the disks Linux supports.
const directIOAlign = 4096

// zeroPages returns zeroChunk bytes of zeros at a page-aligned address, as
// direct I/O needs, shared by every fill and never written after this: a
// heap buffer a page longer, sliced at its first aligned byte (Go's
// allocator does not promise the alignment, and its heap does not move).
// Each page is touched once so that it is a page of its own rather than
// the kernel's shared zero page, which some kernels will not pin for I/O.
var zeroPages = sync.OnceValue(func() []byte {
	b := make([]byte, zeroChunk+directIOAlign)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (directIOAlign - 1))
	b = b[skip : skip+zeroChunk : skip+zeroChunk]
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
