package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// QueueEntrySize is the size of one consume-queue entry: commit-log offset
// (8), record size (4), tag hash code (8).
const QueueEntrySize = 20

// QueueEntry is one consume-queue entry.
type QueueEntry struct {
	PhysicalOffset int64
	Size           int32
	TagsCode       int64
}

func putEntry(b []byte, e QueueEntry) {
	binary.BigEndian.PutUint64(b, uint64(e.PhysicalOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(e.Size))
	binary.BigEndian.PutUint64(b[12:], uint64(e.TagsCode))
}

func getEntry(b []byte) QueueEntry {
	return QueueEntry{
		PhysicalOffset: int64(binary.BigEndian.Uint64(b)),
		Size:           int32(binary.BigEndian.Uint32(b[8:])),
		TagsCode:       int64(binary.BigEndian.Uint64(b[12:])),
	}
}

type cqFile struct {
	base int64 // logical offset of the file's first entry
	path string
	f    file
	// dropped is set (under the queue's mu) when dropBefore or
	// truncateFrom takes the file out of the queue, before closing it: a
	// sync that listed it earlier then knows that its failure loses
	// nothing.
	dropped bool
}

// consumeQueue is the index of one topic/queue: entry n (its logical
// offset) is at byte n*20 of the queue's address space, split into files of
// perFile entries named by their first byte offset. Only the dispatcher
// writes; entries are written at their logical offset, so re-dispatching a
// record after a crash rewrites the same bytes.
type consumeQueue struct {
	dir     string
	perFile int64
	fs      fileSystem

	mu    sync.RWMutex
	files []*cqFile
	min   int64 // first logical offset whose record is still stored
	max   int64 // one past the last entry written
	dirty bool  // written since the last sync
	// newDirs are the directories whose entries changed since the last
	// sync: the queue's own when a file was created in it, and the parent
	// of each directory created for it. sync fsyncs them with the files,
	// so the dispatcher that creates a file never waits for it.
	newDirs []string

	pend      []byte // dispatcher's entries not yet written
	pendStart int64
}

func openConsumeQueue(dir string, perFile int64, fs fileSystem) (*consumeQueue, error) {
	q := &consumeQueue{dir: dir, perFile: perFile, fs: fs}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var bases []int64
	for _, e := range entries {
		n, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || len(e.Name()) != 20 {
			continue
		}
		if n%(perFile*QueueEntrySize) != 0 {
			// Written with another QueueEntriesPerFile: its entries
			// would be out of reach, and the queue would hand out their
			// offsets again.
			return nil, fmt.Errorf("%w (%w): consume-queue file %s is not aligned to %d entries a file",
				ErrQueueEntriesChanged, ErrCorrupt, filepath.Join(dir, e.Name()), perFile)
		}
		bases = append(bases, n/QueueEntrySize)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, base := range bases {
		if i > 0 && base != bases[i-1]+perFile {
			// A gap: files before it are unreachable; keep the tail run.
			for _, f := range q.files {
				f.f.Close()
			}
			q.files = nil
		}
		f, _, err := q.openFile(base, false)
		if err != nil {
			q.close()
			return nil, err
		}
		q.files = append(q.files, f)
		fi, err := f.f.Stat()
		if err != nil {
			q.close()
			return nil, err
		}
		if fi.Size() > perFile*QueueEntrySize {
			q.close()
			return nil, fmt.Errorf("%w (%w): consume-queue file %s holds more than %d entries",
				ErrQueueEntriesChanged, ErrCorrupt, f.path, perFile)
		}
	}
	if err := q.cutAtShortFile(); err != nil {
		q.close()
		return nil, err
	}
	if n := len(q.files); n > 0 {
		last := q.files[n-1]
		fi, err := last.f.Stat()
		if err != nil {
			q.close()
			return nil, err
		}
		q.min = q.files[0].base
		q.max = last.base + fi.Size()/QueueEntrySize
	}
	return q, nil
}

// cutAtShortFile ends the queue at the first file but the last that is
// short, removing the files after it. A power loss can keep a file the
// dispatcher created (a directory change, which any journal commit makes
// durable) while the unsynced entries at the end of the file before it
// are lost: the queue would end at the last file, past a hole that reads
// as zero entries and breaks every search, which assumes entries that
// rise with their offsets. Ending the queue at the hole, as RocketMQ's
// ConsumeQueue.recover stops at the first invalid entry, loses nothing:
// the entries past it were written after the last checkpoint, and
// recovery writes them again from the commit log.
func (q *consumeQueue) cutAtShortFile() error {
	for i := 0; i+1 < len(q.files); i++ {
		fi, err := q.files[i].f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() >= q.perFile*QueueEntrySize {
			continue
		}
		for _, f := range q.files[i+1:] {
			f.f.Close() // removed next: a close error loses nothing
		}
		later := q.files[i+1:]
		q.files = q.files[:i+1]
		for _, f := range later {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		// The next sync makes the removals durable before a checkpoint
		// records a position past them (as truncateFrom's cut).
		if !slices.Contains(q.newDirs, q.dir) {
			q.newDirs = append(q.newDirs, q.dir)
		}
		return nil
	}
	return nil
}

// openFile opens the file starting at logical offset base. With create it
// creates the file (and the queue's directory if missing) and also
// returns the directories whose entries that changed (see newDirs).
func (q *consumeQueue) openFile(base int64, create bool) (*cqFile, []string, error) {
	path := filepath.Join(q.dir, fmt.Sprintf("%020d", base*QueueEntrySize))
	flag := os.O_RDWR
	var changed []string
	if create {
		var err error
		if changed, err = fsutil.MkdirAll(q.dir); err != nil {
			return nil, nil, err
		}
		changed = append([]string{q.dir}, changed...)
		flag |= os.O_CREATE
	}
	f, err := q.fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return &cqFile{base: base, path: path, f: f}, changed, nil
}

// put stages entry at logical offset off; flush writes staged entries.
func (q *consumeQueue) put(off int64, e QueueEntry) error {
	if len(q.pend) > 0 && q.pendStart+int64(len(q.pend)/QueueEntrySize) != off {
		if err := q.flush(); err != nil {
			return err
		}
	}
	if len(q.pend) == 0 {
		q.pendStart = off
	}
	var b [QueueEntrySize]byte
	putEntry(b[:], e)
	q.pend = append(q.pend, b[:]...)
	return nil
}

// flush writes the staged entries and makes them visible to readers.
func (q *consumeQueue) flush() error {
	if len(q.pend) == 0 {
		return nil
	}
	off, data := q.pendStart, q.pend
	for len(data) > 0 {
		f, err := q.fileFor(off)
		if err != nil {
			return err
		}
		n := min(int64(len(data)), (f.base+q.perFile-off)*QueueEntrySize)
		if _, err := f.f.WriteAt(data[:n], (off-f.base)*QueueEntrySize); err != nil {
			return err
		}
		data = data[n:]
		off += n / QueueEntrySize
	}
	q.mu.Lock()
	q.max = max(q.max, off)
	q.dirty = true
	q.mu.Unlock()
	q.pend = q.pend[:0]
	return nil
}

// fileFor returns the file holding logical offset off, creating files as
// needed (dispatcher only).
func (q *consumeQueue) fileFor(off int64) (*cqFile, error) {
	base := off - off%q.perFile
	q.mu.RLock()
	for i := len(q.files) - 1; i >= 0; i-- {
		if q.files[i].base == base {
			f := q.files[i]
			q.mu.RUnlock()
			return f, nil
		}
	}
	q.mu.RUnlock()
	f, changed, err := q.openFile(base, true)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.files) > 0 && base < q.files[0].base {
		// Rewriting below the oldest file only happens when its records were
		// removed by retention; there is nothing to keep.
		f.f.Close()
		os.Remove(f.path)
		return nil, fmt.Errorf("%w: queue offset %d was removed", ErrOffsetNotFound, off)
	}
	q.files = append(q.files, f)
	for _, d := range changed {
		if !slices.Contains(q.newDirs, d) {
			q.newDirs = append(q.newDirs, d)
		}
	}
	sort.Slice(q.files, func(i, j int) bool { return q.files[i].base < q.files[j].base })
	if len(q.files) == 1 {
		q.min = base
	}
	return f, nil
}

// bounds returns the first and one-past-last readable logical offsets.
func (q *consumeQueue) bounds() (int64, int64) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.min, q.max
}

// read returns up to n entries starting at logical offset from.
func (q *consumeQueue) read(from int64, n int) ([]QueueEntry, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if from < q.min || from >= q.max {
		return nil, nil
	}
	n = int(min(int64(n), q.max-from))
	out := make([]QueueEntry, 0, n)
	buf := make([]byte, n*QueueEntrySize)
	for len(out) < n {
		var f *cqFile
		for _, c := range q.files {
			if from >= c.base && from < c.base+q.perFile {
				f = c
				break
			}
		}
		if f == nil {
			return out, fmt.Errorf("%w: consume queue file for offset %d is missing", ErrCorrupt, from)
		}
		k := min(int64(n-len(out)), f.base+q.perFile-from)
		b := buf[:k*QueueEntrySize]
		got, err := f.f.ReadAt(b, (from-f.base)*QueueEntrySize)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, err
		}
		// A short read (a file a power loss cut short) leaves the bytes
		// of the previous file read in buf: zero them, so that the
		// missing entries read as invalid ones (size 0), never as
		// another offset's.
		clear(b[got:])
		for i := int64(0); i < k; i++ {
			out = append(out, getEntry(b[i*QueueEntrySize:]))
		}
		from += k
	}
	return out, nil
}

// entryAt reads one entry (caller holds no lock).
func (q *consumeQueue) entryAt(off int64) (QueueEntry, error) {
	es, err := q.read(off, 1)
	if err != nil {
		return QueueEntry{}, err
	}
	if len(es) == 0 {
		return QueueEntry{}, fmt.Errorf("%w: queue offset %d", ErrOffsetNotFound, off)
	}
	return es[0], nil
}

// search returns the first logical offset in [min, max) whose entry
// satisfies pred, assuming pred is false then true along the queue (as
// physical offsets and store times are); max if none does.
func (q *consumeQueue) search(pred func(QueueEntry) bool) (int64, error) {
	lo, hi := q.bounds()
	var ferr error
	i := sort.Search(int(hi-lo), func(i int) bool {
		e, err := q.entryAt(lo + int64(i))
		if err != nil {
			ferr = err
			return true
		}
		return pred(e)
	})
	return lo + int64(i), ferr
}

// truncateFrom drops every entry at or after logical offset off. The
// next sync makes the cut durable (the files' new ends, and the removals
// in the directory): recovery cuts entries that point past the log's end,
// and the log is written again there before the next checkpoint records a
// position past them; should the cut be lost to a power loss after that,
// the entries would come back below the checkpoint's position, kept by
// the next recovery, pointing at other records.
func (q *consumeQueue) truncateFrom(off int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if off < q.max {
		q.dirty = true
		if !slices.Contains(q.newDirs, q.dir) {
			q.newDirs = append(q.newDirs, q.dir)
		}
	}
	keep := q.files[:0]
	for _, f := range q.files {
		switch {
		case f.base+q.perFile <= off:
			keep = append(keep, f)
		case f.base < off:
			if err := f.f.Truncate((off - f.base) * QueueEntrySize); err != nil {
				return err
			}
			keep = append(keep, f)
		default:
			f.dropped = true
			f.f.Close()
			if err := os.Remove(f.path); err != nil {
				return err
			}
		}
	}
	q.files = keep
	q.max = min(q.max, off)
	q.min = min(q.min, q.max)
	return nil
}

// dropBefore raises the queue's minimum to off, deleting files wholly below it.
func (q *consumeQueue) dropBefore(off int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.files) > 1 && q.files[0].base+q.perFile <= off {
		f := q.files[0]
		q.files = q.files[1:]
		f.dropped = true
		f.f.Close()
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	q.min = max(q.min, min(off, q.max))
	return nil
}

// sync fsyncs the queue's files if they were written since the last sync,
// and the directories of files created since. It holds no lock while it
// does: a file dropBefore drops meanwhile needs no sync (its entries are
// gone), so its failure is not one. Any other failure fails the store
// (see checkpoint), so nothing syncs the queue again.
func (q *consumeQueue) sync() error {
	q.mu.Lock()
	dirty, dirs := q.dirty, q.newDirs
	q.dirty, q.newDirs = false, nil
	files := append([]*cqFile(nil), q.files...)
	q.mu.Unlock()
	if !dirty && len(dirs) == 0 {
		return nil
	}
	return q.syncFiles(files, dirs)
}

func (q *consumeQueue) syncFiles(files []*cqFile, dirs []string) error {
	for _, f := range files {
		if err := f.f.Sync(); err != nil {
			q.mu.RLock()
			dropped := f.dropped
			q.mu.RUnlock()
			if !dropped {
				return err
			}
		}
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// drop empties a queue whose topic is deleted: its files are marked
// dropped (so a sync that listed them ignores their failure) and closed,
// and readers holding the queue find it empty. The caller removes the
// files.
func (q *consumeQueue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range q.files {
		f.dropped = true
		f.f.Close() // the file is removed: a close error loses nothing
	}
	q.files, q.min, q.max = nil, 0, 0
	q.dirty, q.newDirs = false, nil
}

func (q *consumeQueue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var err error
	for _, f := range q.files {
		if e := f.f.Close(); e != nil && err == nil {
			err = e
		}
	}
	q.files = nil
	return err
}

// queueTable holds every consume queue, under dir/<topic>/<queueID>/.
type queueTable struct {
	dir     string
	perFile int64
	fs      fileSystem

	mu     sync.RWMutex
	queues map[queueKey]*consumeQueue
}

func openQueueTable(dir string, perFile int, fs fileSystem) (*queueTable, error) {
	t := &queueTable{dir: dir, perFile: int64(perFile), fs: fs, queues: make(map[queueKey]*consumeQueue)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	topics, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, td := range topics {
		if !td.IsDir() {
			continue
		}
		qs, err := os.ReadDir(filepath.Join(dir, td.Name()))
		if err != nil {
			t.close()
			return nil, err
		}
		for _, qd := range qs {
			qid, err := strconv.ParseInt(qd.Name(), 10, 32)
			if err != nil || !qd.IsDir() {
				continue
			}
			q, err := openConsumeQueue(filepath.Join(dir, td.Name(), qd.Name()), t.perFile, fs)
			if err != nil {
				t.close()
				return nil, err
			}
			t.queues[queueKey{td.Name(), int32(qid)}] = q
		}
	}
	return t, nil
}

// get returns the queue for topic/qid, creating it if create is set.
func (t *queueTable) get(topic string, qid int32, create bool) *consumeQueue {
	k := queueKey{topic, qid}
	t.mu.RLock()
	q := t.queues[k]
	t.mu.RUnlock()
	if q != nil || !create {
		return q
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if q = t.queues[k]; q == nil {
		q = &consumeQueue{dir: filepath.Join(t.dir, topic, strconv.Itoa(int(qid))), perFile: t.perFile, fs: t.fs}
		t.queues[k] = q
	}
	return q
}

// removeTopic takes every queue of topic out of the table and drops it
// (see drop); the caller removes the topic's directory.
func (t *queueTable) removeTopic(topic string) {
	t.mu.Lock()
	var gone []*consumeQueue
	for k, q := range t.queues {
		if k.topic == topic {
			gone = append(gone, q)
			delete(t.queues, k)
		}
	}
	t.mu.Unlock()
	for _, q := range gone {
		q.drop()
	}
}

// topicMax returns the max offset of each queue the table holds of
// topic, by queue id; nil if it holds none.
func (t *queueTable) topicMax(topic string) map[int32]int64 {
	t.mu.RLock()
	var qs map[int32]*consumeQueue
	for k, q := range t.queues {
		if k.topic == topic {
			if qs == nil {
				qs = make(map[int32]*consumeQueue)
			}
			qs[k.qid] = q
		}
	}
	t.mu.RUnlock()
	if qs == nil {
		return nil
	}
	m := make(map[int32]int64, len(qs))
	for qid, q := range qs {
		_, m[qid] = q.bounds()
	}
	return m
}

// each calls fn for every queue.
func (t *queueTable) each(fn func(k queueKey, q *consumeQueue) error) error {
	t.mu.RLock()
	all := make(map[queueKey]*consumeQueue, len(t.queues))
	for k, q := range t.queues {
		all[k] = q
	}
	t.mu.RUnlock()
	for k, q := range all {
		if err := fn(k, q); err != nil {
			return err
		}
	}
	return nil
}

func (t *queueTable) close() error {
	return t.each(func(_ queueKey, q *consumeQueue) error { return q.close() })
}
