package store

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/internal/pebbledb"
)

// index maps topic+key to the physical offsets of the records that carry
// the key (UNIQ_KEY and each KEYS entry). Entries are grouped by commit-log
// segment so retention drops a segment's entries with one range delete:
//
//	'k' segmentBase(8) topic 0x01 key 0x00 physicalOffset(8) -> storeTimestamp(8)
//	'm' "dispatched"                                          -> offset(8)
//
// Writes are not fsynced one by one: the checkpoint syncs the WAL, and
// recovery re-indexes from the checkpoint (writes are idempotent).
type index struct {
	db    *pebble.DB
	batch *pebble.Batch
}

var metaDispatched = []byte("mdispatched")

func openIndex(dir string) (*index, error) {
	db, err := pebbledb.Open(dir)
	if err != nil {
		return nil, err
	}
	return &index{db: db}, nil
}

func indexPrefix(segBase int64, topic, key string) []byte {
	b := make([]byte, 0, 1+8+len(topic)+1+len(key)+1+8)
	b = append(b, 'k')
	b = binary.BigEndian.AppendUint64(b, uint64(segBase))
	b = append(b, topic...)
	b = append(b, 1)
	b = append(b, key...)
	return append(b, 0)
}

// add stages an entry; commit writes the staged entries.
func (x *index) add(segBase int64, topic, key string, phys, storeTs int64) error {
	if x.batch == nil {
		x.batch = x.db.NewBatch()
	}
	k := binary.BigEndian.AppendUint64(indexPrefix(segBase, topic, key), uint64(phys))
	return x.batch.Set(k, binary.BigEndian.AppendUint64(nil, uint64(storeTs)), nil)
}

// commit writes the staged entries together with the dispatch position.
func (x *index) commit(dispatched int64) error {
	if x.batch == nil {
		x.batch = x.db.NewBatch()
	}
	if err := x.batch.Set(metaDispatched, binary.BigEndian.AppendUint64(nil, uint64(dispatched)), nil); err != nil {
		return err
	}
	err := x.batch.Commit(pebble.NoSync)
	x.batch.Close()
	x.batch = nil
	return err
}

// sync makes every committed write durable.
func (x *index) sync() error { return x.db.LogData(nil, pebble.Sync) }

// lookup returns the offsets of records with key in topic stored within
// [begin, end] (ms), newest first, at most max, searching segments in the
// order given (newest first).
func (x *index) lookup(segBases []int64, topic, key string, begin, end int64, max int) ([]int64, error) {
	var out []int64
	for _, base := range segBases {
		prefix := indexPrefix(base, topic, key)
		upper := append(append([]byte(nil), prefix[:len(prefix)-1]...), 1)
		it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
		if err != nil {
			return out, err
		}
		var seg []int64
		for ok := it.Last(); ok; ok = it.Prev() {
			k, v := it.Key(), it.Value()
			if len(k) != len(prefix)+8 || len(v) != 8 {
				continue
			}
			ts := int64(binary.BigEndian.Uint64(v))
			if ts < begin || ts > end {
				continue
			}
			seg = append(seg, int64(binary.BigEndian.Uint64(k[len(prefix):])))
			if len(out)+len(seg) >= max {
				break
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return out, err
		}
		out = append(out, seg...)
		if len(out) >= max {
			return out[:max], nil
		}
	}
	return out, nil
}

// dropSegment removes every entry of the segment at base.
func (x *index) dropSegment(base int64) error {
	lo := binary.BigEndian.AppendUint64([]byte{'k'}, uint64(base))
	hi := binary.BigEndian.AppendUint64([]byte{'k'}, uint64(base+1))
	return x.db.DeleteRange(lo, hi, pebble.NoSync)
}

func (x *index) close() error {
	if x.batch != nil {
		x.batch.Close()
		x.batch = nil
	}
	return x.db.Close()
}
