package store

import (
	"sync"
)

// HoldFunc reports the lowest commit-log offset its owner still reads a
// record at, or ok false when it needs none. It is called from the
// retention loop, only when a segment is due for removal, and must not
// call back into retention.
type HoldFunc func() (lowest int64, ok bool, err error)

// holds are the registered HoldFuncs.
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
	fn   HoldFunc
}

// Hold registers fn under name (for log lines): retention removes no
// commit-log segment holding a record at or after the lowest offset fn
// reports, neither for age (FileReserved) nor for disk use
// (DiskMaxUsedRatio). The delay scheduler holds its pending delayed
// messages this way, and the transaction service its open half messages,
// so neither is lost to retention; a disk that then fills refuses appends
// (ErrWriteFailed) instead. A HoldFunc that fails holds everything. The
// returned func unregisters fn.
func (s *Store) Hold(name string, fn HoldFunc) (release func()) {
	h := &s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID == nil {
		h.byID = map[int]namedHold{}
	}
	id := h.next
	h.next++
	h.byID[id] = namedHold{name, fn}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.byID, id)
	}
}

// heldBelow reports whether a hold still needs a record below end, and
// which one.
func (s *Store) heldBelow(end int64) (name string, lowest int64, held bool) {
	h := &s.holds
	h.mu.Lock()
	list := make([]namedHold, 0, len(h.byID))
	for _, nh := range h.byID {
		list = append(list, nh)
	}
	h.mu.Unlock()
	for _, nh := range list {
		low, ok, err := nh.fn()
		if err != nil {
			s.opts.Logger.Warn("retention: hold failed; keeping the segment", "hold", nh.name, "err", err)
			return nh.name, -1, true
		}
		if ok && low < end {
			return nh.name, low, true
		}
	}
	return "", 0, false
}
