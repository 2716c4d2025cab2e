package txn

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// CheckRequest is one check-back: the half message, restored to its real
// topic and queue, and what CHECK_TRANSACTION_STATE carries.
type CheckRequest struct {
	// Group is the producer group to ask.
	Group string
	// HalfOffset and QueueOffset identify the half message
	// (commitLogOffset and tranStateTableOffset).
	HalfOffset, QueueOffset int64
	// MsgID is the half record's offset message id.
	MsgID string
	// TransactionID is the message's UNIQ_KEY.
	TransactionID string
	// Check counts this check, from 1.
	Check int
	// Message is the half message with its real topic and queue.
	Message message.Ext
}

// checkPeriod is how often the check loop looks for due checks.
func (s *Service) checkPeriod() time.Duration {
	d := min(s.opts.Timeout, s.opts.CheckInterval) / 4
	return min(max(d, 5*time.Millisecond), time.Second)
}

// firstCheck is when a half message stored at storeMs is first checked:
// after Timeout, or after its CHECK_IMMUNITY_TIME_IN_SECONDS if longer.
func (s *Service) firstCheck(storeMs int64, props string) int64 {
	wait := s.opts.Timeout
	if v, ok := message.Property(props, message.PropertyCheckImmunityTimeInSecs); ok {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec > 0 {
			wait = max(wait, time.Duration(min(sec, int64(365*24*3600)))*time.Second)
		}
	}
	return storeMs + wait.Milliseconds()
}

// checkRound sends the due checks, the most overdue first, and parks the
// half messages whose checks are used up.
func (s *Service) checkRound() {
	now := s.opts.Now().UnixMilli()
	s.mu.Lock()
	var due []*entry
	for _, e := range s.live {
		if e.status == Pending && e.resolving == nil && e.nextCheckMs <= now {
			due = append(due, e)
		}
	}
	checker := s.checker
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b *entry) int { return cmp.Compare(a.nextCheckMs, b.nextCheckMs) })
	if len(due) > s.opts.MaxChecksPerRound {
		due = due[:s.opts.MaxChecksPerRound]
	}
	for _, e := range due {
		select {
		case <-s.ctx.Done():
			return
		default:
		}
		s.checkOne(e, checker, now)
	}
}

// checkOne checks or parks one due half message.
func (s *Service) checkOne(e *entry, checker Checker, now int64) {
	s.mu.Lock()
	if e.status != Pending || e.resolving != nil || s.live[e.half] != e {
		s.mu.Unlock()
		return // resolved meanwhile
	}
	if int(e.checks) >= s.opts.CheckMax {
		e.resolving = make(chan struct{})
		s.mu.Unlock()
		s.park(e)
		return
	}
	req := CheckRequest{Group: e.group, HalfOffset: e.half, QueueOffset: e.queueOffset, MsgID: e.msgID,
		TransactionID: e.uniq, Check: int(e.checks) + 1}
	// Counted before it is sent: the producer's answer may resolve the
	// transaction before Check returns, and its outcome names the check
	// that decided it. Taken back below if it reached nobody.
	e.checks++
	content := e.content
	s.mu.Unlock()
	sent := false
	if checker != nil {
		ext, err := s.st.ReadMessage(content)
		if err != nil {
			s.opts.Logger.Error("txn: read half message for check", "half", e.half, "err", err)
		} else {
			req.Message = checkMessage(&ext, e, req.Check)
			sent = checker.Check(req)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sent {
		s.stats.checks.Add(1)
	} else {
		e.checks--
		s.stats.unreached.Add(1)
	}
	if e.status != Pending || s.live[e.half] != e {
		return
	}
	e.nextCheckMs = now + s.opts.CheckInterval.Milliseconds()
	s.persist(e, noRecord)
}

// checkMessage restores the half message's real topic and queue and its
// identity in the half queue, as RocketMQ's check request body carries it.
func checkMessage(ext *message.Ext, e *entry, check int) message.Ext {
	m := *ext
	m.Topic = e.topic
	qid, _ := strconv.ParseInt(ext.Property(message.PropertyRealQueueID), 10, 32)
	m.QueueID = int32(qid)
	m.CommitLogOffset = e.half
	m.QueueOffset = e.queueOffset
	m.Properties = message.SetProperty(message.RemoveProperties(ext.Properties, PropertyHalfOffset, PropertyMoved),
		message.PropertyTransactionCheckTimes, strconv.Itoa(check))
	return m
}

// park moves a half message whose checks are used up to CheckMaxTopic.
// The caller holds e.resolving; park lets it go (see copyContent).
func (s *Service) park(e *entry) {
	var t Txn
	err := s.copyContent(e, false, func(r store.AppendResult) {
		e.status, e.content = Parked, r.PhysicalOffset
		s.persist(e, noRecord)
		s.stats.parked.Add(1)
		t = e.txn()
	})
	if err != nil {
		// Not stored (or the service is closing): e stays pending, and
		// the next round checks it again.
		s.opts.Logger.Error("txn: park half message", "half", e.half, "err", err)
		return
	}
	// e is no longer this goroutine's (a Resume may be changing it): what
	// follows reads t, taken under s.mu.
	if s.opts.OnParked != nil {
		s.opts.OnParked(t)
	}
	s.opts.Logger.Warn("txn: half message parked after max checks", "half", t.HalfOffset, "group", t.Group,
		"topic", t.Topic, "transactionId", t.TransactionID, "checks", t.Checks)
}

// Resume puts a parked transaction back to pending with its check count
// reset, checked at once. id is the half message's offset message id, its
// transaction id (UNIQ_KEY) or its commit-log offset in decimal.
func (s *Service) Resume(ctx context.Context, id string) (Txn, error) {
	if s.closed.Load() {
		return Txn{}, ErrClosed
	}
	s.mu.Lock()
	e, err := s.findLocked(id)
	switch {
	case err != nil:
		s.mu.Unlock()
		return Txn{}, err
	case e.status != Parked || e.resolving != nil:
		st := e.status
		s.mu.Unlock()
		return Txn{}, fmt.Errorf("%w: %q is %s", ErrNotParked, id, st)
	}
	e.resolving = make(chan struct{})
	s.mu.Unlock()
	var t Txn
	_, err = s.write(ctx, opRecord(opResume, e.half, s.opts.Now().UnixMilli()), func(r store.AppendResult) {
		s.resume(e, r.PhysicalOffset)
		t = e.txn()
	}, func() { s.unclaim(e) })
	if err != nil {
		return Txn{}, err
	}
	return t, nil
}

// resume makes a parked entry pending again, as the resume record at rec
// says. Caller holds s.mu.
func (s *Service) resume(e *entry, rec int64) {
	e.status, e.checks, e.nextCheckMs = Pending, 0, s.opts.Now().UnixMilli()
	s.persist(e, rec)
}
