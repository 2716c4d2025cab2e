package txn

import (
	"fmt"
	"log/slog"
	"time"
)

// Topics the service owns (RocketMQ's names).
const (
	// HalfTopic holds half messages, queue 0.
	HalfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"
	// OpTopic holds rollback and resume records, queue 0.
	OpTopic = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
	// CheckMaxTopic holds copies of parked half messages, queue 0.
	CheckMaxTopic = "TRANS_CHECK_MAX_TIME_TOPIC"
)

// PropertyHalfOffset names, on a parked copy, the commit-log offset of the
// half message it parks.
const PropertyHalfOffset = "HB_TXN_HALF_OFFSET"

// PropertyMoved marks a copy in CheckMaxTopic that retention asked for
// (Service.MoveBelow): it moves the message, and leaves the status alone.
const PropertyMoved = "HB_TXN_MOVED"

// Defaults, RocketMQ's where it has one.
const (
	DefaultTimeout            = 6 * time.Second
	DefaultCheckInterval      = 30 * time.Second
	DefaultCheckMax           = 15
	DefaultCheckpointInterval = time.Second
	DefaultMaxChecksPerRound  = 2000
)

// Checker sends a check-back to a live producer of a group. It must not
// block for long: it is called from the service's check loop.
type Checker interface {
	// Check asks a producer of req.Group for the outcome of req and
	// reports whether a producer was reached. A check that reached nobody
	// is not counted against Options.CheckMax.
	Check(req CheckRequest) bool
}

// CheckerFunc adapts a function to [Checker].
type CheckerFunc func(req CheckRequest) bool

// Check calls f(req).
func (f CheckerFunc) Check(req CheckRequest) bool { return f(req) }

// Options configure a [Service].
type Options struct {
	// Dir holds the transaction state database. Required.
	Dir string
	// Timeout is how old a half message must be before its first check
	// (RocketMQ's transactionTimeOut). Default 6 s.
	Timeout time.Duration
	// CheckInterval is the time between checks of one half message
	// (RocketMQ's transactionCheckInterval). Default 30 s.
	CheckInterval time.Duration
	// CheckMax is how many checks that reached a producer a half message
	// gets before it is parked in CheckMaxTopic (RocketMQ's
	// transactionCheckMax). Default 15.
	CheckMax int
	// MaxChecksPerRound caps the checks sent in one pass of the check
	// loop, the most overdue first, so a backlog drains in steps instead of
	// flooding producers. Default 2000.
	MaxChecksPerRound int
	// CheckpointInterval is how often the state database is synced with
	// the commit-log offset it covers; it bounds the replay after a crash.
	// Default 1 s.
	CheckpointInterval time.Duration
	// Checker sends check-backs. Nil means no checks are sent (and none
	// counted) until one is set with [Service.SetChecker].
	Checker Checker
	// OnParked, if set, is called after a half message was parked, with
	// the transaction as parked. It must not block.
	OnParked func(t Txn)
	// OnLateEnd, if set, is called (on its own goroutine) with an outcome
	// whose record landed after End had returned an error to its caller
	// (the sync flush timed out, or the caller's context ended): the
	// outcome is recorded all the same, and a repeat is a Duplicate.
	OnLateEnd func(o Outcome, req EndRequest, out EndResult)
	// Now is the service's clock. Default time.Now.
	Now func() time.Time
	// Logger receives service events. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.CheckMax == 0 {
		o.CheckMax = DefaultCheckMax
	}
	if o.MaxChecksPerRound == 0 {
		o.MaxChecksPerRound = DefaultMaxChecksPerRound
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first option out of range, naming it.
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case o.Timeout < 0:
		return fmt.Errorf("%w: Timeout %v is negative", ErrInvalidOptions, o.Timeout)
	case o.CheckInterval < 0:
		return fmt.Errorf("%w: CheckInterval %v is negative", ErrInvalidOptions, o.CheckInterval)
	case o.CheckMax < 0:
		return fmt.Errorf("%w: CheckMax %d is negative", ErrInvalidOptions, o.CheckMax)
	case o.MaxChecksPerRound < 0:
		return fmt.Errorf("%w: MaxChecksPerRound %d is negative", ErrInvalidOptions, o.MaxChecksPerRound)
	case o.CheckpointInterval < 0:
		return fmt.Errorf("%w: CheckpointInterval %v is negative", ErrInvalidOptions, o.CheckpointInterval)
	}
	return nil
}
