package txn

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

const crashChildEnv = "HALFBACK_TXN_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild runs transactions from four goroutines, printing each
// acknowledged step: "H id" after a half message is stored, "C id" or
// "R id" after its commit or rollback; every third is left pending.
func crashChild(dir string) {
	st, err := store.Open(store.Options{Dir: dir + "/store", FlushType: store.SyncFlush, SegmentSize: 1 << 20,
		MaxMessageSize: 64 << 10, Logger: quiet, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	svc, err := Open(st, Options{Dir: dir + "/txn", Logger: quiet, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	svc.Start()
	var out sync.Mutex
	say := func(s string) {
		out.Lock()
		fmt.Println(s)
		out.Unlock()
	}
	round := os.Getenv("HALFBACK_TXN_CRASH_ROUND")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-%d-%d", round, w, i)
				m := &message.Message{Topic: "orders", QueueID: 1, Body: []byte(id), Properties: message.Properties{
					message.PropertyUniqKey: id, message.PropertyProducerGroup: "pg"}.Encode()}
				res, err := svc.SendHalf(context.Background(), m, "")
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				say("H " + id + " " + strconv.FormatInt(res.PhysicalOffset, 10))
				o := []Outcome{Commit, Rollback, Unknown}[i%3]
				if o == Unknown {
					continue
				}
				if _, err := svc.End(context.Background(), EndRequest{Group: "pg", HalfOffset: res.PhysicalOffset,
					QueueOffset: res.QueueOffset, Outcome: o}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				say(map[Outcome]string{Commit: "C ", Rollback: "R "}[o] + id)
			}
		}()
	}
	wg.Wait()
}

// TestSIGKILLDuringTransactions kills a process running transactions and
// checks, after each restart: every acknowledged commit delivered exactly
// once, no rollback ever delivered, every stored half message known, the
// ones left open still pending.
func TestSIGKILLDuringTransactions(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]byte{}   // id -> 'H', 'C' or 'R'
	halves := map[string]int64{} // id -> half offset
	for round := range 4 {
		lines := runAndKill(t, dir, round, 200+rand.IntN(1500))
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 3 {
				halves[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
			}
			if len(f) >= 2 && (acked[f[1]] == 0 || f[0] != "H") {
				acked[f[1]] = f[0][0]
			}
		}
		r := &rig{t: t, dir: dir, clock: newClock(), check: &recorder{}}
		r.open()
		verifyAfterCrash(t, r, acked)
		for id, off := range halves {
			if _, ok := r.svc.Get("", off); !ok {
				t.Fatalf("half message %s at %d unknown after the crash", id, off)
			}
		}
		st := r.svc.Stats()
		t.Logf("round %d: %d lines, %d transactions acknowledged, %d pending now", round, len(lines), len(acked), st.Pending)
		r.close()
	}
}

func runAndKill(t *testing.T, dir string, round, after int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "HALFBACK_TXN_CRASH_ROUND="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == after {
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	cmd.Wait()
	if len(lines) < after {
		t.Fatalf("child printed %d lines before it ended, want %d", len(lines), after)
	}
	return lines
}

func verifyAfterCrash(t *testing.T, r *rig, acked map[string]byte) {
	t.Helper()
	counts := map[string]int{}
	for _, id := range r.delivered() {
		counts[id]++
	}
	for id, n := range counts {
		if n > 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
	live := map[string]Status{}
	for _, x := range r.svc.List(0, 0) {
		live[x.TransactionID] = x.Status
	}
	for id, kind := range acked {
		i, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		switch {
		case kind == 'C' && counts[id] != 1:
			t.Fatalf("acknowledged commit %s delivered %d times", id, counts[id])
		case kind == 'R' && (counts[id] != 0 || live[id] != 0):
			t.Fatalf("acknowledged rollback %s delivered %d times, live %v", id, counts[id], live[id])
		case kind == 'H' && i%3 == 2 && live[id] != Pending:
			t.Fatalf("open transaction %s is %v after the crash", id, live[id])
		case kind == 'H' && i%3 != 2 && live[id] != Pending && counts[id]+boolInt(i%3 == 1) != 1:
			// Its outcome was in flight: either pending, or resolved as asked.
			t.Fatalf("in-flight transaction %s: live %v, delivered %d", id, live[id], counts[id])
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
