package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/halfbackmq/halfback/message"
)

// The key index maps topic+key to the records that carry the key (their
// UNIQ_KEY and each KEYS entry), in the shape of RocketMQ's IndexFile: a
// hash-slot table whose slots head chains of fixed-size entries. There is
// one file per commit-log segment, named like the segment, so retention
// drops a segment's keys by removing one file. A file is:
//
//	header   indexHeaderSize bytes: magic, version, slot count, whether the
//	         slots and entry count are valid, entry count, CRC of these
//	slots    slot count × 4: entry number + 1 of the slot's newest entry
//	entries  indexEntrySize each, in dispatch (physical offset) order:
//	         key hash (4), the chain's previous entry number + 1 (4),
//	         physical offset (8), store timestamp (8)
//
// The dispatcher appends entries to the current segment's file as it
// dispatches and keeps that file's slots in memory; they are written, with
// a valid header, when the dispatcher moves on to the next segment (then
// the file never changes again) and at Close. A hash is not the key: a
// lookup checks every candidate against its record.
//
// Nothing is fsynced per entry: the checkpoint syncs the current file, and
// recovery drops the entries at or past the checkpoint's dispatch position,
// rebuilds the slots from the entries kept, and re-dispatches from there
// (index.recover).
const (
	indexMagic      = 0x48424958 // "HBIX"
	indexVersion    = 1
	indexHeaderSize = 64
	indexEntrySize  = 24
	// indexMaxEntries is how many entries one file can number (uint32,
	// with 0 meaning none). Keys past it in a segment are not indexed.
	indexMaxEntries = math.MaxUint32 - 1
)

// indexHeader is the fixed start of an index file.
type indexHeader struct {
	slots uint32
	// valid says that the slots on disk and entries are the file's whole
	// content. It is false while the dispatcher appends to the file.
	valid   bool
	entries uint32
}

func (h indexHeader) encode() []byte {
	b := make([]byte, indexHeaderSize)
	binary.BigEndian.PutUint32(b[0:], indexMagic)
	binary.BigEndian.PutUint32(b[4:], indexVersion)
	binary.BigEndian.PutUint32(b[8:], h.slots)
	if h.valid {
		b[15] = 1
	}
	binary.BigEndian.PutUint32(b[16:], h.entries)
	binary.BigEndian.PutUint32(b[20:], crc32.ChecksumIEEE(b[:20]))
	return b
}

func decodeIndexHeader(b []byte) (indexHeader, error) {
	if len(b) < indexHeaderSize || binary.BigEndian.Uint32(b) != indexMagic {
		return indexHeader{}, fmt.Errorf("%w: not an index file", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != indexVersion {
		return indexHeader{}, fmt.Errorf("%w: index file version %d, want %d", ErrCorrupt, v, indexVersion)
	}
	if crc32.ChecksumIEEE(b[:20]) != binary.BigEndian.Uint32(b[20:]) {
		return indexHeader{}, fmt.Errorf("%w: index file header checksum", ErrCorrupt)
	}
	h := indexHeader{slots: binary.BigEndian.Uint32(b[8:]), valid: b[15] == 1, entries: binary.BigEndian.Uint32(b[16:])}
	if h.slots == 0 || h.slots&(h.slots-1) != 0 || h.slots > maxIndexSlots {
		return indexHeader{}, fmt.Errorf("%w: index file has %d slots", ErrCorrupt, h.slots)
	}
	return h, nil
}

// entriesAt is the file offset of entry 0.
func (h indexHeader) entriesAt() int64 { return indexHeaderSize + 4*int64(h.slots) }

const maxIndexSlots = 1 << 22

// indexSlotsFor is the slot count for segments of segSize bytes: one per
// KiB of log (a power of two, 256 to 4 Mi), so that a segment of 1 KiB
// messages with one key each averages one entry per slot. 1 GiB segments
// get 4 MiB of slots.
func indexSlotsFor(segSize int64) uint32 {
	n := uint32(256)
	for int64(n)<<10 < segSize && n < maxIndexSlots {
		n <<= 1
	}
	return n
}

// keyHash is FNV-1a over topic, a 0x01 separator (which a topic cannot
// contain) and key.
func keyHash(topic, key string) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h = (h ^ uint32(topic[i])) * prime
	}
	h = (h ^ 1) * prime
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * prime
	}
	return h
}

type indexEntry struct {
	hash    uint32
	prev    uint32
	phys    int64
	storeTs int64
}

func appendIndexEntry(b []byte, e indexEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, e.hash)
	b = binary.BigEndian.AppendUint32(b, e.prev)
	b = binary.BigEndian.AppendUint64(b, uint64(e.phys))
	return binary.BigEndian.AppendUint64(b, uint64(e.storeTs))
}

func getIndexEntry(b []byte) indexEntry {
	return indexEntry{
		hash:    binary.BigEndian.Uint32(b),
		prev:    binary.BigEndian.Uint32(b[4:]),
		phys:    int64(binary.BigEndian.Uint64(b[8:])),
		storeTs: int64(binary.BigEndian.Uint64(b[16:])),
	}
}

// segIndex is the index file of the segment the dispatcher is in.
type segIndex struct {
	base  int64
	path  string
	f     file
	slots uint32

	mu      sync.RWMutex // guards the fields below: the dispatcher writes, lookups read
	heads   []uint32     // the slots
	written uint32       // entries in the file
	pend    []byte       // entries staged by add, numbered from written; flush writes them
}

func (a *segIndex) entriesAt() int64 { return indexHeader{slots: a.slots}.entriesAt() }

// add stages an entry, linking it into its slot's chain.
func (a *segIndex) add(hash uint32, phys, storeTs int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uint64(a.written) + uint64(len(a.pend)/indexEntrySize)
	if n >= indexMaxEntries {
		return false
	}
	slot := hash & (a.slots - 1)
	a.pend = appendIndexEntry(a.pend, indexEntry{hash: hash, prev: a.heads[slot], phys: phys, storeTs: storeTs})
	a.heads[slot] = uint32(n + 1)
	return true
}

// flush writes the staged entries.
func (a *segIndex) flush() error {
	if len(a.pend) == 0 {
		return nil
	}
	if _, err := a.f.WriteAt(a.pend, a.entriesAt()+int64(a.written)*indexEntrySize); err != nil {
		return err
	}
	a.mu.Lock()
	a.written += uint32(len(a.pend) / indexEntrySize)
	a.pend = a.pend[:0]
	a.mu.Unlock()
	return nil
}

// finish writes the staged entries, the slots and a valid header, and
// syncs the file: from then on a lookup reads the file alone.
func (a *segIndex) finish() error {
	if err := a.flush(); err != nil {
		return err
	}
	b := make([]byte, 4*len(a.heads))
	for i, h := range a.heads {
		binary.BigEndian.PutUint32(b[4*i:], h)
	}
	if _, err := a.f.WriteAt(b, indexHeaderSize); err != nil {
		return err
	}
	if err := a.f.Sync(); err != nil { // the slots before the header that vouches for them
		return err
	}
	if _, err := a.f.WriteAt(indexHeader{slots: a.slots, valid: true, entries: a.written}.encode(), 0); err != nil {
		return err
	}
	return a.f.Sync()
}

// snapshot returns what a lookup of hash needs from the file being
// written: the chain's head, how many entries the file holds, and a copy of
// the staged entries if the chain starts among them.
func (a *segIndex) snapshot(hash uint32) (head, written uint32, pend []byte) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	head, written = a.heads[hash&(a.slots-1)], a.written
	if head > written {
		pend = append([]byte(nil), a.pend...)
	}
	return head, written, pend
}

// index is the store's key index: a directory of segment index files.
// The dispatcher (or Open's recovery, before it starts) is the only writer.
type index struct {
	dir     string
	segSize int64
	slots   uint32 // of new files
	fs      fileSystem

	mu     sync.Mutex // guards active: lookups and sync read it, the writer replaces it
	active *segIndex  // the file the writer appends to, nil between segments

	// staged is the commit-log offset up to which records have been
	// given to add: records below it are skipped, so that a
	// dispatch retried after an error adds no entry twice.
	staged int64
	// partial is recover's file for the segment the recovery start is in,
	// which becomes active once recover's caller has rebuilt the files
	// of earlier segments (activate).
	partial *segIndex
}

func openIndex(dir string, segSize int64, fs fileSystem) (*index, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &index{dir: dir, segSize: segSize, slots: indexSlotsFor(segSize), fs: fs}, nil
}

func (x *index) path(base int64) string { return filepath.Join(x.dir, segmentName(base)) }

// add adds the record's UNIQ_KEY and KEYS to the index of its segment
// (segBase), opening that segment's file when the record is its first,
// after finishing the previous one. Records come in log order; one below
// what is already staged (a dispatch retried after an error) is skipped.
// A segment's keys past indexMaxEntries are not indexed.
func (x *index) add(r *dispatchRecord, segBase int64) error {
	if r.phys < x.staged {
		return nil
	}
	if a := x.active; a == nil || a.base != segBase {
		if err := x.enter(segBase, x.path(segBase)); err != nil {
			return err
		}
	}
	a := x.active
	x.staged = r.phys + int64(r.size)
	if uniq, ok := message.Property(r.props, message.PropertyUniqKey); ok && uniq != "" {
		if !a.add(keyHash(r.topic, uniq), r.phys, r.storeTs) {
			return nil
		}
	}
	keys, _ := message.Property(r.props, message.PropertyKeys)
	for k := range strings.FieldsSeq(keys) { // as message.Keys, without a slice
		if !a.add(keyHash(r.topic, k), r.phys, r.storeTs) {
			return nil
		}
	}
	return nil
}

// enter finishes the active file and makes a new file at path (the
// segment's, or a rebuild's) the active one, for the segment at base.
func (x *index) enter(base int64, path string) error {
	if err := x.finishActive(); err != nil {
		return err
	}
	f, err := x.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(indexHeader{slots: x.slots}.encode(), 0); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(x.dir); err != nil {
		f.Close()
		return err
	}
	a := &segIndex{base: base, path: path, f: f, slots: x.slots, heads: make([]uint32, x.slots)}
	x.mu.Lock()
	x.active = a
	x.mu.Unlock()
	return nil
}

// rebuildSuffix names an index file being rebuilt from the log (Open's
// recovery): it gets its segment's name only once finished, so that a
// crash during the rebuild leaves no file that looks complete.
const rebuildSuffix = ".rebuild"

// beginRebuild starts rebuilding the file of the segment at base: the
// records given to add until endRebuild go into a new file under a
// temporary name.
func (x *index) beginRebuild(base int64) error {
	return x.enter(base, x.path(base)+rebuildSuffix)
}

// endRebuild finishes the rebuilt file and gives it its segment's name.
// The file of the segment holding start stays open as the one activate
// makes active; the others are closed.
func (x *index) endRebuild(start int64) error {
	a := x.active
	if err := a.finish(); err != nil {
		return err
	}
	final := x.path(a.base)
	if err := os.Rename(a.path, final); err != nil {
		return err
	}
	if err := syncDir(x.dir); err != nil {
		return err
	}
	a.path = final
	x.mu.Lock()
	x.active = nil
	x.mu.Unlock()
	if a.base+x.segSize > start {
		x.partial = a
		return nil
	}
	return a.f.Close()
}

// finishActive finishes the active file (if any) and closes it.
func (x *index) finishActive() error {
	a := x.active
	if a == nil {
		return nil
	}
	if err := a.finish(); err != nil {
		return err
	}
	x.mu.Lock()
	x.active = nil
	x.mu.Unlock()
	return a.f.Close()
}

// commit writes the staged entries of every record below dispatched. (A
// segment's file is finished when the next segment's first record is
// added, or at close.)
func (x *index) commit(dispatched int64) error {
	x.staged = max(x.staged, dispatched)
	if x.active == nil {
		return nil
	}
	return x.active.flush()
}

// sync makes every committed entry durable.
func (x *index) sync() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.active == nil {
		return nil
	}
	return x.active.f.Sync()
}

// lookup returns the offsets of records with key in topic stored within
// [begin, end] (ms), newest first, at most max, searching segments in the
// order given (newest first). match checks a candidate against its record
// (a hash is not the key); it returns false for a record that does not
// carry the key or is gone.
func (x *index) lookup(segBases []int64, topic, key string, begin, end int64, max int, match func(phys int64) (bool, error)) ([]int64, error) {
	hash := keyHash(topic, key)
	var out []int64
	for _, base := range segBases {
		var err error
		if out, err = x.lookupSegment(base, hash, begin, end, max, match, out); err != nil || len(out) >= max {
			return out, err
		}
	}
	return out, nil
}

func (x *index) lookupSegment(base int64, hash uint32, begin, end int64, max int, match func(int64) (bool, error), out []int64) ([]int64, error) {
	var head, written, slots uint32
	var pend []byte
	x.mu.Lock()
	a := x.active
	if a != nil && a.base == base {
		head, written, pend = a.snapshot(hash)
		slots = a.slots
	}
	x.mu.Unlock()
	f, err := x.fs.OpenFile(x.path(base), os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil // removed by retention, or nothing dispatched there yet
	}
	if err != nil {
		return out, err
	}
	defer f.Close()
	var b [indexHeaderSize]byte
	if a == nil || a.base != base {
		if _, err := f.ReadAt(b[:], 0); errors.Is(err, io.EOF) {
			return out, nil // just created by the dispatcher, which is entering the segment
		} else if err != nil {
			return out, err
		}
		h, err := decodeIndexHeader(b[:])
		if err != nil {
			return out, fmt.Errorf("index file %s: %w", x.path(base), err)
		}
		if !h.valid {
			return out, nil // being entered, or left by dropSegment
		}
		slots, written = h.slots, h.entries
		if _, err := f.ReadAt(b[:4], indexHeaderSize+4*int64(hash&(slots-1))); err != nil {
			return out, err
		}
		head = binary.BigEndian.Uint32(b[:])
	}
	entriesAt := indexHeader{slots: slots}.entriesAt()
	for n := head; n != 0; {
		i := n - 1
		var e indexEntry
		if i >= written {
			p := int(i-written) * indexEntrySize
			if p+indexEntrySize > len(pend) {
				return out, fmt.Errorf("%w: index entry %d of %s", ErrCorrupt, i, x.path(base))
			}
			e = getIndexEntry(pend[p:])
		} else {
			if _, err := f.ReadAt(b[:indexEntrySize], entriesAt+int64(i)*indexEntrySize); errors.Is(err, io.EOF) {
				return out, fmt.Errorf("%w: index file %s ends before entry %d", ErrCorrupt, x.path(base), i)
			} else if err != nil {
				return out, err
			}
			e = getIndexEntry(b[:])
		}
		if e.prev >= n { // chains run to lower entry numbers; anything else is damage
			return out, fmt.Errorf("%w: index entry %d of %s links forward", ErrCorrupt, i, x.path(base))
		}
		if e.hash == hash && e.storeTs >= begin && e.storeTs <= end {
			ok, err := match(e.phys)
			if err != nil {
				return out, err
			}
			if ok {
				if out = append(out, e.phys); len(out) >= max {
					return out, nil
				}
			}
		}
		n = e.prev
	}
	return out, nil
}

// dropSegment removes the index file of the segment at base. (If the
// dispatcher still has it open, it goes on writing to the unlinked file
// until it moves on; the segment is gone from the log, so no lookup asks.)
func (x *index) dropSegment(base int64) error {
	if err := os.Remove(x.path(base)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// abandon closes the files without finishing any, as a crash would leave
// them (Open's error path: what it wrote is recovered next time).
func (x *index) abandon() {
	for _, a := range []*segIndex{x.active, x.partial} {
		if a != nil {
			a.f.Close()
		}
	}
	x.mu.Lock()
	x.active = nil
	x.mu.Unlock()
	x.partial = nil
}

// close finishes the active file: the next Open reads its slots instead of
// rebuilding them. It does not mark the segment done: Open's recovery
// decides that from the dispatch position.
func (x *index) close() error {
	if x.partial != nil {
		x.partial.f.Close()
		x.partial = nil
	}
	a := x.active
	if a == nil {
		return nil
	}
	err := a.finish()
	x.mu.Lock()
	x.active = nil
	x.mu.Unlock()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// recover makes the index files agree with a commit log whose segments are
// segBases (ascending) and whose records from start on are about to be
// dispatched again. Files of segments no longer in the log, or wholly at or
// past start, are removed. A file whose header is valid and whose entries
// all lie below start is kept as it is. Any other file is scanned: its
// entries are kept up to the first that is not below start, not in its
// segment, out of order, or not linked as the slots rebuilt so far say
// (a torn or stale tail), and the file is cut there. Files of segments that
// end at or before start are then finished; the one start lies in becomes
// the active file at activate. Files left half rebuilt by an earlier
// recovery are removed. recover returns the bases of segments below start
// whose file is missing or unreadable, oldest first: the caller rebuilds
// each from the log (beginRebuild, add, endRebuild) before activate.
func (x *index) recover(segBases []int64, start int64) (missing []int64, err error) {
	have := make(map[int64]bool, len(segBases))
	for _, b := range segBases {
		have[b] = true
	}
	names, err := os.ReadDir(x.dir)
	if err != nil {
		return nil, err
	}
	found := make(map[int64]bool)
	for _, n := range names {
		if strings.HasSuffix(n.Name(), rebuildSuffix) {
			if err := os.Remove(filepath.Join(x.dir, n.Name())); err != nil {
				return nil, err
			}
			continue
		}
		base, err := strconv.ParseInt(n.Name(), 10, 64)
		if err != nil || len(n.Name()) != 20 || n.IsDir() {
			continue
		}
		if !have[base] || base >= start {
			if err := os.Remove(x.path(base)); err != nil {
				return nil, err
			}
			continue
		}
		ok, err := x.recoverFile(base, start)
		if err != nil {
			return nil, err
		}
		found[base] = ok
	}
	for _, b := range segBases {
		if b < start && !found[b] {
			missing = append(missing, b)
		}
	}
	return missing, nil
}

// recoverFile brings the file of the segment at base (< start) into
// shape; ok is false if the file is unreadable, and then it is removed.
func (x *index) recoverFile(base, start int64) (ok bool, err error) {
	path := x.path(base)
	f, err := x.fs.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
		if err == nil && !ok {
			err = os.Remove(path)
		}
	}()
	var hb [indexHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	h, herr := decodeIndexHeader(hb[:])
	if herr != nil {
		return false, nil
	}
	segEnd := base + x.segSize
	a := &segIndex{base: base, path: path, f: f, slots: h.slots, heads: make([]uint32, h.slots)}
	if h.valid {
		last := int64(-1)
		if h.entries > 0 {
			var eb [indexEntrySize]byte
			if _, err := f.ReadAt(eb[:], h.entriesAt()+int64(h.entries-1)*indexEntrySize); err != nil {
				return false, nil
			}
			last = getIndexEntry(eb[:]).phys
		}
		if last < start {
			if segEnd <= start {
				return true, nil // done and untouched since
			}
			if err := a.readHeads(); err != nil {
				return false, nil
			}
			a.written = h.entries
			keep, x.partial = true, a
			return true, nil
		}
	}
	if err := a.rebuild(min(start, segEnd)); err != nil {
		return false, err
	}
	if segEnd <= start {
		return true, a.finish()
	}
	keep, x.partial = true, a
	return true, nil
}

// readHeads reads a valid file's slots.
func (a *segIndex) readHeads() error {
	b := make([]byte, 4*int(a.slots))
	if _, err := a.f.ReadAt(b, indexHeaderSize); err != nil {
		return err
	}
	for i := range a.heads {
		a.heads[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return nil
}

// rebuild scans the file's entries, keeps the run of good ones below
// limit (rebuilding the slots from them), cuts the file after it and marks
// the header not valid (the file is written to again, or finished).
func (a *segIndex) rebuild(limit int64) error {
	if _, err := a.f.WriteAt(indexHeader{slots: a.slots}.encode(), 0); err != nil {
		return err
	}
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	at := a.entriesAt()
	total := max(0, (fi.Size()-at)/indexEntrySize)
	buf := make([]byte, 64<<10/indexEntrySize*indexEntrySize)
	var n uint32
	prevPhys := a.base
scan:
	for read := int64(0); read < total && uint64(n) < indexMaxEntries; {
		k := min(int64(len(buf)), (total-read)*indexEntrySize)
		if _, err := a.f.ReadAt(buf[:k], at+read*indexEntrySize); err != nil {
			return err
		}
		for p := int64(0); p < k; p += indexEntrySize {
			e := getIndexEntry(buf[p:])
			slot := e.hash & (a.slots - 1)
			if e.phys < prevPhys || e.phys >= limit || e.prev != a.heads[slot] {
				break scan
			}
			n++
			a.heads[slot] = n
			prevPhys = e.phys
		}
		read += k / indexEntrySize
	}
	a.written = n
	if err := a.f.Truncate(at + int64(n)*indexEntrySize); err != nil {
		return err
	}
	return a.f.Sync()
}

// activate makes the file of the segment holding the recovery start (kept
// by recover, or rebuilt) the active one.
func (x *index) activate() error {
	p := x.partial
	x.partial = nil
	if p == nil {
		return nil
	}
	// Appends follow: the header must not vouch for the slots on disk.
	if _, err := p.f.WriteAt(indexHeader{slots: p.slots}.encode(), 0); err != nil {
		p.f.Close()
		return err
	}
	if err := p.f.Sync(); err != nil {
		p.f.Close()
		return err
	}
	x.mu.Lock()
	x.active = p
	x.mu.Unlock()
	return nil
}
