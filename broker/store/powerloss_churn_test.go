package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// churnOptions are crashChurnOptions on dir through fs: segments
// removed and recycled as soon as retention may, consume-queue files of a
// few entries, frequent checkpoints.
func churnOptions(dir string, ft FlushType, fs fileSystem) Options {
	o := crashChurnOptions(dir)
	o.FlushType = ft
	o.FlushInterval = 5 * time.Millisecond
	o.CheckpointInterval = 5 * time.Millisecond
	o.RetentionCheckPeriod = 2 * time.Millisecond
	o.fs = fs
	return o
}

// TestPowerLossChurn cuts the power at a random file operation (a
// commit-log write or fsync, a segment's preparation or reuse, a roll, a
// removal, a consume-queue or index file's creation, a checkpoint's
// fsyncs, or Open's own recovery) of a store that rolls, removes and
// recycles segments and rolls queue files all the time. After each cut
// the store must hold every acknowledged record still in the log, intact,
// found by its queue entry and its key; every queue must be a run of
// entries each at its record; and no queue offset an acknowledged append
// got may be given to another. Under AsyncFlush acknowledged records may
// be lost, but only from some point of the log on: every one before the
// log's end must be there. In the "partly" runs the power loss keeps a
// random part of what each file had written since its last fsync (the
// page cache wrote back files in no particular order).
func TestPowerLossChurn(t *testing.T) {
	for _, partly := range []bool{false, true} {
		name := "unsynced-lost"
		if partly {
			name = "partly"
		}
		t.Run(name, func(t *testing.T) {
			bothFlushTypes(t, func(t *testing.T, ft FlushType) { powerLossChurn(t, ft, partly) })
		})
	}
}

func powerLossChurn(t *testing.T, ft FlushType, partly bool) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 13))
	t.Logf("seed %d", seed)
	var keep func(n int) int
	if partly {
		keep = func(n int) int { return rng.IntN(n + 1) }
	}
	owner := make(map[[2]int64]churnAck)
	var total, cutInOpen int
	for round := range 8 {
		pfs := newPowerFS()
		pfs.cutAt = 1 + rng.IntN(1500)
		if rng.IntN(4) == 0 {
			pfs.cutAt = 1 + rng.IntN(60) // in Open, or soon after
		}
		s, err := Open(churnOptions(dir, ft, pfs))
		var acks []churnAck
		if err != nil {
			// Cut during Open (its recovery, the active segment's
			// preparation): nothing was acknowledged.
			cutInOpen++
			pfs.revertPartly(t, keep)
		} else {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for seq := 0; ; seq++ {
						key := churnKey(w, seq, fmt.Sprint(round))
						m := &message.Message{Topic: "churn", QueueID: int32(w), Body: crashBody(w, seq),
							Properties: message.Properties{message.PropertyKeys: key}.Encode()}
						r, err := s.Append(context.Background(), m)
						if err != nil {
							return // the power is off
						}
						mu.Lock()
						acks = append(acks, churnAck{phys: r.PhysicalOffset, qo: r.QueueOffset, writer: w, seq: seq, run: fmt.Sprint(round)})
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			pfs.crash()
			s.halt()
			pfs.revertPartly(t, keep)
			total += len(acks)
		}
		checkChurn(t, round, dir, ft, acks, owner, rng.IntN(2) == 0)
	}
	t.Logf("%d acknowledged appends; %d cuts during Open", total, cutInOpen)
	if total == 0 {
		t.Fatal("no append was acknowledged")
	}
}

// checkChurn opens the store in dir after a power loss and checks it (see
// TestPowerLossChurn), then closes it cleanly, or with clean false stops
// it as a crash would.
func checkChurn(t *testing.T, round int, dir string, ft FlushType, acks []churnAck, owner map[[2]int64]churnAck, clean bool) {
	t.Helper()
	o := churnOptions(dir, ft, nil)
	o.DeferRetention = true
	s, err := Open(o)
	if err != nil {
		t.Fatalf("round %d: open after the power loss: %v", round, err)
	}
	minPhys, end := s.MinPhysicalOffset(), s.MaxPhysicalOffset()
	kept := acks[:0:0]
	for _, a := range acks {
		if ft == AsyncFlush && a.phys >= end {
			continue // lost with the unflushed tail of the log
		}
		kept = append(kept, a)
	}
	checkChurnStore(t, s, round, kept, owner)
	if clean {
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	} else {
		s.halt()
	}
	t.Logf("round %d: %d acknowledged appends, log [%d, %d)", round, len(kept), minPhys, end)
}
