package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/message"
)

// DelayOptions configure [RunDelay].
type DelayOptions struct {
	// Dir is the directory the run works in; a fresh subdirectory is made
	// and removed at the end. Required; put it on a real disk.
	Dir string
	// Flush is the store's flush type (delivery is one group commit per batch).
	Flush store.FlushType
	// Messages is how many messages are scheduled, burst included. At least Burst+1.
	Messages int
	// DueSpread is the window the messages fall due in, after Lead. At least 1 s.
	DueSpread time.Duration
	// Lead is the time before the first arbitrary-time message is due, so
	// that scheduling overlaps delivery only for the short delay levels.
	// Default 30 s (scheduling a million messages takes about 15 s here).
	// A message whose time has passed before it is stored is delivered at
	// once, not scheduled; the result counts those as StoredAfterDue.
	Lead time.Duration
	// Burst is how many messages fall due at exactly the same millisecond,
	// in the middle of the window; zero means none.
	Burst int
	// Size is the message body in bytes. Default 64.
	Size int
	// SegmentSize is the store's commit-log segment size in bytes; zero
	// means the store's default (1 GiB, which a SYNC_FLUSH store zero-fills
	// when it opens).
	SegmentSize int64
	// Logger receives progress. Default: discard.
	Logger *slog.Logger
}

// DelayResult is what [RunDelay] measured. Lateness is a delivered
// message's store time minus its due time.
type DelayResult struct {
	Flush           string  `json:"flush"`
	Messages        int     `json:"messages"`
	Delivered       int     `json:"delivered"`
	Missing         int     `json:"missing"`
	Duplicates      int     `json:"duplicates"`
	StoredAfterDue  int     `json:"stored_after_due"`
	LevelMessages   int     `json:"level_messages"`
	TimerMessages   int     `json:"timer_messages"`
	LatenessP50ms   float64 `json:"lateness_p50_ms"`
	LatenessP99ms   float64 `json:"lateness_p99_ms"`
	LatenessMaxms   float64 `json:"lateness_max_ms"`
	Burst           int     `json:"burst"`
	BurstDrainms    float64 `json:"burst_drain_ms"`
	BurstMsgsPerSec float64 `json:"burst_msgs_per_sec"`
	ScheduleSec     float64 `json:"schedule_sec"`
	// QuietP99ms is the p99 lateness of non-burst messages due after
	// scheduling finished, when delivery is not competing with a million
	// sends for the disk and the two cores.
	QuietP99ms       float64 `json:"lateness_p99_ms_after_scheduling"`
	QuietMaxms       float64 `json:"lateness_max_ms_after_scheduling"`
	DeliveredPerSec  float64 `json:"delivered_msgs_per_sec"`
	DueSpreadSeconds float64 `json:"due_spread_sec"`
}

func (o DelayOptions) validate() (DelayOptions, error) {
	if o.Lead == 0 {
		o.Lead = 30 * time.Second
	}
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.Dir == "":
		return o, fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case o.Burst < 0 || o.Messages <= o.Burst:
		return o, fmt.Errorf("%w: Messages %d must exceed Burst %d", ErrInvalidOptions, o.Messages, o.Burst)
	case o.DueSpread < time.Second:
		return o, fmt.Errorf("%w: DueSpread %v, want at least 1s", ErrInvalidOptions, o.DueSpread)
	case o.Lead < 0 || o.Size < 1 || o.Size > MaxSize:
		return o, fmt.Errorf("%w: Lead %v or Size %d out of range", ErrInvalidOptions, o.Lead, o.Size)
	case o.SegmentSize < 0:
		return o, fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidOptions, o.SegmentSize)
	}
	return o, nil
}

// RunDelay schedules Messages messages that fall due within DueSpread
// after Lead: a third on the delay levels that fit the window, the rest at
// arbitrary times spread evenly, and Burst of them at one instant in the
// middle. It waits until all are delivered (or a deadline passes) and
// measures how late they were.
func RunDelay(ctx context.Context, o DelayOptions) (DelayResult, error) {
	o, err := o.validate()
	if err != nil {
		return DelayResult{}, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return DelayResult{}, err
	}
	dir, err := os.MkdirTemp(o.Dir, "bench-delay-")
	if err != nil {
		return DelayResult{}, err
	}
	defer os.RemoveAll(dir)

	var sched atomic.Pointer[delay.Scheduler]
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), FlushType: o.Flush, Logger: o.Logger, SegmentSize: o.SegmentSize,
		OnDispatch: func(topic string, _ int32, _ int64) {
			if s := sched.Load(); s != nil {
				s.Notify(topic)
			}
		}})
	if err != nil {
		return DelayResult{}, err
	}
	defer st.Close()
	s, err := delay.New(st, delay.Options{Dir: filepath.Join(dir, "delay"), Logger: o.Logger})
	if err != nil {
		return DelayResult{}, err
	}
	sched.Store(s)
	s.Start()
	defer s.Close()

	levels, _ := delay.ParseLevels(delay.DefaultLevels)
	fit := 0 // levels whose delay fits in Lead+DueSpread
	for fit < len(levels) && levels[fit] <= o.Lead+o.DueSpread {
		fit++
	}
	start := time.Now()
	burstAt := start.Add(o.Lead + o.DueSpread/2).UnixMilli()
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, o.Size)
	res := DelayResult{Flush: o.Flush.String(), Messages: o.Messages, Burst: o.Burst, DueSpreadSeconds: o.DueSpread.Seconds()}
	const batch = 1000
	msgs := make([]*message.Message, 0, batch)
	for i := 0; i < o.Messages; i++ {
		p := message.Properties{message.PropertyUniqKey: strconv.Itoa(i)}
		switch {
		case i < o.Burst:
			p[message.PropertyTimerDeliverMS] = strconv.FormatInt(burstAt, 10)
			res.TimerMessages++
		case fit > 0 && i%3 == 0:
			p[message.PropertyDelayTimeLevel] = strconv.Itoa(1 + rng.IntN(fit))
			res.LevelMessages++
		default:
			due := start.Add(o.Lead + time.Duration(rng.Int64N(int64(o.DueSpread))))
			p[message.PropertyTimerDeliverMS] = strconv.FormatInt(due.UnixMilli(), 10)
			res.TimerMessages++
		}
		if v, ok := p[message.PropertyTimerDeliverMS]; ok {
			p[benchDueProperty] = v
		}
		m := &message.Message{Topic: "bench_delay", QueueID: int32(i % 4), Body: body, Properties: p.Encode()}
		delayed, err := s.Prepare(m)
		if err != nil {
			return res, err
		}
		if !delayed {
			res.StoredAfterDue++
		}
		if msgs = append(msgs, m); len(msgs) == batch || i == o.Messages-1 {
			if _, err := st.AppendBatch(ctx, msgs); err != nil {
				return res, err
			}
			s.Scheduled(msgs...)
			msgs = msgs[:0]
		}
	}
	res.ScheduleSec = time.Since(start).Seconds()
	o.Logger.Info("scheduled", "messages", o.Messages, "seconds", res.ScheduleSec)

	deadline := start.Add(o.Lead + o.DueSpread + levels[max(fit-1, 0)] + time.Minute)
	for s.Stats().Delivered < uint64(o.Messages-res.StoredAfterDue) {
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return res, measureDelivered(st, o, burstAt, start.Add(time.Duration(res.ScheduleSec*float64(time.Second))).UnixMilli(), &res)
}

// benchDueProperty carries an arbitrary-time message's due time, so one
// delivered at once (stored after its time) is still measured.
const benchDueProperty = "BENCH_DUE_MS"

// measureDelivered reads the real topic back and fills in the lateness figures.
func measureDelivered(st *store.Store, o DelayOptions, burstAt, scheduledAt int64, res *DelayResult) error {
	seen := make([]uint8, o.Messages)
	var late, quiet histogram
	var quietMax time.Duration
	var burstLast, first, last int64
	var maxLate time.Duration
	for q := int32(0); q < 4; q++ {
		for off := int64(0); ; {
			g, err := st.GetMessages("bench_delay", q, off, store.GetOptions{MaxMessages: 1000, MaxBytes: 16 << 20})
			if err != nil {
				return err
			}
			if g.Count == 0 {
				break
			}
			exts, err := message.DecodeAll(g.Records)
			if err != nil {
				return err
			}
			for _, e := range exts {
				id, err := strconv.Atoi(e.Property(message.PropertyUniqKey))
				due, err2 := strconv.ParseInt(e.Property("TIMER_OUT_MS"), 10, 64)
				if err2 != nil { // stored after its time: delivered at once
					due, err2 = strconv.ParseInt(e.Property(benchDueProperty), 10, 64)
				}
				if err != nil || err2 != nil || id < 0 || id >= o.Messages {
					continue
				}
				if seen[id]++; seen[id] > 1 {
					res.Duplicates++
					continue
				}
				res.Delivered++
				if first == 0 || e.StoreTimestamp < first {
					first = e.StoreTimestamp
				}
				last = max(last, e.StoreTimestamp)
				d := time.Duration(max(0, e.StoreTimestamp-due)) * time.Millisecond
				if id < o.Burst {
					burstLast = max(burstLast, e.StoreTimestamp)
					continue
				}
				late.record(d)
				maxLate = max(maxLate, d)
				if due > scheduledAt {
					quiet.record(d)
					quietMax = max(quietMax, d)
				}
			}
			off = g.NextBeginOffset
		}
	}
	res.Missing = o.Messages - res.Delivered
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.LatenessP50ms, res.LatenessP99ms, res.LatenessMaxms = ms(late.quantile(0.50)), ms(late.quantile(0.99)), ms(maxLate)
	res.QuietP99ms, res.QuietMaxms = ms(quiet.quantile(0.99)), ms(quietMax)
	if o.Burst > 0 && burstLast > 0 {
		res.BurstDrainms = float64(burstLast - burstAt)
		res.BurstMsgsPerSec = float64(o.Burst) / (max(1, res.BurstDrainms) / 1000)
	}
	if last > first {
		res.DeliveredPerSec = float64(res.Delivered) / (float64(last-first) / 1000)
	}
	return nil
}
