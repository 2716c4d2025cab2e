package delay

import "errors"

// Errors returned by the delay package; test them with errors.Is.
var (
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("delay: invalid options")
	// ErrBadDelay means a message's DELAY or TIMER_* property is not a
	// number, is negative, or asks for more than Options.MaxDelay.
	ErrBadDelay = errors.New("delay: bad delay")
	// ErrNoRealTopic means a message addressed to a schedule topic does not
	// say where it is to be delivered (REAL_TOPIC / REAL_QID).
	ErrNoRealTopic = errors.New("delay: scheduled message has no real topic")
	// ErrClosed means the scheduler was closed.
	ErrClosed = errors.New("delay: scheduler closed")
)
