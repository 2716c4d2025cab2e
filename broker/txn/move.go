package txn

import (
	"fmt"
	"strconv"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Lowest reports the lowest commit-log offset holding the message of an
// open transaction (pending, or parked after its checks), or where a write
// under way began: ok is false when none is. With MoveBelow it makes the Service a store.Mover: the
// broker holds the store's retention below it, so an open transaction's
// half message is never removed before it is committed or rolled back,
// durably: Lowest flushes the store first, and fails if it cannot.
//
// After Close it fails with ErrClosed, which a store reads as holding
// everything.
func (s *Service) Lowest() (lowest int64, ok bool, err error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return 0, false, ErrClosed
	}
	s.mu.Lock()
	for _, e := range s.live {
		if !ok || e.content < lowest {
			lowest, ok = e.content, true
		}
	}
	// A write under way (a half message the state does not have yet) is
	// held from the log end when it began: its record may be dispatched,
	// and its segment due, before it is applied.
	for _, floor := range s.inflight {
		if !ok || floor < lowest {
			lowest, ok = floor, true
		}
	}
	s.mu.Unlock()
	// A transaction leaves live once its outcome's record is written:
	// under AsyncFlush perhaps not fsynced yet. Released then, retention
	// could remove the half message, and an OS crash the outcome, before
	// the next flush: the restart makes the transaction pending again
	// (undoLost) and the producer's answer finds no message to commit. So
	// the outcomes applied so far are made durable first, as checkpoint
	// does before it syncs them.
	if err := s.st.Flush(); err != nil {
		return 0, false, fmt.Errorf("txn: hold: %w", err)
	}
	return lowest, ok, nil
}

// MoveBelow copies the message of every open transaction held below end
// to the end of the log (CheckMaxTopic, marked PropertyMoved) and, once the
// copy is durable, reads it there, status unchanged, so that retention can
// remove the old segment; RocketMQ gets the same by writing the half
// message again on every check. A transaction being resolved right now is
// left for the next pass. It returns the first error; the others are moved
// anyway.
func (s *Service) MoveBelow(end int64) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	var claimed []*entry
	for _, e := range s.live {
		if e.content < end && e.resolving == nil {
			e.resolving = make(chan struct{})
			claimed = append(claimed, e)
		}
	}
	s.mu.Unlock()
	var first error
	for _, e := range claimed {
		err := s.copyContent(e, true, func(r store.AppendResult) {
			e.content = r.PhysicalOffset
			s.persist(e, noRecord)
		})
		if err != nil && first == nil {
			first = fmt.Errorf("txn: move half message %d: %w", e.half, err)
		}
	}
	if len(claimed) > 0 && first == nil {
		s.opts.Logger.Info("txn: moved open transactions' messages to the end of the log", "count", len(claimed), "below", end)
	}
	return first
}

// readContent reads e's message for the caller holding e.resolving, and
// lets e go if it cannot.
func (s *Service) readContent(e *entry) (message.Ext, error) {
	content := e.content // e is the caller's until unclaimed
	ext, err := s.st.ReadMessage(content)
	if err != nil {
		s.mu.Lock()
		s.unclaim(e)
		s.mu.Unlock()
		return ext, fmt.Errorf("read half message %d at %d: %w", e.half, content, err)
	}
	return ext, nil
}

// copyContent writes a copy of e's message to CheckMaxTopic, carrying the
// half offset (and PropertyMoved when moved), and applies its result once
// stored and durable (see writeAnswered). The caller holds e.resolving;
// copyContent lets it go once the copy is known to be stored or not, so
// that Lowest and check-backs keep to the old record until the copy is
// durable.
func (s *Service) copyContent(e *entry, moved bool, apply func(store.AppendResult)) error {
	ext, err := s.readContent(e)
	if err != nil {
		return err
	}
	m := ext.Message
	m.Topic, m.QueueID = CheckMaxTopic, 0
	m.Properties = copyProperties(ext.Properties, e.half, moved)
	return s.writeAnswered(&m, apply, func() { s.unclaim(e) })
}

// copyProperties are the properties of a copy of the half message at half
// whose properties are props (see copyContent).
func copyProperties(props string, half int64, moved bool) string {
	props = message.SetProperty(props, PropertyHalfOffset, strconv.FormatInt(half, 10))
	if moved {
		return message.SetProperty(props, PropertyMoved, "true")
	}
	return message.RemoveProperties(props, PropertyMoved)
}
