package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// prepSuffix names a segment file while it is being prepared. Open removes
// such files: a crash may have left one half filled.
const prepSuffix = ".prealloc"

// Zero-fill steps. Zeros are written zeroChunk bytes at a time. In the
// background each chunk is synced on its own, so the disk takes them in
// steps of about 2 ms rather than in bursts that would hold the commit
// log's own fsyncs up behind them; when the writer or Open waits for the
// segment, zeroSyncFast bytes are synced at a time, which fills it about
// twice as fast.
const (
	zeroChunk    = 1 << 20
	zeroSyncFast = 16 << 20
)

// recycledName is the file retention keeps a removed segment under, for
// the next preparation to take instead of writing a segment of zeros: the
// file is a whole segment long and every block of it is written, so an
// fdatasync after a record overwrites it has no metadata to commit, as
// with a zero-filled one, and the disk is spared a segment of zeros. The
// records it still holds are not mistaken for new ones: a record is valid
// only where the physical offset written in it matches its position, and
// the old ones belong to an earlier, lower base (see scan.go).
const recycledName = "recycled"

// recycleOrRemove removes the file at path, or, with recycle, keeps it as
// the recycled segment if none is kept yet. The caller syncs the
// directory.
func (c *commitLog) recycleOrRemove(path string, recycle bool) error {
	if recycle {
		c.recycleMu.Lock()
		defer c.recycleMu.Unlock()
		kept := filepath.Join(c.dir, recycledName)
		if _, err := os.Stat(kept); errors.Is(err, os.ErrNotExist) {
			return os.Rename(path, kept)
		}
	}
	return os.Remove(path)
}

// takeRecycled moves the recycled segment, if one is kept, to path and
// opens it. It returns nil, nil when there is none, or when the file kept
// is not a whole segment (it is removed then).
func (c *commitLog) takeRecycled(path string) (file, error) {
	c.recycleMu.Lock()
	defer c.recycleMu.Unlock()
	kept := filepath.Join(c.dir, recycledName)
	fi, err := os.Stat(kept)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case fi.Size() != c.segSize || !c.zeroFill:
		return nil, os.Remove(kept) // another segment size, or flush type, wrote it
	}
	if err := os.Rename(kept, path); err != nil {
		return nil, err
	}
	f, err := c.fs.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// keepOrDiscard ends a preparation at close: under zeroFill a finished
// one (a whole segment of written blocks, zeros or recycled) is kept as
// the recycled segment, if none is kept yet, for the next run's first
// preparation; anything else is removed.
func (c *commitLog) keepOrDiscard(p *preparation) error {
	<-p.done
	if p.err != nil || p.f == nil || !c.zeroFill {
		return p.discard()
	}
	p.f.Close()
	if err := c.recycleOrRemove(p.path, true); err != nil {
		return err
	}
	return syncDir(c.dir)
}

// dropRecycled removes the recycled segment, if one is kept: when the
// disk is above the watermark, or the log has no segments (a recycled
// file must never serve a log that starts again at its old base).
func (c *commitLog) dropRecycled() error {
	c.recycleMu.Lock()
	defer c.recycleMu.Unlock()
	if err := os.Remove(filepath.Join(c.dir, recycledName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// errPrepareStopped ends a preparation when the log is closed.
var errPrepareStopped = errors.New("store: segment preparation stopped")

// preparation is the segment after the last one, being made ready by a
// goroutine under a temporary name.
type preparation struct {
	base  int64
	path  string        // the temporary name
	hurry chan struct{} // closed by roll: the writer needs it now, stop pacing
	done  chan struct{} // closed once f or err is set
	f     file
	err   error

	// failed is the error of the last failed attempt, until one succeeds
	// (see prepareLoop).
	failMu sync.Mutex
	failed error
}

// failure is the error of p's last failed attempt, or nil if none failed
// or one has succeeded since.
func (p *preparation) failure() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	return p.failed
}

func (p *preparation) setFailure(err error) {
	p.failMu.Lock()
	p.failed = err
	p.failMu.Unlock()
}

// discard waits for the preparation to end and removes its file.
func (p *preparation) discard() error {
	<-p.done
	if p.f != nil {
		p.f.Close()
	}
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// openActive readies the segment that the record at end, the log's end
// after recovery, goes into: it rolls to it if it does not exist yet, or
// makes an older version's short file a whole segment long (zeros past the
// end are not records, so this is safe at any moment), and starts
// preparing the segment after it. Open calls it before the writer starts.
func (c *commitLog) openActive(end int64) error {
	c.tip.Store(end)
	base := end - end%c.segSize
	c.mu.RLock()
	var last *segment
	if n := len(c.segs); n > 0 {
		last = c.segs[n-1]
	}
	c.mu.RUnlock()
	switch {
	case last != nil && last.base == base:
		fi, err := last.f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < c.segSize {
			if err := c.fill(last.f, min(fi.Size(), end-base), nil); err != nil {
				return err
			}
		}
		c.startPrepare(base + c.segSize)
		return nil
	case last == nil || last.base+c.segSize == base:
		_, err := c.roll(base) // it starts preparing the next one
		return err
	}
	return fmt.Errorf("%w: the log ends at %d, before its last segment %s", ErrCorrupt, end, segmentName(last.base))
}

// roll makes the segment at base, the one after the last, part of the log:
// it takes the prepared file (telling its preparer to stop pacing and
// waiting for it), or prepares one now if none was started or the
// preparation failed, renames it to its segment name, syncs the directory,
// and starts preparing the next segment.
func (c *commitLog) roll(base int64) (*segment, error) {
	c.prepMu.Lock()
	p := c.next
	c.next = nil
	c.prepMu.Unlock()
	path := filepath.Join(c.dir, segmentName(base))
	tmp := path + prepSuffix
	var f file
	if p != nil {
		close(p.hurry)
		<-p.done
		switch {
		case p.base != base:
			p.discard() // cannot happen: the log grows one segment at a time
		case p.err == nil:
			f = p.f
		default:
			p.discard() // failed: prepared again below
		}
	}
	if f == nil {
		// None was prepared, or the preparation failed (perhaps for a
		// passing reason, such as a full disk): try once more, now.
		var err error
		if f, err = c.prepare(tmp, nil); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := syncDir(c.dir); err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, path: path, f: f}
	c.mu.Lock()
	c.segs = append(c.segs, s)
	c.mu.Unlock()
	c.startPrepare(base + c.segSize)
	return s, nil
}

// Retries of a failed preparation (see prepareLoop): the first after
// prepRetryMin, each later one after twice the wait before it, up to
// prepRetryMax.
const (
	prepRetryMin = 100 * time.Millisecond
	prepRetryMax = 5 * time.Second
)

// startPrepare starts a goroutine preparing the segment at base.
func (c *commitLog) startPrepare(base int64) {
	p := &preparation{base: base, path: filepath.Join(c.dir, segmentName(base)+prepSuffix),
		hurry: make(chan struct{}), done: make(chan struct{})}
	c.prepMu.Lock()
	c.next = p
	c.prepMu.Unlock()
	c.prepWG.Add(1)
	go func() {
		defer c.prepWG.Done()
		defer close(p.done)
		c.prepareLoop(p)
	}()
}

// prepareLoop prepares p's segment, paced (see pace), and when an attempt
// fails (a full disk, an I/O error) tries again, unpaced, after a growing
// wait, until one succeeds, the log closes, or the writer needs the
// segment (it then tries once more itself). Meanwhile ready refuses the
// appends that would go into the segment.
func (c *commitLog) prepareLoop(p *preparation) {
	pace := func(upTo int64) (bool, error) { return c.pace(p, upTo) }
	for wait := prepRetryMin; ; wait = min(2*wait, prepRetryMax) {
		p.f, p.err = c.prepare(p.path, pace)
		if p.err == nil || errors.Is(p.err, errPrepareStopped) {
			if p.failure() != nil && p.err == nil {
				c.logger.Info("next commit-log segment made; appends into it go on", "segment", segmentName(p.base))
			}
			p.setFailure(nil)
			return
		}
		p.setFailure(p.err)
		c.logger.Error("cannot make the next commit-log segment; appends that need it are refused until it can be made",
			"segment", segmentName(p.base), "err", p.err, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.hurry:
			t.Stop()
			return
		case <-c.closing:
			t.Stop()
			return
		}
		// Appends wait for this attempt: no pacing, but stop when closed.
		pace = func(int64) (bool, error) {
			select {
			case <-c.closing:
				return false, errPrepareStopped
			default:
				return false, nil
			}
		}
	}
}

// ready reports whether records may take offsets in the segment at base,
// the one after the log's current end. It answers nil unless the last
// attempt to prepare that segment failed and none has succeeded since:
// then an error wrapping ErrSegmentNotReady and the cause. The appends it
// refuses take no offset, so the log goes on without a hole once an
// attempt succeeds (space was freed); without it the writer would meet
// the failure itself, with the records' offsets handed out, and fail the
// store for good.
func (c *commitLog) ready(base int64) error {
	c.prepMu.Lock()
	p := c.next
	c.prepMu.Unlock()
	if p == nil || p.base != base {
		return nil // the writer is rolling to it, or to one before it
	}
	if err := p.failure(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSegmentNotReady, segmentName(base), err)
	}
	return nil
}

// prepare makes a segment file at path: the recycled segment if one is
// kept, else a new file it fills (see fill). On error it removes the file.
func (c *commitLog) prepare(path string, pace func(upTo int64) (bool, error)) (file, error) {
	if f, err := c.takeRecycled(path); f != nil {
		return f, nil
	} else if err != nil {
		// Whatever is wrong with the kept file, a new one will do.
		c.dropRecycled()
		os.Remove(path)
	}
	f, err := c.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if err := c.fill(f, 0, pace); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// fill makes f a whole segment long and syncs it. Under zeroFill it also
// writes zeros from position from to the end, so that every block is
// allocated and written before a record goes there: an fdatasync after a
// record is then a data write and a cache flush, with no file-system
// metadata to commit. pace, if not nil, is called before each chunk of
// zeros with the position the chunk ends at; it says whether the fill is
// still in the background (nobody waits for it), and ends the fill if it
// returns an error.
//
// The zeros are written with direct I/O where the file system allows it
// (see openDirect), else through the page cache.
func (c *commitLog) fill(f file, from int64, pace func(upTo int64) (bool, error)) error {
	if err := f.Allocate(c.segSize); err != nil {
		return fmt.Errorf("allocate a segment of SegmentSize %d bytes: %w", c.segSize, err)
	}
	if !c.zeroFill {
		return f.Sync()
	}
	var zeros []byte // for writes through the page cache
	w, direct := c.openDirect(f, from)
	if w != nil {
		defer w.Close()
	}
	var unsynced int64
	for pos := from; pos < c.segSize; {
		n := min(zeroChunk, c.segSize-pos)
		background := false
		if pace != nil {
			var err error
			if background, err = pace(pos + n); err != nil {
				return err
			}
		}
		if direct != nil {
			_, err := w.WriteAt(direct[:n], pos)
			if directRefused(err) {
				direct = nil // refused after all: go on through the page cache
			} else if err != nil {
				return err
			}
		}
		if direct == nil {
			if zeros == nil {
				zeros = make([]byte, min(zeroChunk, c.segSize))
			}
			if _, err := f.WriteAt(zeros[:n], pos); err != nil {
				return err
			}
		}
		pos += n
		step := int64(zeroSyncFast)
		if background {
			step = zeroChunk
		}
		if unsynced += n; unsynced >= step && pos < c.segSize {
			if err := f.Sync(); err != nil {
				return err
			}
			unsynced = 0
		}
	}
	return f.Sync()
}

// directRefused reports whether a direct-I/O write failed because the
// file system or kernel will not do direct I/O for it (bad alignment for
// this device, not supported, a buffer it will not pin), rather than
// because the write itself failed: then the fill goes on through the
// page cache, and other errors (EIO, ENOSPC) end it.
func directRefused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EFAULT)
}

// openDirect opens f's file a second time for direct I/O (O_DIRECT) and
// returns it with the buffer of zeros to write through it. Direct I/O
// takes the zeros from one shared page-aligned buffer straight to the
// disk: no copy into the page cache, which on the 2-core machine the
// benchmarks ran on took a quarter of a core at the append rate (1.6 s of
// CPU in a 6 s SyncFlush run) and pushed out cached data with gigabytes
// of zeros. It returns nil (write through f) where direct I/O cannot
// work: from or the segment size not block aligned, a file system without
// it (tmpfs refuses O_DIRECT), or a system without O_DIRECT (macOS,
// Windows).
func (c *commitLog) openDirect(f file, from int64) (file, []byte) {
	if fsutil.DirectIO == 0 || from%directIOAlign != 0 || c.segSize%directIOAlign != 0 {
		return nil, nil
	}
	zeros := zeroPages()
	w, err := c.fs.OpenFile(f.Name(), os.O_WRONLY|fsutil.DirectIO, 0)
	if err != nil {
		return nil, nil
	}
	// The path must still name f's file (nothing renames it meanwhile
	// today; a check costs two stats).
	fi, err1 := f.Stat()
	wi, err2 := w.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(fi, wi) {
		w.Close()
		return nil, nil
	}
	return w, zeros
}

// pace holds p's preparer until it may write zeros up to position upTo:
// when the segment before p is three quarters as full as upTo is into p.
// The zeros thus go to disk at about 4/3 the rate records do, and the next
// segment is ready when the active one is three quarters full. It says
// whether the preparation is still in the background: it returns false at
// once when the writer waits for p, and errPrepareStopped when the log is
// closed.
func (c *commitLog) pace(p *preparation, upTo int64) (bool, error) {
	need := p.base - c.segSize + upTo - upTo/4
	for {
		select {
		case <-c.closing:
			return false, errPrepareStopped
		case <-p.hurry:
			return false, nil
		default:
		}
		if c.tip.Load() >= need {
			return true, nil
		}
		c.wantTip.Store(need)
		if c.tip.Load() < need { // checked again after publishing need: no wake-up is lost
			select {
			case <-c.progress:
			case <-p.hurry:
			case <-c.closing:
			}
		}
		c.wantTip.Store(math.MaxInt64)
	}
}
