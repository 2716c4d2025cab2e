package delay

import (
	"fmt"
	"slices"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Lowest reports the lowest commit-log offset of a delayed message not yet
// delivered: the next one of each level, every indexed timer message past
// the delivery cursor, and the first timer message not indexed yet. ok is
// false when nothing is pending. It makes the Scheduler a store.Holder:
// the broker holds the store's retention below it, so a message delayed
// past fileReservedHours (or through a full disk) is still delivered. A
// delivered message is released only once its copy is durable: Lowest
// flushes the store first, and fails if it cannot.
//
// After Close it fails with ErrClosed, which a store reads as holding
// everything: retention must not run on without the scheduler's word.
func (s *Scheduler) Lowest() (lowest int64, ok bool, err error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return 0, false, ErrClosed
	}
	s.mu.Lock()
	levelNext := slices.Clone(s.levelNext)
	cursor, indexed := s.timer, s.indexed
	s.mu.Unlock()
	// The cursors pass a message once its copy is written: under
	// AsyncFlush perhaps not fsynced yet. Released then, retention could
	// remove the scheduled message, and an OS crash the copy, before the
	// next flush: the restart, from progress before the delivery, finds
	// the message gone. So the deliveries the cursors count are made
	// durable first, as Checkpoint does before it saves them.
	if err := s.st.Flush(); err != nil {
		return 0, false, fmt.Errorf("delay: hold: %w", err)
	}

	note := func(off int64, found bool) {
		if found && (!ok || off < lowest) {
			lowest, ok = off, true
		}
	}
	for l, next := range levelNext {
		off, found, err := s.entryOffset(ScheduleTopic, int32(l), next)
		if err != nil {
			return 0, false, err
		}
		note(off, found)
	}
	off, found, err := s.idx.lowestPhys(cursor)
	if err != nil {
		return 0, false, err
	}
	note(off, found)
	off, found, err = s.entryOffset(TimerTopic, 0, indexed)
	if err != nil {
		return 0, false, err
	}
	note(off, found)
	return lowest, ok, nil
}

// entryOffset returns the commit-log offset of the message at queue offset
// qoff of topic's queue qid, if it is there.
func (s *Scheduler) entryOffset(topic string, qid int32, qoff int64) (int64, bool, error) {
	r, err := s.st.GetMessages(topic, qid, qoff, store.GetOptions{MaxMessages: 1})
	if err != nil || r.Count == 0 {
		return 0, false, err
	}
	exts, err := message.DecodeAll(r.Records)
	if err != nil || len(exts) == 0 {
		return 0, false, err
	}
	return exts[0].CommitLogOffset, true, nil
}
