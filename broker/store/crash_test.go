package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/message"
)

const crashChildEnv = "HALFBACK_TEST_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if os.Getenv(crashChurnEnv) != "" {
			crashChurnChild(dir)
			return
		}
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func crashOptions(dir string) Options {
	return Options{
		Dir:                 dir,
		FlushType:           SyncFlush,
		SegmentSize:         512 << 10, // several segment rolls per round
		MaxMessageSize:      64 << 10,
		QueueEntriesPerFile: 1024,
		CheckpointInterval:  50 * time.Millisecond,
		Logger:              testLogger(),
	}
}

func crashBody(writer, seq int) []byte {
	return []byte(fmt.Sprintf("w%d-s%d-%s", writer, seq, strings.Repeat("p", 100+seq%900)))
}

// crashChild appends from several goroutines until it is killed, printing
// one line per acknowledged append: "physOffset writer seq".
func crashChild(dir string) {
	s, err := Open(crashOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := os.Stdout
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				m := &message.Message{Topic: "crash", QueueID: int32(w), Body: crashBody(w, seq),
					Properties: message.Properties{message.PropertyKeys: fmt.Sprintf("w%d-%d", w, seq)}.Encode()}
				r, err := s.Append(context.Background(), m)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d %d\n", r.PhysicalOffset, w, seq)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

type ack struct {
	phys        int64
	writer, seq int
}

// TestCrashSIGKILL kills an appending child process at random moments and
// checks that every acknowledged record survives intact and no partial
// record does.
func TestCrashSIGKILL(t *testing.T) {
	dir := t.TempDir()
	rounds := 20
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var all []ack
	for round := 0; round < rounds; round++ {
		acks := runCrashRound(t, dir, time.Duration(20+rng.IntN(200))*time.Millisecond)
		all = append(all, acks...)
		s, err := Open(crashOptions(dir))
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, a := range acks {
			e, err := s.ReadMessage(a.phys)
			if err != nil {
				t.Fatalf("round %d: acknowledged record w%d-s%d at %d lost: %v", round, a.writer, a.seq, a.phys, err)
			}
			if string(e.Body) != string(crashBody(a.writer, a.seq)) {
				t.Fatalf("round %d: record at %d holds %q, want w%d-s%d", round, a.phys, e.Body[:12], a.writer, a.seq)
			}
		}
		// No partial record: the whole log scans clean to its end, and no
		// record past it.
		end := s.MaxPhysicalOffset()
		if valid, err := s.scanValid(s.MinPhysicalOffset()); err != nil || valid != end {
			t.Fatalf("round %d: log valid to %d, want its end %d (%v)", round, valid, end, err)
		}
		// Every segment is preallocated, the one the kill may have caught
		// half made included.
		checkSegmentSizes(t, dir, crashOptions(dir).SegmentSize)
		// Every queue reads back in order with no holes.
		for q := int32(0); q < 4; q++ {
			got := readAll(t, s, "crash", q)
			for j, e := range got {
				if e.QueueOffset != int64(j) {
					t.Fatalf("round %d: queue %d entry %d has queue offset %d", round, q, j, e.QueueOffset)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged appends survived", round, len(acks))
	}
	if len(all) == 0 {
		t.Fatal("no append was acknowledged in any round")
	}
}

func runCrashRound(t *testing.T, dir string, after time.Duration) []ack {
	t.Helper()
	var acks []ack
	runKilledChild(t, []string{crashChildEnv + "=" + dir}, after, func(l string) bool {
		f := strings.Fields(l)
		if len(f) != 3 {
			return false // a line cut by the kill
		}
		p, e1 := strconv.ParseInt(f[0], 10, 64)
		w, e2 := strconv.Atoi(f[1])
		q, e3 := strconv.Atoi(f[2])
		if e1 != nil || e2 != nil || e3 != nil {
			return false
		}
		acks = append(acks, ack{p, w, q})
		return true
	})
	return acks
}

// runKilledChild runs this test binary as a crash child with env added,
// hands each line it prints to parse (true: an acknowledged append), and
// once the child acknowledged one, kills it with SIGKILL after the given
// time; it returns when the child's output is drained.
func runKilledChild(t *testing.T, env []string, after time.Duration, parse func(line string) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Let the child acknowledge something, then kill it at a random moment.
	deadline := time.After(30 * time.Second)
	for acked := false; !acked; {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatal("crash child exited before acknowledging anything")
			}
			acked = parse(l)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("crash child acknowledged nothing in 30 s")
		}
	}
	kill := time.After(after)
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			parse(l)
		case <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			kill = nil // the child's output drains until the pipe closes
		}
	}
	_ = cmd.Wait()
	io.Copy(io.Discard, stdout)
}
