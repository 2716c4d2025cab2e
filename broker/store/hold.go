package store

import (
	"sync"
)

// A Holder keeps retention below the records it still needs.
type Holder interface {
	// Lowest reports the lowest commit-log offset its owner still reads a
	// record at, or ok false when it needs none. It is called from the
	// retention loop, at most once per retention pass and only when a
	// segment is due for removal; it must not call back into retention.
	// An error holds everything.
	Lowest() (lowest int64, ok bool, err error)
}

// A Mover is a Holder that can copy the records it holds below end to the
// end of the log (and read them there from then on), so that retention
// can go on: the transaction service moves an open transaction's half
// message this way, as RocketMQ writes it again on every check.
type Mover interface {
	Holder
	MoveBelow(end int64) error
}

// HoldFunc adapts a function to a Holder.
type HoldFunc func() (lowest int64, ok bool, err error)

// Lowest calls f.
func (f HoldFunc) Lowest() (int64, bool, error) { return f() }

// holds are the registered Holders.
type holds struct {
	mu   sync.Mutex
	next int
	byID map[int]namedHold
	// warned is the base of the segment last logged as held, plus one (0:
	// none); the retention loop alone uses it.
	warned int64
}

type namedHold struct {
	name string
	h    Holder
}

// Hold registers h under name (for log lines): retention removes no
// commit-log segment holding a record at or after the lowest offset h
// reports, neither for age (FileReserved) nor for disk use
// (DiskMaxUsedRatio), unless h is a Mover and moves those records to the
// end of the log when asked. The broker holds the delay scheduler's
// undelivered messages and the transaction service's open half messages
// this way. A disk that fills with held segments refuses appends
// (ErrWriteFailed). The returned func unregisters h.
func (s *Store) Hold(name string, h Holder) (release func()) {
	hs := &s.holds
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.byID == nil {
		hs.byID = map[int]namedHold{}
	}
	id := hs.next
	hs.next++
	hs.byID[id] = namedHold{name, h}
	return func() {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		delete(hs.byID, id)
	}
}

// heldAt is what one Holder reported in a retention pass.
type heldAt struct {
	name   string
	h      Holder
	lowest int64
	ok     bool
	err    error
}

// askHolds asks every Holder for its lowest offset.
func (s *Store) askHolds() []heldAt {
	hs := &s.holds
	hs.mu.Lock()
	list := make([]heldAt, 0, len(hs.byID))
	for _, nh := range hs.byID {
		list = append(list, heldAt{name: nh.name, h: nh.h})
	}
	hs.mu.Unlock()
	for i := range list {
		list[i].lowest, list[i].ok, list[i].err = list[i].h.Lowest()
		if list[i].err != nil {
			s.opts.Logger.Warn("retention: a hold failed; keeping the log", "hold", list[i].name, "err", list[i].err)
		}
	}
	return list
}

// holding returns the holds that need a record below end.
func holding(list []heldAt, end int64) []heldAt {
	var out []heldAt
	for _, a := range list {
		if a.err != nil || a.ok && a.lowest < end {
			out = append(out, a)
		}
	}
	return out
}
