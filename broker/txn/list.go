package txn

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
)

// List returns the live transactions (pending and parked), oldest first.
// A status of 0 lists both; limit <= 0 means all.
func (s *Service) List(status Status, limit int) []Txn {
	s.mu.Lock()
	out := make([]Txn, 0, len(s.live))
	for _, e := range s.live {
		if status == 0 || e.status == status {
			out = append(out, e.txn())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Txn) int { return cmp.Compare(a.HalfOffset, b.HalfOffset) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Get returns a transaction, live or resolved, by its half message's
// offset message id, transaction id (UNIQ_KEY; live ones only) or
// commit-log offset in decimal. An id that names several live
// transactions (see [Service.Find]) finds none.
func (s *Service) Get(id string, halfOffset int64) (Txn, bool) {
	s.mu.Lock()
	e, err := s.findLocked(id)
	if errors.Is(err, ErrAmbiguousID) {
		s.mu.Unlock()
		return Txn{}, false
	}
	if e == nil && halfOffset >= 0 {
		e = s.live[halfOffset]
	}
	if e != nil {
		t := e.txn()
		s.mu.Unlock()
		return t, true
	}
	s.mu.Unlock()
	if halfOffset < 0 {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return Txn{}, false
		}
		halfOffset = n
	}
	r, ok, err := s.resolved(halfOffset)
	if err != nil || !ok {
		return Txn{}, false
	}
	return r.txn(), true
}

// Find returns the live transaction id names: its commit-log offset in
// decimal, its offset message id, or its transaction id (UNIQ_KEY). It
// fails with [ErrUnknownTransaction] when id names none, and with
// [ErrAmbiguousID] when id is the transaction id of several (of other
// producer groups, or other messages sent under one id): an operator then
// names one by its offset message id.
func (s *Service) Find(id string) (Txn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.findLocked(id)
	if err != nil {
		return Txn{}, err
	}
	return e.txn(), nil
}

// findLocked finds a live transaction by id (see Find). Caller holds s.mu.
func (s *Service) findLocked(id string) (*entry, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty id", ErrUnknownTransaction)
	}
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		if e := s.live[n]; e != nil {
			return e, nil
		}
	}
	var found *entry
	for _, e := range s.live {
		switch {
		case e.msgID == id:
			return e, nil
		case e.uniq == id && found == nil:
			found = e
		case e.uniq == id:
			return nil, fmt.Errorf("%w: %q is the transaction id of the half messages at %d and %d (and perhaps more); name one by its offset message id",
				ErrAmbiguousID, id, min(found.half, e.half), max(found.half, e.half))
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q is not a live transaction", ErrUnknownTransaction, id)
	}
	return found, nil
}

// Stats are the service's counters since it opened, and its gauges.
type Stats struct {
	Pending, Parked     int   // live transactions now
	Halves              int64 // half messages stored (or replayed)
	Commits, Rollbacks  int64 // outcomes recorded, from producers
	CheckCommits        int64 // commits that answered a check-back
	CheckRollbacks      int64 // rollbacks that answered a check-back
	AdminCommits        int64 // commits an operator decided (EndRequest.Admin)
	AdminRollbacks      int64 // rollbacks an operator decided
	Checks              int64 // check-backs that reached a producer
	Unreached           int64 // due checks with no producer online (not counted)
	ParkedTotal         int64 // half messages parked after max checks
	DuplicateHalves     int64 // half sends answered with a live one of the same id
	ExpiredBeforeResult int64 // live half messages removed by retention
}

type counters struct {
	halves, commits, rollbacks, checkCommits, checkRollbacks atomic.Int64
	adminCommits, adminRollbacks                             atomic.Int64
	checks, unreached, parked, expired, duplicates           atomic.Int64
}

// outcome counts an outcome of req.
func (c *counters) outcome(o Outcome, req EndRequest) {
	switch {
	case o == Commit && req.Admin:
		c.adminCommits.Add(1)
	case o == Commit && req.FromCheck:
		c.checkCommits.Add(1)
	case o == Commit:
		c.commits.Add(1)
	case o == Rollback && req.Admin:
		c.adminRollbacks.Add(1)
	case o == Rollback && req.FromCheck:
		c.checkRollbacks.Add(1)
	case o == Rollback:
		c.rollbacks.Add(1)
	}
}

// Stats returns the counters and gauges, consistent with each other: an
// outcome is counted together with the state change it records.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Halves: s.stats.halves.Load(), Commits: s.stats.commits.Load(), Rollbacks: s.stats.rollbacks.Load(),
		CheckCommits: s.stats.checkCommits.Load(), CheckRollbacks: s.stats.checkRollbacks.Load(),
		AdminCommits: s.stats.adminCommits.Load(), AdminRollbacks: s.stats.adminRollbacks.Load(),
		Checks: s.stats.checks.Load(), Unreached: s.stats.unreached.Load(), ParkedTotal: s.stats.parked.Load(),
		ExpiredBeforeResult: s.stats.expired.Load(), DuplicateHalves: s.stats.duplicates.Load()}
	for _, e := range s.live {
		if e.status == Pending {
			st.Pending++
		} else {
			st.Parked++
		}
	}
	return st
}
