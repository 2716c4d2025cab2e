package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/halfbackmq/halfback/internal/fsutil"

	"github.com/halfbackmq/halfback/internal/pebbledb"
)

// goroutineGroupCommit measures group commit as an in-process store has to
// do it, and nothing else: writers goroutines each hand one size-byte
// message to a single committer and wait for its answer; the committer
// waits until it holds one message from every writer, writes them with one
// write and one fdatasync into a preallocated file (as rawGroupCommit
// does), answers them, and repeats, for at least d. It returns messages
// per second.
//
// The disk work is rawGroupCommit's; what this loses against it is waking
// the writers and gathering them again, which is the Go scheduler's and
// the machine's cost, not the disk's. A store that also encodes records,
// checks them and builds consume queues does more than this on the same
// path.
func goroutineGroupCommit(ctx context.Context, path string, writers, size int, d time.Duration) (float64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	batch := writers * size
	span := max(preallocSpan, 4*int64(batch))
	span -= span % int64(batch)
	if err := zeroFill(ctx, f, span); err != nil {
		return 0, err
	}

	type handoff struct {
		msg  []byte
		done chan error
	}
	in := make(chan handoff, writers)
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	msg := filled(size)
	for range writers {
		wg.Go(func() {
			done := make(chan error, 1)
			for !stop.Load() {
				in <- handoff{msg, done}
				if <-done != nil {
					return
				}
				sent.Add(1)
			}
		})
	}

	buf := make([]byte, 0, batch)
	answer := make([]chan error, 0, writers)
	var off int64
	start := time.Now()
	var commitErr error
	for time.Since(start) < d && commitErr == nil {
		if commitErr = ctx.Err(); commitErr != nil {
			break
		}
		buf, answer = buf[:0], answer[:0]
		for range writers {
			h := <-in
			buf = append(buf, h.msg...)
			answer = append(answer, h.done)
		}
		if _, commitErr = f.WriteAt(buf, off); commitErr == nil {
			commitErr = fsutil.DataSync(f)
		}
		for _, done := range answer {
			done <- commitErr
		}
		if off += int64(batch); off >= span {
			off = 0
		}
	}
	elapsed := time.Since(start)
	// Let every writer out: answer whatever they send until they have all
	// seen stop.
	stop.Store(true)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for draining := true; draining; {
		select {
		case h := <-in:
			h.done <- errStopped
		case <-finished:
			draining = false
		}
	}
	if commitErr != nil {
		return 0, commitErr
	}
	return float64(sent.Load()) / elapsed.Seconds(), f.Close()
}

// errStopped answers a goroutineGroupCommit writer once the measurement is over.
var errStopped = errors.New("bench: stopped")

// pebbleSyncWrites measures a peer doing the same durable work as the
// store under SYNC_FLUSH: writers goroutines each writing size-byte values
// under keys of their own to a new Pebble database in dir (CockroachDB's
// storage engine, opened with internal/pebbledb's options, as the delay
// scheduler, transactions and lifecycle store open theirs), each
// write acknowledged only once Pebble's write-ahead log is fsynced
// (pebble.Sync; Pebble group-commits concurrent writes into one fsync),
// for at least d. It returns writes per second.
func pebbleSyncWrites(ctx context.Context, dir string, writers, size int, d time.Duration) (rate float64, err error) {
	db, err := pebbledb.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("pebble: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	value := filled(size)
	var stop atomic.Bool
	var written atomic.Int64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for w := range writers {
		wg.Go(func() {
			key := binary.BigEndian.AppendUint32(nil, uint32(w))
			for i := uint64(0); !stop.Load(); i++ {
				if errs[w] = ctx.Err(); errs[w] != nil {
					stop.Store(true)
					return
				}
				if errs[w] = db.Set(binary.BigEndian.AppendUint64(key[:4], i), value, pebble.Sync); errs[w] != nil {
					stop.Store(true)
					return
				}
				written.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(written.Load()) / elapsed.Seconds(), nil
}
