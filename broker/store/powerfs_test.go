package store

import (
	"errors"
	"io"
	"os"
	"sync"
	"testing"
)

// powerFS models a power loss for the files the store opens through its
// fileSystem (commit-log segments, consume queues, key index): it keeps,
// per inode, an undo log of every change since the inode's last fsync,
// and revert rolls each inode back to its content at that fsync, as if
// the page cache had written back nothing. (Directory operations, and
// the files the store writes through package os, checkpoint and abort
// marker among them, are taken as durable at once: the model only ever
// loses unsynced file data, never a rename or a removal.)
type powerFS struct {
	mu     sync.Mutex
	frozen bool          // after crash: every write and sync fails, nothing more reaches the disk
	inodes []*powerInode // few: found with os.SameFile
	// cutAt, if positive, cuts the power as the cutAt-th operation (open,
	// write, truncate, allocate, sync) starts; ops counts them.
	cutAt, ops int
}

// tick counts an operation (p.mu held) and cuts the power if it is the
// cutAt-th; it reports whether the power is off.
func (p *powerFS) tick() bool {
	p.ops++
	if p.cutAt > 0 && p.ops >= p.cutAt {
		p.frozen = true
	}
	return p.frozen
}

type powerInode struct {
	id   os.FileInfo // the file's identity, for os.SameFile
	f    *os.File    // our own descriptor, to read pre-images and revert through
	undo []powerUndo
}

// powerUndo restores size and then writes data at off.
type powerUndo struct {
	size int64
	off  int64
	data []byte
}

func newPowerFS() *powerFS { return &powerFS{} }

// inode is the tracked inode fi describes, or nil (p.mu held).
func (p *powerFS) inode(fi os.FileInfo) *powerInode {
	for _, st := range p.inodes {
		if os.SameFile(st.id, fi) {
			return st
		}
	}
	return nil
}

var errPowerLost = errors.New("power lost")

func (p *powerFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tick() {
		return nil, &os.PathError{Op: "open", Path: name, Err: errPowerLost}
	}
	var pre []byte
	existed := false
	if flag&os.O_TRUNC != 0 {
		if b, err := os.ReadFile(name); err == nil {
			pre, existed = b, true
		}
	}
	inner, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := inner.Stat()
	if err != nil {
		inner.Close()
		return nil, err
	}
	st := p.inode(fi)
	if st == nil {
		own, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			inner.Close()
			return nil, err
		}
		st = &powerInode{id: fi, f: own}
		p.inodes = append(p.inodes, st)
		if flag&os.O_CREATE != 0 && !existed && fi.Size() == 0 {
			// Created now and never synced: a power loss leaves it empty.
			st.undo = append(st.undo, powerUndo{size: 0})
		}
	}
	if existed {
		st.undo = append(st.undo, powerUndo{size: int64(len(pre)), data: pre})
	}
	return &powerFile{file: inner, p: p, st: st}, nil
}

type powerFile struct {
	file
	p  *powerFS
	st *powerInode
}

func (f *powerFile) size() int64 {
	fi, err := f.st.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// preimage records what [off, off+n) holds now (and the size), for revert.
func (f *powerFile) preimage(off, n int64) {
	size := f.size()
	var old []byte
	if off < size {
		old = make([]byte, min(n, size-off))
		k, err := f.st.f.ReadAt(old, off)
		if err != nil && !errors.Is(err, io.EOF) {
			panic(err)
		}
		old = old[:k]
	}
	f.st.undo = append(f.st.undo, powerUndo{size: size, off: off, data: old})
}

func (f *powerFile) WriteAt(b []byte, off int64) (int, error) {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.p.tick() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: errPowerLost}
	}
	f.preimage(off, int64(len(b)))
	return f.file.WriteAt(b, off)
}

func (f *powerFile) Truncate(size int64) error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.p.tick() {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: errPowerLost}
	}
	if cur := f.size(); size < cur {
		f.preimage(size, cur-size)
	} else {
		f.st.undo = append(f.st.undo, powerUndo{size: cur})
	}
	return f.file.Truncate(size)
}

func (f *powerFile) Allocate(size int64) error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.p.tick() {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: errPowerLost}
	}
	f.st.undo = append(f.st.undo, powerUndo{size: f.size()})
	return f.file.Allocate(size)
}

func (f *powerFile) Sync() error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.p.tick() {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: errPowerLost}
	}
	if err := f.file.Sync(); err != nil {
		return err
	}
	f.st.undo = nil
	return nil
}

// crash cuts the power: from now on nothing the store does reaches the
// disk. The caller then stops the store (halt) and calls revert.
func (p *powerFS) crash() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// revert rolls every inode back to its content at its last fsync.
func (p *powerFS) revert(t testing.TB) { p.revertPartly(t, nil) }

// revertPartly rolls every inode back to its content at its last fsync
// and, with keep, after the first keep(n) of the n changes made since,
// as if the page cache had written back that much of each file, in
// order, but files independently of each other.
func (p *powerFS) revertPartly(t testing.TB, keep func(n int) int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.inodes {
		first := 0
		if keep != nil {
			first = keep(len(st.undo))
		}
		for i := len(st.undo) - 1; i >= first; i-- {
			u := st.undo[i]
			fi, err := st.f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if u.data != nil {
				if _, err := st.f.WriteAt(u.data, u.off); err != nil {
					t.Fatal(err)
				}
			}
			if fi.Size() != u.size || u.data != nil {
				if err := st.f.Truncate(u.size); err != nil {
					t.Fatal(err)
				}
			}
		}
		st.undo = nil
		st.f.Close()
	}
	p.inodes = nil
}
