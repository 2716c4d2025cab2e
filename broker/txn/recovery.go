package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// recover loads the live transactions, drops state the log does not hold
// (beyond its end after a crash, or removed by retention), replays the log
// from the last checkpoint and undoes the changes whose records the log
// lost.
func (s *Service) recover() error {
	end := s.st.MaxPhysicalOffset()
	b := s.db.NewBatch()
	for _, p := range []byte{prefixLive, prefixResolved} {
		b.DeleteRange(stateKey(p, end), stateKey(p, math.MaxInt64), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("txn: trim state: %w", err)
	}
	covered, err := s.covered()
	if err != nil {
		return err
	}
	if err := s.loadLive(); err != nil {
		return err
	}
	from := min(covered, end)
	notes, err := s.notesFrom(from)
	if err != nil {
		return err
	}
	if err := s.replay(from, notes); err != nil {
		return err
	}
	return s.checkpoint()
}

// replay applies the commit log from offset from to the state. notes are
// the changes noted since from (record offset to half offset): replay
// crosses off each whose record it meets, and undoes the rest (undoLost).
func (s *Service) replay(from int64, notes map[int64]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := lastNotes(notes)
	next, err := s.st.Scan(from, func(x *message.Ext) error {
		half, ok := txnHalf(x)
		if !ok {
			return nil
		}
		if h, noted := notes[x.CommitLogOffset]; noted && h == half {
			delete(notes, x.CommitLogOffset)
		}
		return s.applyRecord(x, half)
	})
	if err != nil {
		return fmt.Errorf("txn: replay the commit log from %d: %w", from, err)
	}
	if err := s.undoLost(notes, last); err != nil {
		return err
	}
	s.opts.Logger.Info("txn: recovered", "live", len(s.live), "replayedFrom", from, "to", next)
	s.dirty = true
	return nil
}

// covered reads the checkpointed offset (0 when there is none).
func (s *Service) covered() (int64, error) {
	v, closer, err := s.db.Get(keyCovered)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("txn: read checkpoint: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("txn: checkpoint of %d bytes is damaged", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func (s *Service) loadLive() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLive}, UpperBound: []byte{prefixLive + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		e, err := decodeEntry(it.Value())
		if err != nil {
			return err
		}
		if e.status.live() {
			s.live[e.half] = e
			s.indexUniq(e)
		}
	}
	return it.Error()
}

// txnHalf returns the offset of the half message a transaction record is
// about; ok is false for any other record.
func txnHalf(x *message.Ext) (half int64, ok bool) {
	var err error
	switch {
	case x.Topic == HalfTopic:
		half = x.CommitLogOffset
	case x.Topic == CheckMaxTopic:
		half, err = strconv.ParseInt(x.Property(PropertyHalfOffset), 10, 64)
	case x.Topic == OpTopic:
		half, err = strconv.ParseInt(string(x.Body), 10, 64)
	case message.TransactionType(x.SysFlag) == message.TransactionCommitType:
		half = x.PreparedTransactionOffset
	default:
		return 0, false
	}
	return half, err == nil
}

// applyRecord replays x, a record about the half message at half.
// Replaying a record the state already reflects changes nothing. Caller
// holds s.mu.
func (s *Service) applyRecord(x *message.Ext, half int64) error {
	if x.Topic == HalfTopic {
		if _, ok := s.live[half]; ok {
			return nil
		}
		if _, ok, err := s.resolved(half); err != nil || ok {
			return err
		}
		s.addHalf(&x.Message, store.AppendResult{PhysicalOffset: x.CommitLogOffset, QueueOffset: x.QueueOffset,
			StoreTimestamp: x.StoreTimestamp, MsgID: x.MsgID()})
		return nil
	}
	e, ok := s.live[half]
	if !ok {
		return nil
	}
	switch x.Topic {
	case CheckMaxTopic:
		if x.Property(PropertyMoved) == "" {
			e.status = Parked
		}
		e.content = x.CommitLogOffset
		s.persist(e, noRecord)
	case OpTopic:
		switch x.Property(message.PropertyTags) {
		case opRollback:
			s.settle(e, RolledBack, x.CommitLogOffset)
		case opResume:
			if e.status == Parked {
				s.resume(e, x.CommitLogOffset)
			}
		}
	default: // a commit
		s.settle(e, Committed, x.CommitLogOffset)
	}
	return nil
}

// addHalf records a stored half message as pending. Caller holds s.mu.
func (s *Service) addHalf(m *message.Message, r store.AppendResult) {
	group, _ := message.Property(m.Properties, message.PropertyProducerGroup)
	topic, _ := message.Property(m.Properties, message.PropertyRealTopic)
	uniq, _ := message.Property(m.Properties, message.PropertyUniqKey)
	keys, _ := message.Property(m.Properties, message.PropertyKeys)
	e := &entry{half: r.PhysicalOffset, queueOffset: r.QueueOffset, content: r.PhysicalOffset,
		storeMs: r.StoreTimestamp, nextCheckMs: s.firstCheck(r.StoreTimestamp, m.Properties), status: Pending,
		group: group, topic: topic, uniq: uniq, keys: keys, msgID: r.MsgID}
	s.live[e.half] = e
	s.indexUniq(e)
	s.persist(e, r.PhysicalOffset)
	s.stats.halves.Add(1)
}

// indexUniq and unindexUniq keep byUniq in step with live. Caller holds s.mu.
func (s *Service) indexUniq(e *entry) {
	if e.uniq != "" && !slices.Contains(s.byUniq[e.uniq], e) {
		s.byUniq[e.uniq] = append(s.byUniq[e.uniq], e)
	}
}

func (s *Service) unindexUniq(e *entry) {
	live := slices.DeleteFunc(s.byUniq[e.uniq], func(x *entry) bool { return x == e })
	if len(live) == 0 {
		delete(s.byUniq, e.uniq)
	} else {
		s.byUniq[e.uniq] = live
	}
}

// dropExpired forgets transactions whose records retention removed: a
// live one cannot be committed any more (it is logged), a resolved one
// need not be remembered. Caller holds s.mu.
func (s *Service) dropExpired() {
	minOff := s.st.MinPhysicalOffset()
	for half, e := range s.live {
		if e.content < minOff && e.resolving == nil {
			s.opts.Logger.Error("txn: half message removed by retention before it was resolved",
				"half", half, "group", e.group, "topic", e.topic, "transactionId", e.uniq, "status", e.status)
			delete(s.live, half)
			s.unindexUniq(e)
			s.db.Delete(stateKey(prefixLive, half), pebble.NoSync)
			s.stats.expired.Add(1)
		}
	}
	if err := s.db.DeleteRange(stateKey(prefixResolved, 0), stateKey(prefixResolved, minOff), pebble.NoSync); err != nil {
		s.opts.Logger.Error("txn: forget expired outcomes", "err", err)
	}
}

// checkpoint syncs the state with the offset it covers: every transaction
// record below it is reflected in the synced state, and durable, so the
// notes of the changes they made go.
func (s *Service) checkpoint() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	covered := s.st.MaxPhysicalOffset()
	for _, floor := range s.inflight {
		covered = min(covered, floor)
	}
	if !s.dirty {
		// No transaction record was applied since the last checkpoint
		// (and the ones under way pin covered): only other records
		// passed, so covered moves on without a flush, and the next
		// Open does not replay them.
		if covered <= s.saved {
			return nil
		}
		if err := s.db.Set(keyCovered, binary.BigEndian.AppendUint64(nil, uint64(covered)), pebble.Sync); err != nil {
			return fmt.Errorf("txn: checkpoint: %w", err)
		}
		s.saved = covered
		return nil
	}
	s.dropExpired()
	// The state follows records the store has written; under AsyncFlush
	// they may not be fsynced yet, and a state saved past a record an OS
	// crash then loses (a commit's message, say) would lose it for good. So
	// the store flushes first, and s.mu keeps new states out until
	// Pebble's synced write, which syncs every state write made before it.
	err := s.st.Flush()
	if err == nil {
		b := s.db.NewBatch()
		b.DeleteRange(stateKey(prefixNoted, 0), stateKey(prefixNoted, covered), nil)
		b.Set(keyCovered, binary.BigEndian.AppendUint64(nil, uint64(covered)), nil)
		err = b.Commit(pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("txn: checkpoint: %w", err)
	}
	s.dirty, s.saved = false, covered
	return nil
}
