package bench

import (
	"context"
	"os"
	"time"

	"github.com/halfbackmq/halfback/internal/fsutil"
)

// seqChunk is the write size of the raw sequential baseline.
const seqChunk = 1 << 20

// rawGroupCommit measures perfect group commit: it writes batch bytes to a
// new file at path with one write and one fdatasync, over and over, for at
// least d, and returns the commits per second and the process's CPU time
// per commit. A store that gathered every writer's message into each fsync,
// and did nothing else, would reach it.
//
// With prealloc the file is first filled with zeros and synced (untimed),
// and the batches overwrite it from the start, wrapping around: an
// fdatasync then has no file size or block allocation to commit, only the
// data, as in the store's preallocated commit-log segments. Without it
// every write appends and the file grows.
func rawGroupCommit(ctx context.Context, path string, batch int, d time.Duration, prealloc bool) (rawRun, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return rawRun{}, err
	}
	defer f.Close()
	span := int64(0) // the preallocated length the writes cycle through
	if prealloc {
		span = max(preallocSpan, 4*int64(batch))
		span -= span % int64(batch)
		if err := zeroFill(ctx, f, span); err != nil {
			return rawRun{}, err
		}
	}
	buf := filled(batch)
	n := 0
	var off int64
	cpu0 := processCPU()
	start := time.Now()
	for n == 0 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return rawRun{}, err
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return rawRun{}, err
		}
		if err := fsutil.DataSync(f); err != nil {
			return rawRun{}, err
		}
		n++
		if off += int64(batch); span > 0 && off >= span {
			off = 0
		}
	}
	run := rawRun{commitsPerSec: float64(n) / time.Since(start).Seconds(), cpuPerCommit: (processCPU() - cpu0) / time.Duration(n)}
	return run, f.Close()
}

// rawRun is what one perfect group commit run measured: its rate, and the
// process's CPU time (user and system) per write + fdatasync.
type rawRun struct {
	commitsPerSec float64
	cpuPerCommit  time.Duration
}

// preallocSpan is how much of its file the preallocated group-commit
// baseline cycles through, at least: far more than any disk cache merges.
const preallocSpan = 64 << 20

// zeroFill writes n zero bytes to the start of f and fdatasyncs them.
func zeroFill(ctx context.Context, f *os.File, n int64) error {
	zeros := make([]byte, min(n, seqChunk))
	for off := int64(0); off < n; off += int64(len(zeros)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), n-off)], off); err != nil {
			return err
		}
	}
	return fsutil.DataSync(f)
}

// rawSequential measures sequential write bandwidth: 1 MiB writes to a new
// file at path for at least d, then one fdatasync, all timed. It returns
// bytes per second.
func rawSequential(ctx context.Context, path string, d time.Duration) (float64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := filled(seqChunk)
	var written int64
	start := time.Now()
	for written == 0 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := f.Write(buf)
		written += int64(n)
		if err != nil {
			return 0, err
		}
	}
	if err := fsutil.DataSync(f); err != nil {
		return 0, err
	}
	return float64(written) / time.Since(start).Seconds(), f.Close()
}

// filled returns n pseudo-random bytes, so a compressing layer under the
// file system cannot make the writes cheaper than real data.
func filled(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
