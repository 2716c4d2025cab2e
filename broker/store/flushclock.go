package store

import "time"

// flushClock times SyncFlush timeouts (Options.SyncFlushTimeout). The
// default is the real clock; tests replace it (Options.timeouts) to move
// time by hand, so that which append times out does not depend on how
// late a loaded machine runs a goroutine.
type flushClock interface {
	Now() time.Time
	// AfterFunc calls f, in a goroutine of its own or the clock's, once d
	// has passed, unless stop is called first; stop reports whether it
	// stopped the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the operating system's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
