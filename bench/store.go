package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// MaxSize is the largest message body [RunStore] accepts: the store's
// default maximum message size (RocketMQ's maxMessageSize).
const MaxSize = store.DefaultMaxMessageSize

// MaxBatch bounds Writers×Size: the raw limit holds one batch in memory
// and zero-fills four of them on disk.
const MaxBatch = 1 << 30

// StoreOptions configure [RunStore].
type StoreOptions struct {
	// Dir is the directory the run works in; it is created if missing. The
	// run makes a fresh subdirectory in it and removes it at the end.
	// Required. Put it on the disk you want to measure: on tmpfs an fsync
	// costs nothing and every figure is meaningless.
	Dir string
	// Flush is the store's flush type (the zero value is AsyncFlush, as in
	// store.Options), and picks the bound the ratio is taken against.
	Flush store.FlushType
	// Writers is the number of goroutines appending concurrently, each
	// waiting for its append before sending the next. At least 1.
	Writers int
	// Size is the message body in bytes, 1 to [MaxSize].
	Size int
	// Duration is how long the store is measured. Each raw baseline, and
	// under SyncFlush each peer, runs for Duration/3, but at least one
	// second; perfect group commit, into a preallocated and into a growing
	// file, is split into halves before and after the store. Must be
	// positive.
	Duration time.Duration
	// SegmentSize is the store's commit-log segment size in bytes; zero
	// means the store's default (1 GiB).
	SegmentSize int64
	// Logger receives progress and the store's own events. Default: discard.
	Logger *slog.Logger
}

// validate reports the first field out of range, naming it, and fills
// the defaults.
func (o StoreOptions) validate() (StoreOptions, error) {
	switch {
	case o.Dir == "":
		return o, fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case o.Flush != store.SyncFlush && o.Flush != store.AsyncFlush:
		return o, fmt.Errorf("%w: Flush %d is neither SyncFlush nor AsyncFlush", ErrInvalidOptions, o.Flush)
	case o.Writers < 1:
		return o, fmt.Errorf("%w: Writers %d, want at least 1", ErrInvalidOptions, o.Writers)
	case o.Size < 1 || o.Size > MaxSize:
		return o, fmt.Errorf("%w: Size %d, want 1 to %d bytes", ErrInvalidOptions, o.Size, MaxSize)
	case o.Writers > MaxBatch/o.Size:
		return o, fmt.Errorf("%w: Writers %d × Size %d is more than %d bytes per group commit", ErrInvalidOptions, o.Writers, o.Size, MaxBatch)
	case o.Duration <= 0:
		return o, fmt.Errorf("%w: Duration %v, want more than zero", ErrInvalidOptions, o.Duration)
	case o.SegmentSize < 0:
		return o, fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidOptions, o.SegmentSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// StoreResult is what [RunStore] measured. MB means 10^6 bytes; the
// store's MB count message bodies only, not record headers.
type StoreResult struct {
	// Flush is SYNC_FLUSH or ASYNC_FLUSH.
	Flush string `json:"flush"`
	// Writers and Size echo the options.
	Writers int `json:"writers"`
	Size    int `json:"size"`
	// DurationSec is the measured length of the store run: from the first
	// append until the last writer's last append returned.
	DurationSec float64 `json:"duration_sec"`
	// Messages is the number of acknowledged appends.
	Messages int64 `json:"messages"`
	// MsgsPerSec and MBPerSec are the store's throughput.
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// CPUUsPerMsg is the CPU time (user and system, all of the process's
	// threads: the store's and the writers') the store phase used per
	// acknowledged append, in microseconds. It varies far less from run to
	// run than throughput on a shared machine, and on a virtual machine
	// whose disk slows down when the guest's CPUs are busy it is also part
	// of what bounds SYNC_FLUSH throughput (docs/benchmarks.md).
	CPUUsPerMsg float64 `json:"cpu_us_per_msg"`
	// P50Us and P99Us are append latency quantiles in microseconds (within
	// 2%: they come from a log-linear histogram).
	P50Us float64 `json:"p50_us"`
	P99Us float64 `json:"p99_us"`
	// RawLimitMsgsPerSec is perfect group commit: Writers messages per
	// write+fdatasync of Writers×Size bytes, as fast as the disk allows:
	// the greater of RawLimitPreallocMsgsPerSec and RawLimitGrowingMsgsPerSec.
	RawLimitMsgsPerSec float64 `json:"raw_limit_msgs_per_sec"`
	// RawLimitPreallocMsgsPerSec is perfect group commit into a file
	// zero-filled beforehand (as the store's commit-log segments are),
	// RawLimitGrowingMsgsPerSec into a file that grows with every write.
	RawLimitPreallocMsgsPerSec float64 `json:"raw_limit_prealloc_msgs_per_sec"`
	RawLimitGrowingMsgsPerSec  float64 `json:"raw_limit_growing_msgs_per_sec"`
	// RawSeqMBPerSec is raw sequential write bandwidth (1 MiB writes, one
	// fdatasync at the end).
	RawSeqMBPerSec float64 `json:"raw_seq_mb_per_sec"`
	// GoroutineLimitMsgsPerSec (SYNC_FLUSH only) is group commit with
	// nothing else: Writers goroutines each handing one message to a
	// committer that waits for all of them, writes and fdatasyncs them
	// together into a preallocated file, as the raw limit does, and answers
	// them. Its gap to RawLimitPreallocMsgsPerSec is what waking and
	// gathering the goroutines costs on this machine; the store does that
	// and more (encoding, consume queues, the key index, the next segment).
	GoroutineLimitMsgsPerSec float64 `json:"goroutine_limit_msgs_per_sec,omitempty"`
	// PebbleMsgsPerSec (SYNC_FLUSH only) is a peer doing the same durable
	// work: Writers goroutines each writing Size-byte values to a Pebble
	// database (CockroachDB's storage engine), each write acknowledged once
	// Pebble's write-ahead log is fsynced (pebble.Sync, group-committed).
	PebbleMsgsPerSec float64 `json:"pebble_msgs_per_sec,omitempty"`
	// RatioToGoroutineLimit and RatioToPebble are MsgsPerSec over the two
	// above (SYNC_FLUSH only).
	RatioToGoroutineLimit float64 `json:"ratio_to_goroutine_limit,omitempty"`
	RatioToPebble         float64 `json:"ratio_to_pebble,omitempty"`
	// AppendsPerFsync, CycleUs and FsyncUs (SYNC_FLUSH only) take the
	// store's group commit apart: acknowledged appends per commit-log
	// fdatasync, the store run's length per fdatasync (one group commit's
	// cycle: gathering the writers, writing, fdatasync, answering), and the
	// mean fdatasync itself. RawCycleUs is perfect group commit's cycle
	// (write + fdatasync, into the preallocated file) for comparison: on a
	// disk whose flush costs about the same for any batch this size, the
	// ratio is about RawCycleUs / CycleUs × AppendsPerFsync / Writers.
	AppendsPerFsync float64 `json:"appends_per_fsync,omitempty"`
	CycleUs         float64 `json:"cycle_us,omitempty"`
	FsyncUs         float64 `json:"fsync_us,omitempty"`
	RawCycleUs      float64 `json:"raw_cycle_us,omitempty"`
	// RawCPUUsPerFsync (SYNC_FLUSH only) is the process's CPU time (user
	// and system) per write + fdatasync of perfect group commit into the
	// preallocated file: what a group commit costs the CPUs before any
	// message is encoded or any writer woken. On a virtual machine it is
	// far from nothing (the guest's side of the disk flush), and the store
	// pays it once per group commit too.
	RawCPUUsPerFsync float64 `json:"raw_cpu_us_per_fsync,omitempty"`
	// Ratio is the store's share of the disk's limit for its flush type:
	// MsgsPerSec/RawLimitMsgsPerSec under SYNC_FLUSH, MBPerSec/RawSeqMBPerSec
	// under ASYNC_FLUSH. 1 means the store costs nothing on top of the disk.
	Ratio float64 `json:"ratio"`
}

// RunStore measures perfect group commit (half, into a preallocated and a
// growing file), raw sequential bandwidth, the store, under SyncFlush the
// two peers (group commit among goroutines alone, Pebble's synced writes),
// then perfect group commit again (the other half, in the mirrored
// order), in fresh
// subdirectories of o.Dir on the same file system, and removes them before
// it returns. It fails with [ErrInvalidOptions] if o is
// out of range, and with ctx's error if ctx ends first.
func RunStore(ctx context.Context, o StoreOptions) (res StoreResult, err error) {
	if o, err = o.validate(); err != nil {
		return StoreResult{}, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return StoreResult{}, err
	}
	run, err := os.MkdirTemp(o.Dir, "halfback-bench-")
	if err != nil {
		return StoreResult{}, err
	}
	defer func() {
		if rmErr := os.RemoveAll(run); rmErr != nil && err == nil {
			err = rmErr
		}
	}()

	// The disk's fsync rate drifts from minute to minute on a shared
	// machine, so perfect group commit is measured both before and after
	// the store, half the time each, and the mean is the bound. It is
	// measured into a preallocated file (as the store's segments are) and
	// into a growing one, in mirrored order, and the bound is the better
	// of the two: never less than the disk can do.
	raw := max(o.Duration/3, time.Second)
	groupCommit := func(when string, prealloc bool) (rawRun, error) {
		kind := "growing"
		if prealloc {
			kind = "prealloc"
		}
		o.Logger.Info("bench: measuring perfect group commit", "when", when, "file", kind, "batch", o.Writers*o.Size, "for", raw/2)
		path := filepath.Join(run, "raw-group-commit-"+kind+"-"+when)
		c, err := rawGroupCommit(ctx, path, o.Writers*o.Size, max(raw/2, time.Second/2), prealloc)
		if err != nil {
			return rawRun{}, fmt.Errorf("raw group commit (%s file): %w", kind, err)
		}
		return c, os.Remove(path)
	}
	var pre, grow [2]rawRun // before, after
	if pre[0], err = groupCommit("before", true); err != nil {
		return StoreResult{}, err
	}
	if grow[0], err = groupCommit("before", false); err != nil {
		return StoreResult{}, err
	}
	o.Logger.Info("bench: measuring sequential bandwidth", "for", raw)
	seq, err := rawSequential(ctx, filepath.Join(run, "raw-sequential"), raw)
	if err != nil {
		return StoreResult{}, fmt.Errorf("raw sequential: %w", err)
	}
	// Drop the baseline's file (gigabytes, possibly) before the store runs.
	if err := os.Remove(filepath.Join(run, "raw-sequential")); err != nil {
		return StoreResult{}, err
	}
	o.Logger.Info("bench: measuring the store", "flush", o.Flush.String(), "writers", o.Writers, "size", o.Size, "for", o.Duration)
	m, err := measureStore(ctx, filepath.Join(run, "store"), o)
	if err != nil {
		return StoreResult{}, fmt.Errorf("store: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(run, "store")); err != nil {
		return StoreResult{}, err
	}
	var peers syncPeers
	if o.Flush == store.SyncFlush {
		if peers, err = measureSyncPeers(ctx, run, o, raw); err != nil {
			return StoreResult{}, err
		}
	}
	if grow[1], err = groupCommit("after", false); err != nil {
		return StoreResult{}, err
	}
	if pre[1], err = groupCommit("after", true); err != nil {
		return StoreResult{}, err
	}
	commits := rawCommits{prealloc: (pre[0].commitsPerSec + pre[1].commitsPerSec) / 2,
		growing: (grow[0].commitsPerSec + grow[1].commitsPerSec) / 2, preallocCPU: (pre[0].cpuPerCommit + pre[1].cpuPerCommit) / 2}
	return newStoreResult(o, commits, seq, m, peers), nil
}

// syncPeers is what the SYNC_FLUSH store is compared with besides the
// disk: group commit among goroutines alone, and Pebble's synced writes,
// in messages per second.
type syncPeers struct{ goroutines, pebble float64 }

// measureSyncPeers measures both for d each, in fresh paths under run.
func measureSyncPeers(ctx context.Context, run string, o StoreOptions, d time.Duration) (syncPeers, error) {
	var p syncPeers
	o.Logger.Info("bench: measuring group commit among goroutines", "writers", o.Writers, "size", o.Size, "for", d)
	path := filepath.Join(run, "goroutine-group-commit")
	var err error
	if p.goroutines, err = goroutineGroupCommit(ctx, path, o.Writers, o.Size, d); err != nil {
		return p, fmt.Errorf("group commit among goroutines: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return p, err
	}
	o.Logger.Info("bench: measuring Pebble's synced writes", "writers", o.Writers, "size", o.Size, "for", d)
	dir := filepath.Join(run, "pebble")
	if p.pebble, err = pebbleSyncWrites(ctx, dir, o.Writers, o.Size, d); err != nil {
		return p, fmt.Errorf("pebble synced writes: %w", err)
	}
	return p, os.RemoveAll(dir)
}

// rawCommits is perfect group commit's rate, in commits per second, into
// a preallocated file and into a growing one.
// preallocCPU is the process's CPU time per commit into the preallocated
// file.
type rawCommits struct {
	prealloc, growing float64
	preallocCPU       time.Duration
}

// newStoreResult computes the figures from the raw commit rates, the raw
// sequential bytes per second and the store run.
func newStoreResult(o StoreOptions, commits rawCommits, seq float64, m storeRun, peers syncPeers) StoreResult {
	secs := m.elapsed.Seconds()
	res := StoreResult{
		Flush:              o.Flush.String(),
		Writers:            o.Writers,
		Size:               o.Size,
		DurationSec:        secs,
		Messages:           int64(m.latency.total),
		MsgsPerSec:         float64(m.latency.total) / secs,
		MBPerSec:           float64(m.latency.total) * float64(o.Size) / secs / 1e6,
		CPUUsPerMsg:        micros(m.cpu) / float64(max(m.latency.total, 1)),
		P50Us:              micros(m.latency.quantile(0.50)),
		P99Us:              micros(m.latency.quantile(0.99)),
		RawLimitMsgsPerSec: max(commits.prealloc, commits.growing) * float64(o.Writers),
		RawSeqMBPerSec:     seq / 1e6,

		RawLimitPreallocMsgsPerSec: commits.prealloc * float64(o.Writers),
		RawLimitGrowingMsgsPerSec:  commits.growing * float64(o.Writers),
	}
	if o.Flush == store.SyncFlush {
		res.Ratio = res.MsgsPerSec / res.RawLimitMsgsPerSec
		res.GoroutineLimitMsgsPerSec, res.PebbleMsgsPerSec = peers.goroutines, peers.pebble
		if peers.goroutines > 0 {
			res.RatioToGoroutineLimit = res.MsgsPerSec / peers.goroutines
		}
		if peers.pebble > 0 {
			res.RatioToPebble = res.MsgsPerSec / peers.pebble
		}
		if m.fsyncs > 0 {
			res.AppendsPerFsync = float64(m.latency.total) / float64(m.fsyncs)
			res.CycleUs = micros(m.elapsed) / float64(m.fsyncs)
			res.FsyncUs = micros(m.fsyncTime) / float64(m.fsyncs)
		}
		if commits.prealloc > 0 {
			res.RawCycleUs = 1e6 / commits.prealloc
			res.RawCPUUsPerFsync = micros(commits.preallocCPU)
		}
	} else {
		res.Ratio = res.MBPerSec / res.RawSeqMBPerSec
	}
	return res
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// storeRun is what measureStore saw.
type storeRun struct {
	elapsed   time.Duration
	cpu       time.Duration // the process's user+system CPU time meanwhile
	latency   histogram     // every acknowledged append
	fsyncs    int64         // commit-log fdatasyncs meanwhile
	fsyncTime time.Duration // their total time
}

// measureStore opens a store in dir and runs o.Writers appending
// goroutines for o.Duration; each sends at least one message.
func measureStore(ctx context.Context, dir string, o StoreOptions) (storeRun, error) {
	var counting atomic.Bool // fsyncs count from the first append to the last answer
	var fsyncs, fsyncNs atomic.Int64
	onFlush := func(d time.Duration) {
		if counting.Load() {
			fsyncs.Add(1)
			fsyncNs.Add(int64(d))
		}
	}
	st, err := store.Open(store.Options{Dir: dir, FlushType: o.Flush, SegmentSize: o.SegmentSize, Logger: o.Logger, OnFlush: onFlush})
	if err != nil {
		return storeRun{}, err
	}
	body := filled(o.Size)
	hists := make([]*histogram, o.Writers)
	errs := make([]error, o.Writers)
	var stop atomic.Bool
	var wg sync.WaitGroup
	cpu0 := processCPU()
	counting.Store(true)
	start := time.Now()
	timer := time.AfterFunc(o.Duration, func() { stop.Store(true) })
	for w := range o.Writers {
		hists[w] = new(histogram)
		wg.Go(func() {
			if errs[w] = appendLoop(ctx, st, w, body, &stop, hists[w]); errs[w] != nil {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
	counting.Store(false)
	run := storeRun{elapsed: time.Since(start), cpu: processCPU() - cpu0, fsyncs: fsyncs.Load(), fsyncTime: time.Duration(fsyncNs.Load())}
	timer.Stop()
	if err := errors.Join(errors.Join(errs...), st.Close()); err != nil {
		return storeRun{}, err
	}
	for _, h := range hists {
		run.latency.merge(h)
	}
	return run, nil
}

// appendLoop is one writer: it appends a message to queue w%4 of topic
// "bench", with a TAGS and a unique KEYS property, waits for the
// acknowledgement, records the latency, and repeats until stop is set.
func appendLoop(ctx context.Context, st *store.Store, w int, body []byte, stop *atomic.Bool, h *histogram) error {
	keyPrefix := message.PropertyKeys + "\x01w" + strconv.Itoa(w) + "-"
	const tags = "\x02" + message.PropertyTags + "\x01bench\x02"
	props := make([]byte, 0, 64)
	for i := 0; ; i++ {
		props = append(props[:0], keyPrefix...)
		props = strconv.AppendInt(props, int64(i), 10)
		props = append(props, tags...)
		m := &message.Message{Topic: "bench", QueueID: int32(w % 4), Body: body, Properties: string(props)}
		t0 := time.Now()
		m.BornTimestamp = t0.UnixMilli()
		if _, err := st.Append(ctx, m); err != nil {
			return err
		}
		h.record(time.Since(t0))
		if stop.Load() {
			return nil
		}
	}
}
