package delay

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/internal/pebbledb"
)

// timerKey orders timer messages by due time, then by commit-log offset.
type timerKey struct {
	due  int64 // ms
	phys int64
}

func (k timerKey) less(o timerKey) bool {
	return k.due < o.due || k.due == o.due && k.phys < o.phys
}

func (k timerKey) bytes() []byte {
	b := make([]byte, 0, 17)
	b = append(b, 't')
	b = binary.BigEndian.AppendUint64(b, uint64(k.due))
	return binary.BigEndian.AppendUint64(b, uint64(k.phys))
}

// timerIndex is the due-time-ordered index of timer messages:
//
//	't' due(8) phys(8) -> size(4)
//	"mindexed"         -> next TimerTopic queue offset to index (8)
//
// Entries and the indexed offset are committed in one batch, so after a
// crash the index resumes exactly where its durable state ends.
type timerIndex struct {
	db *pebble.DB
	// failAdd, if set (tests only), runs as add starts: an error it
	// returns fails the add before anything is committed, as a failed
	// Pebble write does.
	failAdd func() error
}

var metaIndexed = []byte("mindexed")

func openTimerIndex(dir string) (*timerIndex, error) {
	db, err := pebbledb.Open(dir)
	if err != nil {
		return nil, err
	}
	return &timerIndex{db: db}, nil
}

// indexed returns the next TimerTopic queue offset to index.
func (x *timerIndex) indexed() (int64, error) {
	v, closer, err := x.db.Get(metaIndexed)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return int64(binary.BigEndian.Uint64(v)), nil
}

type timerEntry struct {
	key  timerKey
	size int32
}

// add commits entries together with the new indexed offset.
func (x *timerIndex) add(entries []timerEntry, indexed int64) error {
	if x.failAdd != nil {
		if err := x.failAdd(); err != nil {
			return err
		}
	}
	b := x.db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		if err := b.Set(e.key.bytes(), binary.BigEndian.AppendUint32(nil, uint32(e.size)), nil); err != nil {
			return err
		}
	}
	if err := b.Set(metaIndexed, binary.BigEndian.AppendUint64(nil, uint64(indexed)), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// scan returns up to max entries after `after` with due <= dueLimit, in
// order, and the first entry beyond them (ok=false if none).
func (x *timerIndex) scan(after timerKey, dueLimit int64, max int) (due []timerEntry, next timerEntry, ok bool, err error) {
	it, err := x.iterAfter(after)
	if err != nil {
		return nil, next, false, err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 17 || len(v) != 4 {
			continue
		}
		e := timerEntry{key: timerKey{int64(binary.BigEndian.Uint64(k[1:])), int64(binary.BigEndian.Uint64(k[9:]))},
			size: int32(binary.BigEndian.Uint32(v))}
		if e.key.due > dueLimit || len(due) >= max {
			return due, e, true, it.Error()
		}
		due = append(due, e)
	}
	return due, next, false, it.Error()
}

// sync makes committed writes durable.
func (x *timerIndex) sync() error { return x.db.LogData(nil, pebble.Sync) }

// dropThrough deletes every entry up to and including k (delivered).
func (x *timerIndex) dropThrough(k timerKey) error {
	return x.db.DeleteRange([]byte{'t'}, timerKey{k.due, k.phys + 1}.bytes(), pebble.NoSync)
}

func (x *timerIndex) close() error { return x.db.Close() }

// lowestPhys returns the lowest commit-log offset among the entries after
// `after` (the timer messages not delivered yet), reading all of them.
func (x *timerIndex) lowestPhys(after timerKey) (int64, bool, error) {
	it, err := x.iterAfter(after)
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	var low int64
	found := false
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); len(k) == 17 {
			if p := int64(binary.BigEndian.Uint64(k[9:])); !found || p < low {
				low, found = p, true
			}
		}
	}
	return low, found, it.Error()
}

// iterAfter iterates the entries after k, in key order.
func (x *timerIndex) iterAfter(k timerKey) (*pebble.Iterator, error) {
	return x.db.NewIter(&pebble.IterOptions{LowerBound: timerKey{k.due, k.phys + 1}.bytes(), UpperBound: []byte{'u'}})
}

// dropPast deletes every entry whose record is past phys and sets the
// indexed offset, synced.
func (x *timerIndex) dropPast(phys, indexed int64) error {
	it, err := x.iterAfter(timerKey{due: 0, phys: -1})
	if err != nil {
		return err
	}
	b := x.db.NewBatch()
	defer b.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); len(k) == 17 && int64(binary.BigEndian.Uint64(k[9:])) > phys {
			if err := b.Delete(k, nil); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if err := b.Set(metaIndexed, binary.BigEndian.AppendUint64(nil, uint64(indexed)), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
