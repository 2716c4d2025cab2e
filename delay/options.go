package delay

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Topics the scheduler owns.
const (
	// ScheduleTopic holds delay-level messages; level n is queue n-1 (RocketMQ's name).
	ScheduleTopic = "SCHEDULE_TOPIC_XXXX"
	// TimerTopic holds messages with an arbitrary delivery time (RocketMQ 5's name).
	TimerTopic = "rmq_sys_wheel_timer"
)

// DefaultLevels are RocketMQ's delay levels 1..18.
const DefaultLevels = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"

// Defaults.
const (
	DefaultMaxDelay           = 72 * time.Hour
	DefaultCheckpointInterval = time.Second
	DefaultBatchSize          = 2048
)

// MaxLevels is the most delay levels a scheduler takes.
const MaxLevels = 64

// ParseLevels parses a space-separated list of durations ("1s 5s 1m 2h",
// also RocketMQ's "1d"), each greater than zero, at most MaxLevels.
func ParseLevels(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Fields(s) {
		var d time.Duration
		var err error
		if n, ok := strings.CutSuffix(f, "d"); ok {
			var days int
			days, err = strconv.Atoi(n)
			if err == nil && days > int(math.MaxInt64/int64(24*time.Hour)) {
				err = strconv.ErrRange
			}
			d = time.Duration(days) * 24 * time.Hour
		} else {
			d, err = time.ParseDuration(f)
		}
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: delay level %d %q is not a positive duration", ErrInvalidOptions, len(out)+1, f)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no delay levels", ErrInvalidOptions)
	}
	if len(out) > MaxLevels {
		return nil, fmt.Errorf("%w: %d delay levels (at most %d)", ErrInvalidOptions, len(out), MaxLevels)
	}
	return out, nil
}

// FormatLevels writes levels as ParseLevels reads them, in RocketMQ's
// units where they fit (whole days as "1d", hours "2h", minutes "10m",
// seconds "30s"), else as Go writes a duration ("1.5s", "100ms").
func FormatLevels(levels []time.Duration) string {
	var b strings.Builder
	for i, d := range levels {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case d%(24*time.Hour) == 0:
			b.WriteString(strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d")
		case d%time.Hour == 0:
			b.WriteString(strconv.FormatInt(int64(d/time.Hour), 10) + "h")
		case d%time.Minute == 0:
			b.WriteString(strconv.FormatInt(int64(d/time.Minute), 10) + "m")
		case d%time.Second == 0:
			b.WriteString(strconv.FormatInt(int64(d/time.Second), 10) + "s")
		default:
			b.WriteString(d.String())
		}
	}
	return b.String()
}

// Options configure a [Scheduler].
type Options struct {
	// Dir holds the scheduler's progress and timer index. Required.
	Dir string
	// Levels are the delays of levels 1..len(Levels). Default DefaultLevels.
	Levels []time.Duration
	// MaxDelay is the longest arbitrary delivery delay accepted. Default 72 h.
	MaxDelay time.Duration
	// CheckpointInterval is how often progress is made durable. After a
	// crash, messages delivered since the last checkpoint are delivered
	// again, so this bounds duplicates. Default 1 s.
	CheckpointInterval time.Duration
	// BatchSize is how many due messages are written to the store in one
	// append (one group commit). Default 2048.
	BatchSize int
	// OnDelivered, if set, is called from the scheduler's goroutine with
	// each batch of messages once the store acknowledged it. It must not
	// block.
	OnDelivered func([]Delivery)
	// Clock is the time source. Default the system clock.
	Clock Clock
	// Logger receives delivery errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Levels == nil {
		o.Levels, _ = ParseLevels(DefaultLevels)
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first field out of range, naming it.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case len(o.Levels) == 0 || len(o.Levels) > MaxLevels:
		return fmt.Errorf("%w: %d delay levels (want 1..%d)", ErrInvalidOptions, len(o.Levels), MaxLevels)
	case o.MaxDelay < 0:
		return fmt.Errorf("%w: MaxDelay %v is negative", ErrInvalidOptions, o.MaxDelay)
	case o.CheckpointInterval < 0:
		return fmt.Errorf("%w: CheckpointInterval %v is negative", ErrInvalidOptions, o.CheckpointInterval)
	case o.BatchSize < 0:
		return fmt.Errorf("%w: BatchSize %d is negative", ErrInvalidOptions, o.BatchSize)
	}
	for i, l := range o.Levels {
		if l <= 0 {
			return fmt.Errorf("%w: level %d is %v", ErrInvalidOptions, i+1, l)
		}
	}
	return nil
}
