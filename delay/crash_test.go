package delay

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

const crashChildEnv = "HALFBACK_DELAY_CRASH_CHILD"

const crashCheckpoint = 50 * time.Millisecond

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// openCrashRig opens the store and a running scheduler wired together;
// checkpointed, if not nil, becomes the scheduler's checkpoint hook.
func openCrashRig(dir string, checkpointed func(time.Time)) (*store.Store, *Scheduler, error) {
	var sched atomic.Pointer[Scheduler]
	st, err := store.Open(store.Options{Dir: dir + "/store", FlushType: store.SyncFlush, SegmentSize: 8 << 20,
		MaxMessageSize: 64 << 10, Logger: quiet, CheckpointInterval: crashCheckpoint,
		OnDispatch: func(topic string, _ int32, _ int64) {
			if s := sched.Load(); s != nil {
				s.Notify(topic)
			}
		}})
	if err != nil {
		return nil, nil, err
	}
	lv, _ := ParseLevels("20ms 60ms 150ms")
	s, err := New(st, Options{Dir: dir + "/delay", Levels: lv, Logger: quiet, CheckpointInterval: crashCheckpoint, BatchSize: 32})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	sched.Store(s)
	s.checkpointed = checkpointed
	s.Start()
	s.Notify(ScheduleTopic)
	return st, s, nil
}

// crashChild schedules messages (levels and timers) while the scheduler
// delivers, printing the id of every acknowledged scheduled send and,
// as "cp <Unix ms>", when the progress of each checkpoint written was
// taken.
func crashChild(dir string) {
	st, s, err := openCrashRig(dir, func(taken time.Time) { fmt.Println("cp", taken.UnixMilli()) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("open") // the parent's kill timer starts now, not while a loaded machine starts the process
	round := os.Getenv("HALFBACK_DELAY_CRASH_ROUND")
	for i := 0; ; i++ {
		id := round + "-" + strconv.Itoa(i)
		p := message.Properties{message.PropertyUniqKey: id}
		if i%2 == 0 {
			p[message.PropertyDelayTimeLevel] = strconv.Itoa(1 + i%3)
		} else {
			p[message.PropertyTimerDelayMS] = strconv.Itoa(10 + i%97)
		}
		m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(id), Properties: p.Encode()}
		if _, err := s.Prepare(m); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if _, err := st.Append(context.Background(), m); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(id)
	}
}

func TestCrashSIGKILLDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	acked := map[string]bool{}
	// Each round's kill and the checkpoints its child wrote (when their
	// progress was taken, Unix ms).
	type crashRound struct {
		kill time.Time
		cps  []int64
	}
	var rounds []crashRound
	for round := 0; round < 8; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "HALFBACK_DELAY_CRASH_ROUND=r"+strconv.Itoa(round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 256)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The kill comes 150–450 ms after the child has opened its store
		// and scheduler: while it schedules and the scheduler delivers.
		var kill <-chan time.Time
		var killed time.Time
		var cps []int64
		opening := time.After(time.Minute)
		for open := true; open; {
			select {
			case <-opening:
				if kill == nil {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					t.Fatalf("round %d: the child did not open its store in a minute", round)
				}
			case l, ok := <-lines:
				if !ok {
					open = false
					break
				}
				if l == "open" {
					kill = time.After(time.Duration(150+rng.IntN(300)) * time.Millisecond)
				} else if ms, ok := strings.CutPrefix(l, "cp "); ok {
					if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
						cps = append(cps, v)
					}
				} else if strings.HasPrefix(l, "r") && !strings.ContainsAny(l, " \t") {
					acked[l] = true
				}
			case <-kill:
				killed = time.Now()
				_ = cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		_ = cmd.Wait()
		if killed.IsZero() {
			t.Fatalf("round %d: the child ended before it was killed", round)
		}
		rounds = append(rounds, crashRound{kill: killed, cps: cps})
	}
	if len(acked) == 0 {
		t.Fatal("no scheduled send was acknowledged")
	}
	// Restart once more and let everything fall due.
	st, s, err := openCrashRig(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer s.Close()
	copies := map[string][]int64{}
	off := int64(0)
	testutil.WaitFor(t, 30*time.Second, "every acknowledged scheduled message to be delivered", func() bool {
		g, err := st.GetMessages("orders", 1, off, store.GetOptions{MaxMessages: 512})
		if err != nil {
			t.Fatal(err)
		}
		exts, _ := message.DecodeAll(g.Records)
		for _, e := range exts {
			copies[string(e.Body)] = append(copies[string(e.Body)], e.StoreTimestamp)
		}
		off = g.NextBeginOffset
		for id := range acked {
			if len(copies[id]) == 0 {
				return false
			}
		}
		return true
	})
	// Duplicates only of deliveries after the last checkpoint their child
	// wrote before it was killed: the child of a first copy is the first
	// round killed after it (rounds run one after another), and none of
	// its checkpoints may have been taken after that copy was stored (a
	// millisecond apart at least: both clocks read in whole ms).
	dups := 0
	for id, ts := range copies {
		if len(ts) < 2 {
			continue
		}
		dups++
		first := ts[0]
		r := slices.IndexFunc(rounds, func(r crashRound) bool { return r.kill.UnixMilli() >= first })
		if r < 0 {
			t.Errorf("%s delivered %d times; the first copy (%d) came after the last kill", id, len(ts), first)
			continue
		}
		if last := slices.Max(append([]int64{0}, rounds[r].cps...)); last > first {
			t.Errorf("%s delivered %d times; its first copy (%d) was in the checkpoint round %d's child took at %d",
				id, len(ts), first, r, last)
		}
	}
	t.Logf("%d scheduled sends acknowledged over %d kills; all delivered; %d delivered twice", len(acked), len(rounds), dups)
}
