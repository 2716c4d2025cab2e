package txn

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// notesFrom reads the notes of records at or after from (see persist):
// record offset to half offset.
func (s *Service) notesFrom(from int64) (map[int64]int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: stateKey(prefixNoted, from),
		UpperBound: []byte{prefixNoted + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	notes := make(map[int64]int64)
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 || len(v) != 8 {
			return nil, fmt.Errorf("txn: note of %d+%d bytes is damaged", len(k), len(v))
		}
		notes[int64(binary.BigEndian.Uint64(k[1:]))] = int64(binary.BigEndian.Uint64(v))
	}
	return notes, it.Error()
}

// lastNotes maps each half offset in notes to its last record, the one
// that made the transaction's state what it is.
func lastNotes(notes map[int64]int64) map[int64]int64 {
	last := make(map[int64]int64)
	for rec, half := range notes {
		if l, ok := last[half]; !ok || rec > l {
			last[half] = rec
		}
	}
	return last
}

// undoLost reverts the state changes whose records the log lost in an OS
// crash: lost holds the notes replay did not meet (record offset to half
// offset), last the last record noted for each transaction. A transaction
// whose half record is lost is forgotten; one whose last change is lost
// (a commit, a rollback, a resume) is pending again, its checks reset and
// due at once, so that check-back asks the producer again. The notes of
// lost records go with it, so that no later record at their offsets is
// taken for them. Caller holds s.mu.
func (s *Service) undoLost(lost, last map[int64]int64) error {
	if len(lost) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	for rec := range lost {
		b.Delete(stateKey(prefixNoted, rec), nil)
	}
	for half, rec := range last {
		_, lastLost := lost[rec]
		h, ok := lost[half]
		halfLost := ok && h == half
		if !lastLost && !halfLost {
			continue
		}
		e := s.live[half]
		if e == nil {
			r, ok, err := s.resolved(half)
			if err != nil {
				return err
			}
			if !ok {
				continue // dropped already (its half record past the log's end, or expired)
			}
			e = r
		}
		if halfLost {
			s.opts.Logger.Warn("txn: the commit log lost a half message in a crash; forgetting it",
				"half", half, "group", e.group, "topic", e.topic, "transactionId", e.uniq)
			delete(s.live, half)
			s.unindexUniq(e)
			b.Delete(stateKey(prefixLive, half), nil)
			b.Delete(stateKey(prefixResolved, half), nil)
			continue
		}
		s.opts.Logger.Warn("txn: the commit log lost the record of a transaction's state in a crash; checking it back again",
			"half", half, "group", e.group, "topic", e.topic, "transactionId", e.uniq, "was", e.status)
		e.status, e.checks, e.nextCheckMs = Pending, 0, s.opts.Now().UnixMilli()
		s.live[half] = e
		s.indexUniq(e)
		stage(b, e, noRecord)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("txn: undo lost changes: %w", err)
	}
	return nil
}
