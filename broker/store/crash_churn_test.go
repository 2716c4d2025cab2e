package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// crashChurnEnv makes the crash child (TestMain) run crashChurnChild.
const crashChurnEnv = "HALFBACK_TEST_STORE_CRASH_CHURN"

// crashChurnOptions: small segments removed as soon as retention may (so
// that a kill can land in a segment roll, a removal, the reuse of the
// recycled segment or the next one's preparation), consume-queue files
// of a few entries (rolled every few appends) and frequent checkpoints.
func crashChurnOptions(dir string) Options {
	return Options{
		Dir:                  dir,
		FlushType:            SyncFlush,
		SegmentSize:          128 << 10,
		MaxMessageSize:       16 << 10,
		QueueEntriesPerFile:  16,
		CheckpointInterval:   10 * time.Millisecond,
		FileReserved:         time.Nanosecond,
		RetentionCheckPeriod: 5 * time.Millisecond,
		Logger:               testLogger(),
	}
}

// maxChurnRounds bounds the rounds TestCrashSIGKILLChurn runs while
// waiting for retention to remove a segment.
const maxChurnRounds = 100

func churnKey(w, seq int, run string) string { return fmt.Sprintf("%s-w%d-%d", run, w, seq) }

// crashChurnChild appends from several goroutines until it is killed,
// printing one line per acknowledged append: "physOffset queueOffset
// writer seq". Keys name the run (its pid), so that each is unique.
func crashChurnChild(dir string) {
	s, err := Open(crashChurnOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	run := strconv.Itoa(os.Getpid())
	fmt.Printf("run %s\n", run)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				m := &message.Message{Topic: "churn", QueueID: int32(w), Body: crashBody(w, seq),
					Properties: message.Properties{message.PropertyKeys: churnKey(w, seq, run)}.Encode()}
				r, err := s.Append(context.Background(), m)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Printf("%d %d %d %d\n", r.PhysicalOffset, r.QueueOffset, w, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

type churnAck struct {
	phys, qo    int64
	writer, seq int
	run         string
}

// TestCrashSIGKILLChurn kills an appending child whose store removes and
// recycles segments and rolls consume-queue files all the time, and
// checks after each reopen that every acknowledged record still in the
// log is intact and found by its queue entry and its key; that every
// queue is a run of entries, without holes, each at its record; and that
// no queue offset an acknowledged append got is ever given to another.
func TestCrashSIGKILLChurn(t *testing.T) {
	dir := t.TempDir()
	o := crashChurnOptions(dir)
	o.DeferRetention = true // nothing is removed while the checks run
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	owner := make(map[[2]int64]churnAck) // (queue, queue offset) -> its acknowledged append
	removed, lastMin := 0, int64(0)      // rounds in which retention removed segments
	// Ten rounds at least; more while retention has removed nothing yet: a
	// round appends for a time, not an amount, and on a loaded machine ten
	// rounds wrote less than a segment (nothing to remove, and the test
	// failed although it found no damage).
	for round := 0; round < 10 || (removed == 0 && round < maxChurnRounds); round++ {
		acks := runChurnRound(t, dir, time.Duration(20+rng.IntN(250))*time.Millisecond)
		damage := rng.IntN(6)
		damageMarkers(t, dir, damage, rng)
		s, err := Open(o)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		minPhys := s.MinPhysicalOffset()
		if minPhys > lastMin {
			removed++
		}
		lastMin = minPhys
		checkChurnStore(t, s, round, acks, owner)
		end := s.MaxPhysicalOffset()
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged appends, log [%d, %d), damage %d", round, len(acks), minPhys, end, damage)
	}
	if removed == 0 {
		t.Fatalf("retention removed no segment in %d rounds: the test exercised no removal", maxChurnRounds)
	}
}

// checkChurnStore checks a reopened churn store against the appends it
// acknowledged (those of the log's retained part): each record intact at
// its offset, its queue entry and its key leading to it, no queue offset
// given to two appends (owner holds every earlier round's); the log valid
// to its end, every queue a hole-free run of entries at their records,
// every segment file of the segment size.
func checkChurnStore(t *testing.T, s *Store, round int, acks []churnAck, owner map[[2]int64]churnAck) {
	t.Helper()
	minPhys, end := s.MinPhysicalOffset(), s.MaxPhysicalOffset()
	for _, a := range acks {
		k := [2]int64{int64(a.writer), a.qo}
		if prev, ok := owner[k]; ok {
			t.Fatalf("round %d: queue %d offset %d given to w%d-s%d of round %s and again to w%d-s%d of round %s",
				round, a.writer, a.qo, prev.writer, prev.seq, prev.run, a.writer, a.seq, a.run)
		}
		owner[k] = a
		if a.phys < minPhys {
			continue
		}
		e, err := s.ReadMessage(a.phys)
		if err != nil {
			t.Fatalf("round %d: acknowledged record w%d-s%d at %d lost: %v", round, a.writer, a.seq, a.phys, err)
		}
		if string(e.Body) != string(crashBody(a.writer, a.seq)) || e.QueueOffset != a.qo {
			t.Fatalf("round %d: record at %d is not w%d-s%d at queue offset %d", round, a.phys, a.writer, a.seq, a.qo)
		}
		q := s.cqs.get("churn", int32(a.writer), false)
		if q == nil {
			t.Fatalf("round %d: queue %d missing", round, a.writer)
		}
		lo, hi := q.bounds()
		if a.qo >= hi {
			t.Fatalf("round %d: queue %d is [%d, %d), without acknowledged w%d-s%d at %d", round, a.writer, lo, hi, a.writer, a.seq, a.qo)
		}
		if a.qo >= lo {
			qe, err := q.entryAt(a.qo)
			if err != nil || qe.PhysicalOffset != a.phys {
				t.Fatalf("round %d: queue %d entry %d = %+v (%v), want the record at %d", round, a.writer, a.qo, qe, err, a.phys)
			}
		}
	}
	// Keys: a sample of the acknowledged appends still stored.
	for i := 0; i < len(acks); i += max(1, len(acks)/50) {
		a := acks[i]
		if a.phys < minPhys {
			continue
		}
		got, err := s.QueryByKey("churn", churnKey(a.writer, a.seq, a.run), 0, 0, 4)
		if err != nil || len(got) != 1 || got[0] != a.phys {
			t.Fatalf("round %d: key %s finds %v (%v), want [%d]", round, churnKey(a.writer, a.seq, a.run), got, err, a.phys)
		}
	}
	if valid, err := s.scanValid(minPhys); err != nil || valid != end {
		t.Fatalf("round %d: log valid to %d, want its end %d (%v)", round, valid, end, err)
	}
	for w := range int32(4) {
		if s.cqs.get("churn", w, false) != nil {
			checkQueueMatchesLog(t, s, "churn", w)
		}
	}
	checkSegmentSizes(t, s.opts.Dir, s.opts.SegmentSize)
}

// damageMarkers damages what tells recovery where to start: 1 truncates
// the checkpoint file, 2 flips one of its bits, 3 removes it, 4 removes
// the abort marker; 0 and 5 leave both alone.
func damageMarkers(t *testing.T, dir string, how int, rng *rand.Rand) {
	t.Helper()
	cp := filepath.Join(dir, "checkpoint")
	var err error
	switch how {
	case 1:
		err = os.Truncate(cp, int64(rng.IntN(32)))
	case 2:
		var b []byte
		if b, err = os.ReadFile(cp); err == nil && len(b) > 0 {
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
			err = os.WriteFile(cp, b, 0o644)
		}
	case 3:
		err = os.Remove(cp)
	case 4:
		err = os.Remove(filepath.Join(dir, "abort"))
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

func runChurnRound(t *testing.T, dir string, after time.Duration) []churnAck {
	t.Helper()
	var acks []churnAck
	var run string
	runKilledChild(t, []string{crashChildEnv + "=" + dir, crashChurnEnv + "=1"}, after, func(l string) bool {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "run" {
			run = f[1]
			return false
		}
		if len(f) != 4 {
			return false // a line cut by the kill
		}
		var v [4]int64
		for i := range f {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return false
			}
			v[i] = n
		}
		acks = append(acks, churnAck{phys: v[0], qo: v[1], writer: int(v[2]), seq: int(v[3]), run: run})
		return true
	})
	return acks
}
