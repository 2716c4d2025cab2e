package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// segment is one commit-log file. It covers physical offsets
// [base, base+segmentSize); its file is as long as what was written to it.
type segment struct {
	base int64
	path string
	f    file
}

// commitLog is the ordered set of segments. The writer goroutine appends;
// readers read under the read lock; retention removes segments from the
// front under the write lock.
type commitLog struct {
	dir     string
	segSize int64
	fs      fileSystem

	mu   sync.RWMutex
	segs []*segment // ascending base, contiguous
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// openCommitLog opens the segments in dir. Names must be 20-digit offsets
// that are multiples of segSize and contiguous.
func openCommitLog(dir string, segSize int64, fs fileSystem) (*commitLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &commitLog{dir: dir, segSize: segSize, fs: fs}
	var bases []int64
	for _, e := range entries {
		if e.IsDir() || len(e.Name()) != 20 {
			continue
		}
		base, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		if base%segSize != 0 {
			return nil, fmt.Errorf("%w: commit-log segment %s is not aligned to segment size %d (was the segment size changed?)", ErrCorrupt, e.Name(), segSize)
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, base := range bases {
		if i > 0 && base != bases[i-1]+segSize {
			c.close()
			return nil, fmt.Errorf("%w: commit-log segment missing between %s and %s", ErrCorrupt, segmentName(bases[i-1]), segmentName(base))
		}
		if _, err := c.openSegment(base, false); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// openSegment opens (create: creates) the segment at base and appends it.
func (c *commitLog) openSegment(base int64, create bool) (*segment, error) {
	path := filepath.Join(c.dir, segmentName(base))
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := c.fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	if create {
		if err := syncDir(c.dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	s := &segment{base: base, path: path, f: f}
	c.mu.Lock()
	c.segs = append(c.segs, s)
	c.mu.Unlock()
	return s, nil
}

// segmentAt returns the segment covering off, creating it when it is the
// next one after the last (only the writer goroutine creates).
func (c *commitLog) segmentAt(off int64, create bool) (*segment, error) {
	base := off - off%c.segSize
	c.mu.RLock()
	n := len(c.segs)
	if n > 0 {
		first := c.segs[0].base
		if base >= first && base < first+int64(n)*c.segSize {
			s := c.segs[(base-first)/c.segSize]
			c.mu.RUnlock()
			return s, nil
		}
	}
	var last int64 = -1
	if n > 0 {
		last = c.segs[n-1].base
	}
	c.mu.RUnlock()
	if create && (n == 0 || base == last+c.segSize) {
		return c.openSegment(base, true)
	}
	return nil, fmt.Errorf("%w: %d", ErrOffsetNotFound, off)
}

// readAt fills p from physical offset off; p must not cross a segment end.
func (c *commitLog) readAt(p []byte, off int64) error {
	n, err := c.readSome(p, off)
	if err == nil && n < len(p) {
		err = fmt.Errorf("%w: %d (past the written end)", ErrOffsetNotFound, off+int64(n))
	}
	return err
}

// readSome reads what is written of p's range (it may be cut short by the
// end of the segment's file) and returns how much it read; p must not cross
// a segment end.
func (c *commitLog) readSome(p []byte, off int64) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.segs)
	if n == 0 {
		return 0, fmt.Errorf("%w: %d (log is empty)", ErrOffsetNotFound, off)
	}
	first := c.segs[0].base
	if off < first || off >= first+int64(n)*c.segSize {
		return 0, fmt.Errorf("%w: %d", ErrOffsetNotFound, off)
	}
	s := c.segs[(off-first)/c.segSize]
	if off-s.base+int64(len(p)) > c.segSize {
		return 0, fmt.Errorf("%w: read of %d bytes at %d crosses a segment end", ErrOffsetNotFound, len(p), off)
	}
	k, err := s.f.ReadAt(p, off-s.base)
	if errors.Is(err, io.EOF) {
		if k == 0 {
			return 0, fmt.Errorf("%w: %d (past the written end)", ErrOffsetNotFound, off)
		}
		err = nil
	}
	return k, err
}

// minOffset is the first physical offset still stored.
func (c *commitLog) minOffset() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.segs) == 0 {
		return 0
	}
	return c.segs[0].base
}

// endOffset is where the last segment's file ends.
func (c *commitLog) endOffset() (int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.segs) == 0 {
		return 0, nil
	}
	last := c.segs[len(c.segs)-1]
	fi, err := last.f.Stat()
	if err != nil {
		return 0, err
	}
	return last.base + fi.Size(), nil
}

// truncate cuts the log at off: the segment holding off is truncated and
// every later segment is removed.
func (c *commitLog) truncate(off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.segs[:0]
	var err error
	for _, s := range c.segs {
		switch {
		case s.base+c.segSize <= off:
			keep = append(keep, s)
		case s.base < off:
			if e := s.f.Truncate(off - s.base); e != nil && err == nil {
				err = e
			}
			if e := s.f.Sync(); e != nil && err == nil {
				err = e
			}
			keep = append(keep, s)
		default: // segment starts at or after off
			s.f.Close()
			if e := os.Remove(s.path); e != nil && err == nil {
				err = e
			}
		}
	}
	c.segs = keep
	if e := syncDir(c.dir); e != nil && err == nil {
		err = e
	}
	return err
}

// removeOldest removes the first segment if more than one remains and keep
// says so. It returns the removed segment's base, or -1.
func (c *commitLog) removeOldest(keep func(s *segment, modTime time.Time) bool) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.segs) < 2 {
		return -1, nil
	}
	s := c.segs[0]
	fi, err := s.f.Stat()
	if err != nil {
		return -1, err
	}
	if keep(s, fi.ModTime()) {
		return -1, nil
	}
	c.segs = c.segs[1:]
	s.f.Close()
	if err := os.Remove(s.path); err != nil {
		return -1, err
	}
	return s.base, syncDir(c.dir)
}

func (c *commitLog) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for _, s := range c.segs {
		if e := s.f.Close(); e != nil && err == nil {
			err = e
		}
	}
	c.segs = nil
	return err
}
