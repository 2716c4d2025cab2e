package bench

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// seqChunk is the write size of the raw sequential baseline.
const seqChunk = 1 << 20

// rawGroupCommit measures perfect group commit: it appends batch bytes to a
// new file at path with one write and one fdatasync, over and over, for at
// least d, and returns the commits per second. A store that gathered every
// writer's message into each fsync, and did nothing else, would reach it.
func rawGroupCommit(ctx context.Context, path string, batch int, d time.Duration) (float64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := filled(batch)
	n := 0
	start := time.Now()
	for n == 0 || time.Since(start) < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := fdatasync(f); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), f.Close()
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
	if err := fdatasync(f); err != nil {
		return 0, err
	}
	return float64(written) / time.Since(start).Seconds(), f.Close()
}

// fdatasync makes f's data and size durable, as the store's commit log does.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err == nil {
			return nil
		}
		if err != syscall.EINTR {
			return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
	}
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
