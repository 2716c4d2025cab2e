package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// segment is one commit-log file. It covers physical offsets
// [base, base+segmentSize). A segment this version creates is that long
// from the start (see prealloc.go), and the log's end inside it is where
// valid records stop; a segment written by an older version is as long as
// what was written to it, and grows.
type segment struct {
	base int64
	path string
	f    file
}

// commitLog is the ordered set of segments. The writer goroutine appends
// and rolls to the next segment; readers read under the read lock;
// retention removes segments from the front under the write lock. A
// background goroutine prepares the segment after the last (prealloc.go).
type commitLog struct {
	dir     string
	segSize int64
	fs      fileSystem
	// zeroFill makes new segments zero-filled rather than only allocated,
	// so that an fdatasync never has to commit block-allocation metadata
	// (SyncFlush; see doc.go).
	zeroFill bool

	mu   sync.RWMutex
	segs []*segment // ascending base, contiguous

	tip      atomic.Int64  // end of the last write; the preparer paces itself by it
	wantTip  atomic.Int64  // the preparer waits until tip reaches this
	progress chan struct{} // poked when tip reaches wantTip
	closing  chan struct{} // closed by close: the preparer gives up
	prepWG   sync.WaitGroup
	prepMu   sync.Mutex
	next     *preparation // the segment after the last, being prepared
	// logger hears of failed segment preparations (set before the first).
	logger *slog.Logger
	// recycleMu serialises taking and leaving the recycled segment file
	// (retention leaves one, a preparation takes it).
	recycleMu sync.Mutex
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// openCommitLog opens the segments in dir. Names must be 20-digit offsets
// that are multiples of segSize and contiguous. Segment files an earlier
// run was still preparing are removed: a crash may have left them half
// filled.
func openCommitLog(dir string, segSize int64, fs fileSystem, zeroFill bool) (*commitLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	c := &commitLog{dir: dir, segSize: segSize, fs: fs, zeroFill: zeroFill, logger: slog.Default(),
		progress: make(chan struct{}, 1), closing: make(chan struct{})}
	c.wantTip.Store(math.MaxInt64)
	var bases []int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), prepSuffix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
			continue
		}
		if e.IsDir() || len(e.Name()) != 20 {
			continue
		}
		base, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		if base%segSize != 0 {
			return nil, fmt.Errorf("%w (%w): commit-log segment %s is not aligned to segment size %d", ErrSegmentSizeChanged, ErrCorrupt, e.Name(), segSize)
		}
		bases = append(bases, base)
	}
	if len(bases) == 0 {
		if err := c.dropRecycled(); err != nil {
			return nil, err
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, base := range bases {
		if i > 0 && base != bases[i-1]+segSize {
			c.close()
			return nil, fmt.Errorf("%w: commit-log segment missing between %s and %s", ErrCorrupt, segmentName(bases[i-1]), segmentName(base))
		}
		path := filepath.Join(dir, segmentName(base))
		f, err := fs.OpenFile(path, os.O_RDWR, 0o644)
		if err != nil {
			c.close()
			return nil, err
		}
		c.segs = append(c.segs, &segment{base: base, path: path, f: f})
		// No file of this version or an older one outgrows its segment:
		// a longer one was written with a larger segment size, and its
		// records past this size's end would be cut off as a torn tail.
		fi, err := f.Stat()
		if err != nil {
			c.close()
			return nil, err
		}
		if fi.Size() > segSize {
			c.close()
			return nil, fmt.Errorf("%w (%w): commit-log segment %s is %d bytes, longer than segment size %d", ErrSegmentSizeChanged, ErrCorrupt, segmentName(base), fi.Size(), segSize)
		}
	}
	return c, nil
}

// segmentAt returns the segment covering off. With create, it rolls to it
// when it is the next one after the last (only the writer goroutine, and
// Open before it starts, create).
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
		return c.roll(base)
	}
	return nil, fmt.Errorf("%w: %d", ErrOffsetNotFound, off)
}

// writeAt writes p at physical offset off, rolling to a new segment if off
// starts one; p must not cross a segment end. It returns the segment
// written, for the caller to sync.
func (c *commitLog) writeAt(p []byte, off int64) (*segment, error) {
	seg, err := c.segmentAt(off, true)
	if err != nil {
		return nil, err
	}
	if _, err := seg.f.WriteAt(p, off-seg.base); err != nil {
		return nil, err
	}
	end := off + int64(len(p))
	c.tip.Store(end)
	if end >= c.wantTip.Load() {
		select {
		case c.progress <- struct{}{}:
		default:
		}
	}
	return seg, nil
}

// readAt fills p from physical offset off; p must not cross a segment end.
func (c *commitLog) readAt(p []byte, off int64) error {
	n, err := c.readSome(p, off)
	if err == nil && n < len(p) {
		err = fmt.Errorf("%w: %d (past the written end)", ErrOffsetNotFound, off+int64(n))
	}
	return err
}

// readSome reads p's range and returns how much it read: less than
// len(p) only where an older version's short segment file ends inside it.
// p must not cross a segment end.
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

// bases returns the segments' base offsets, ascending.
func (c *commitLog) bases() []int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]int64, len(c.segs))
	for i, sg := range c.segs {
		out[i] = sg.base
	}
	return out
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

// limit is the end of the space the segments cover: no record lies past it.
func (c *commitLog) limit() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.segs) == 0 {
		return 0
	}
	return c.segs[len(c.segs)-1].base + c.segSize
}

// isEnd reports whether off can be where the log ends: in (or at the end
// of) the last segment, with no record for position off there (a zero
// word, a recycled segment's old bytes, or the end of an older version's
// short file).
func (c *commitLog) isEnd(off int64) bool {
	c.mu.RLock()
	n := len(c.segs)
	var lastBase int64
	if n > 0 {
		lastBase = c.segs[n-1].base
	}
	c.mu.RUnlock()
	switch {
	case n == 0:
		return off == 0
	case off < lastBase || off > lastBase+c.segSize:
		return false
	case off == lastBase+c.segSize:
		return true // the last segment ends with a blank record
	}
	var w [message.BlankHeaderSize]byte
	k, err := c.readSome(w[:], off)
	if err != nil {
		return k == 0 && errors.Is(err, ErrOffsetNotFound) // an older version's file ends at off
	}
	if k != len(w) {
		return false
	}
	// Past the end lies nothing that was ever written (zeros), or, in a
	// recycled segment, bytes of its earlier life. Only a record valid at
	// this very position, or a blank that may end the segment here, says
	// the log goes on.
	size, magic, _ := message.PeekHeader(w[:])
	switch {
	case size == 0:
		return true
	case magic == message.BlankMagicCode:
		return false // let recovery decide
	case magic != message.MagicCode || size < 0 || int64(size) > lastBase+c.segSize-off:
		return true // not a record here
	}
	rec := make([]byte, size)
	if err := c.readAt(rec, off); err != nil {
		return false
	}
	e, _, err := message.DecodeSealed(rec)
	return err != nil || e.CommitLogOffset != off
}

// truncate makes off the end of the log: the segment holding off keeps its
// bytes before off and has every later byte zeroed (or, for an older
// version's short file, cut off), and later segments are removed, so that
// no stale record past off can be read back by a later recovery. It
// returns how many non-zero bytes it cleared and how many segments it
// removed.
func (c *commitLog) truncate(off int64) (cleared int64, removed int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.segs[:0]
	for _, s := range c.segs {
		switch {
		case s.base+c.segSize <= off:
			keep = append(keep, s)
		case s.base <= off:
			n, e := c.clearFrom(s, off-s.base)
			cleared += n
			if e != nil && err == nil {
				err = e
			}
			keep = append(keep, s)
		default: // segment starts after off
			s.f.Close()
			removed++
			if e := os.Remove(s.path); e != nil && err == nil {
				err = e
			}
		}
	}
	c.segs = keep
	if e := syncDir(c.dir); e != nil && err == nil {
		err = e
	}
	return cleared, removed, err
}

// rewriteChunk is how much of the log rewrite reads and writes back at a
// time.
const rewriteChunk = 1 << 20

// rewrite reads the log's bytes in [from, to) and writes them back
// unchanged, segment by segment, rewriteChunk at a time, so that every
// page of the range is dirty and the next fsync writes it to the disk,
// whatever the page cache held. Segments retention removed are skipped,
// and so is what lies past the end of an older version's short file.
// Each segment keeps its modification time: retention goes by it, and
// bytes written back are no newer than they were. (Where the time cannot
// be set back, a file the broker may write but does not own, it is logged:
// the segment is then kept a little longer, which harms nothing.)
func (c *commitLog) rewrite(from, to int64) error {
	var last *segment // the segment written to last, and its time
	var lastMod time.Time
	restore := func() {
		if last == nil {
			return
		}
		if err := os.Chtimes(last.path, time.Time{}, lastMod); err != nil {
			c.logger.Warn("cannot set a rewritten commit-log segment's time back; retention keeps it longer", "segment", last.path, "err", err)
		}
	}
	defer restore()
	buf := make([]byte, min(c.segSize, rewriteChunk))
	for off := max(from, c.minOffset()); off < to; {
		segEnd := off - off%c.segSize + c.segSize
		n := min(int64(len(buf)), to-off, segEnd-off)
		sg, err := c.segmentAt(off, false)
		if err != nil {
			return err
		}
		if sg != last {
			fi, err := sg.f.Stat()
			if err != nil {
				return err
			}
			restore()
			last, lastMod = sg, fi.ModTime()
		}
		k, err := sg.f.ReadAt(buf[:n], off-sg.base)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := sg.f.WriteAt(buf[:k], off-sg.base); err != nil {
			return err
		}
		if int64(k) < n { // the file ends here
			off = segEnd
			continue
		}
		off += n
	}
	return nil
}

// clearFrom zeroes s's file from position from to the segment's end,
// writing only the chunks that hold non-zero bytes, then syncs it. A file
// shorter than the segment (an older version's) is cut at from instead.
func (c *commitLog) clearFrom(s *segment, from int64) (int64, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return 0, err
	}
	if size := fi.Size(); size < c.segSize {
		if size <= from {
			return 0, nil
		}
		if err := s.f.Truncate(from); err != nil {
			return 0, err
		}
		return size - from, s.f.Sync()
	}
	buf := make([]byte, min(c.segSize, zeroChunk))
	zeros := make([]byte, len(buf))
	var cleared int64
	for pos := from; pos < c.segSize; {
		n := min(int64(len(buf)), c.segSize-pos)
		k, err := s.f.ReadAt(buf[:n], pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return cleared, err
		}
		if !bytes.Equal(buf[:k], zeros[:k]) {
			if _, err := s.f.WriteAt(zeros[:k], pos); err != nil {
				return cleared, err
			}
			cleared += int64(k)
		}
		if k == 0 {
			break
		}
		pos += int64(k)
	}
	if cleared == 0 {
		return 0, nil
	}
	return cleared, s.f.Sync()
}

// removeOldest removes the first segment if more than one remains and keep
// says so. It returns the removed segment's base, or -1.
//
// With recycle, under zeroFill, a whole-segment file is kept as the
// recycled segment (see recycledName) instead of being deleted, unless one
// is already kept.
// oldest returns the oldest segment and its modification time, unless it
// is the only one (the active segment is never removed).
func (c *commitLog) oldest() (*segment, time.Time, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.segs) < 2 {
		return nil, time.Time{}, false, nil
	}
	fi, err := c.segs[0].f.Stat()
	if err != nil {
		return nil, time.Time{}, false, err
	}
	return c.segs[0], fi.ModTime(), true, nil
}

func (c *commitLog) removeOldest(keep func(s *segment, modTime time.Time) bool, recycle bool) (int64, error) {
	c.mu.Lock()
	if len(c.segs) < 2 {
		c.mu.Unlock()
		return -1, nil
	}
	s := c.segs[0]
	fi, err := s.f.Stat()
	if err != nil {
		c.mu.Unlock()
		return -1, err
	}
	if keep(s, fi.ModTime()) {
		c.mu.Unlock()
		return -1, nil
	}
	c.segs = c.segs[1:]
	c.mu.Unlock()
	// Out of the log, no reader can reach s: the rest (an unlink of a
	// whole segment, a directory fsync) runs without the lock that
	// every read and append takes.
	s.f.Close()
	if err := c.recycleOrRemove(s.path, recycle && c.zeroFill && fi.Size() == c.segSize); err != nil {
		return -1, err
	}
	return s.base, syncDir(c.dir)
}

// close stops the preparer, removes the segment it was preparing, and
// closes every segment.
func (c *commitLog) close() error {
	select {
	case <-c.closing:
	default:
		close(c.closing)
	}
	c.prepWG.Wait()
	c.prepMu.Lock()
	p := c.next
	c.next = nil
	c.prepMu.Unlock()
	var err error
	if p != nil {
		err = c.keepOrDiscard(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.segs {
		if e := s.f.Close(); e != nil && err == nil {
			err = e
		}
	}
	c.segs = nil
	return err
}
