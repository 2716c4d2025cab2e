package txn

import (
	"context"
	"fmt"
	"strconv"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// EndRequest is an END_TRANSACTION.
type EndRequest struct {
	// Group is the producer group asking; it must be the half message's.
	Group string
	// HalfOffset is the half record's commit-log offset (commitLogOffset).
	HalfOffset int64
	// QueueOffset is the half record's HalfTopic offset
	// (tranStateTableOffset); it must match.
	QueueOffset int64
	// Outcome is what the producer decided.
	Outcome Outcome
	// FromCheck says the request answers a check-back.
	FromCheck bool
	// Admin skips the group and queue-offset checks (an operator
	// resolving a parked transaction).
	Admin bool
}

// EndResult says what END_TRANSACTION did.
type EndResult struct {
	// Txn is the transaction after the request.
	Txn Txn
	// Duplicate means the outcome had already been recorded; nothing was
	// written.
	Duplicate bool
	// Committed is where the committed message was stored (commit only,
	// not Duplicate).
	Committed store.AppendResult
	// Message is the committed message as stored (commit only, not
	// Duplicate).
	Message *message.Message
}

// End records a producer's outcome for a half message. Commit writes the
// message to its real topic; Rollback records that it never will be;
// Unknown changes nothing and leaves it to check-back. A repeated outcome
// is answered from the record (Duplicate) and never writes again; the
// opposite outcome of one already recorded is [ErrConflict]. A half
// message is identified by offset and verified against group and queue
// offset as RocketMQ does ([ErrUnknownTransaction], [ErrWrongGroup],
// [ErrWrongOffset]).
func (s *Service) End(ctx context.Context, req EndRequest) (EndResult, error) {
	if s.closed.Load() {
		return EndResult{}, ErrClosed
	}
	for {
		s.mu.Lock()
		e, ok := s.live[req.HalfOffset]
		if !ok {
			l := s.landing[req.HalfOffset]
			s.mu.Unlock()
			if l == nil {
				return s.endResolved(req)
			}
			select {
			case <-l.done:
				continue // look again: it is live now, unless it was not stored
			case <-ctx.Done():
				return EndResult{}, ctx.Err()
			}
		}
		if err := req.verify(e); err != nil {
			s.mu.Unlock()
			return EndResult{}, err
		}
		if req.Outcome == Unknown {
			t := e.txn()
			s.mu.Unlock()
			return EndResult{Txn: t}, nil
		}
		if wait := e.resolving; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue // look again: it may be resolved now
			case <-ctx.Done():
				return EndResult{}, ctx.Err()
			}
		}
		e.resolving = make(chan struct{})
		s.mu.Unlock()
		return s.resolve(ctx, e, req)
	}
}

func (req EndRequest) verify(e *entry) error {
	if req.Admin {
		return nil
	}
	if req.Group != e.group {
		return fmt.Errorf("%w: %q is not the half message's group %q", ErrWrongGroup, req.Group, e.group)
	}
	if req.QueueOffset != e.queueOffset {
		return fmt.Errorf("%w: %d, the half message's is %d", ErrWrongOffset, req.QueueOffset, e.queueOffset)
	}
	return nil
}

// endResolved answers END_TRANSACTION for a transaction no longer live.
func (s *Service) endResolved(req EndRequest) (EndResult, error) {
	e, ok, err := s.resolved(req.HalfOffset)
	if err != nil {
		return EndResult{}, err
	}
	if !ok {
		return EndResult{}, fmt.Errorf("%w: no half message at offset %d", ErrUnknownTransaction, req.HalfOffset)
	}
	if err := req.verify(e); err != nil {
		return EndResult{}, err
	}
	if req.Outcome != Unknown && req.Outcome.status() != e.status {
		return EndResult{Txn: e.txn()}, fmt.Errorf("%w: asked to %s, already %s", ErrConflict, req.Outcome, e.status)
	}
	return EndResult{Txn: e.txn(), Duplicate: req.Outcome != Unknown}, nil
}

// resolve writes the outcome's record, moves e to resolved and counts the
// outcome. The caller holds e.resolving; resolve lets it go once the
// record is known to be stored or not, which may be after it returns (see
// write): until then a repeated END_TRANSACTION waits, and writes no
// second record.
func (s *Service) resolve(ctx context.Context, e *entry, req EndRequest) (EndResult, error) {
	o := req.Outcome
	var m *message.Message
	if o == Commit {
		ext, err := s.readContent(e)
		if err != nil {
			return EndResult{}, fmt.Errorf("txn: %w", err)
		}
		m = committedMessage(&ext, e.half)
	} else {
		m = opRecord(opRollback, e.half, s.opts.Now().UnixMilli())
	}
	var t Txn
	// applied and late are guarded by s.mu (apply runs under it): an
	// outcome that lands after End returned its error is reported to
	// OnLateEnd, whichever of the two comes first.
	var applied, late bool
	result := func(r store.AppendResult) EndResult {
		out := EndResult{Txn: t}
		if o == Commit {
			out.Committed, out.Message = r, m
		}
		return out
	}
	var landedAt store.AppendResult
	res, err := s.write(ctx, m, func(r store.AppendResult) {
		s.settle(e, o.status(), r.PhysicalOffset)
		s.stats.outcome(o, req) // with the state, so Stats never shows one without the other
		t = e.txn()
		applied, landedAt = true, r
		if late && s.opts.OnLateEnd != nil {
			go s.opts.OnLateEnd(o, req, result(r))
		}
	}, func() { s.unclaim(e) })
	if err != nil {
		s.mu.Lock()
		late = true
		report := applied && s.opts.OnLateEnd != nil
		s.mu.Unlock()
		if report {
			go s.opts.OnLateEnd(o, req, result(landedAt))
		}
		return EndResult{}, err
	}
	out := EndResult{Txn: t}
	if o == Commit {
		out.Committed, out.Message = res, m
	}
	return out, nil
}

// unclaim lets go of e.resolving. Caller holds s.mu.
func (s *Service) unclaim(e *entry) {
	close(e.resolving)
	e.resolving = nil
}

// settle records e's final status, which the record at rec decided.
// Caller holds s.mu.
func (s *Service) settle(e *entry, st Status, rec int64) {
	e.status = st
	delete(s.live, e.half)
	s.unindexUniq(e)
	s.persist(e, rec)
}

// committedMessage is the message a commit writes to its real topic:
// RocketMQ's form, with the commit type in the sysFlag and the half
// record's offset as preparedTransactionOffset.
func committedMessage(half *message.Ext, halfOffset int64) *message.Message {
	m := half.Message
	m.Topic, _ = message.Property(half.Properties, message.PropertyRealTopic)
	qid, _ := strconv.ParseInt(half.Property(message.PropertyRealQueueID), 10, 32)
	m.QueueID = int32(qid)
	m.Properties = message.RemoveProperties(half.Properties, message.PropertyRealTopic, message.PropertyRealQueueID,
		message.PropertyTransactionPrepared, message.PropertyTransactionCheckTimes, PropertyHalfOffset, PropertyMoved)
	m.SysFlag = message.WithTransactionType(half.SysFlag, message.TransactionCommitType)
	m.PreparedTransactionOffset = halfOffset
	return &m
}

// Op record tags.
const (
	opRollback = "rollback"
	opResume   = "resume"
)

// opRecord is a rollback or resume record for the half message at half.
func opRecord(op string, half, nowMs int64) *message.Message {
	return &message.Message{Topic: OpTopic, BornTimestamp: nowMs, Body: strconv.AppendInt(nil, half, 10),
		Properties: message.Properties{message.PropertyTags: op}.Encode()}
}
