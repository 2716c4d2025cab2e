package mirror_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// The crash test runs a broker and a mirror in a child process (this test
// binary, run again with crashDirEnv set) and SIGKILLs it.
const (
	crashDirEnv   = "HALFBACK_TEST_MIRROR_CRASH_DIR" // the broker's data directory; set only in the child
	crashAddrEnv  = "HALFBACK_TEST_MIRROR_CRASH_ADDR"
	crashNsEnv    = "HALFBACK_TEST_MIRROR_CRASH_NAMESRV"
	crashNameEnv  = "HALFBACK_TEST_MIRROR_CRASH_BROKER"
	crashKafkaEnv = "HALFBACK_TEST_MIRROR_CRASH_KAFKA"
	crashTopicEnv = "HALFBACK_TEST_MIRROR_CRASH_TOPIC"
	crashGroupEnv = "HALFBACK_TEST_MIRROR_CRASH_GROUP"

	// crashBatch is the child mirror's BatchSize: a kill sends again at
	// most one batch per queue.
	crashBatch  = 8
	crashRounds = 3
)

func TestMain(m *testing.M) {
	if os.Getenv(crashDirEnv) != "" {
		runCrashChild()
		return
	}
	os.Exit(m.Run())
}

// runCrashChild serves a SYNC_FLUSH broker and mirrors its topic to Kafka
// until SIGKILLed (or stopped by SIGTERM); it prints "ready" once the
// mirror runs.
func runCrashChild() {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "crash child: %s: %v\n", what, err)
		os.Exit(2)
	}
	// The parent shows the child's stderr if the test fails.
	level := slog.LevelInfo
	if os.Getenv("HALFBACK_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ns, topic := os.Getenv(crashNsEnv), os.Getenv(crashTopicEnv)
	b, err := broker.Open(broker.Options{
		Store: store.Options{Dir: os.Getenv(crashDirEnv), FlushType: store.SyncFlush, SegmentSize: 16 << 20,
			CheckpointInterval: 100 * time.Millisecond},
		ListenAddr: os.Getenv(crashAddrEnv), NamesrvAddrs: []string{ns}, BrokerName: os.Getenv(crashNameEnv),
		RegisterInterval: time.Second, Logger: log,
	})
	if err != nil {
		fail("open broker", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, b.Addr())
	if err != nil {
		fail("dial broker", err)
	}
	if err := ac.CreateTopic(ctx, topic, queues); err != nil {
		fail("create topic", err)
	}
	_ = ac.Close()
	c, err := client.New(client.Options{NamesrvAddrs: []string{ns}, Logger: log,
		RouteRefreshInterval: time.Second, HeartbeatInterval: time.Second})
	if err != nil {
		fail("client", err)
	}
	m, err := mirror.New(mirror.Options{Client: c, Group: os.Getenv(crashGroupEnv), BatchSize: crashBatch,
		Topics:     []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Logger: log,
		Kafka: mirror.KafkaOptions{Brokers: []string{os.Getenv(crashKafkaEnv)}, DialTimeout: time.Second}})
	if err != nil {
		fail("mirror", err)
	}
	if err := m.Start(ctx); err != nil {
		fail("start mirror", err)
	}
	fmt.Println("broker listening on", b.Addr())
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	_ = m.Close()
	_ = c.Close()
	_ = b.Close()
	os.Exit(0)
}

// crashChild is a running child process.
type crashChild struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{} // closed when it ended
}

// startCrashChild starts the child with env and waits for its ready line;
// it is stopped when the test ends if still running.
func startCrashChild(t *testing.T, env []string) *crashChild {
	t.Helper()
	ch := &crashChild{out: &testutil.Buffer{}, done: make(chan struct{})}
	ch.cmd = exec.Command(os.Args[0], "-test.run=^$")
	ch.cmd.Env = append(os.Environ(), env...)
	ch.cmd.Stderr = ch.out
	stdout, err := ch.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
			fmt.Fprintln(ch.out, sc.Text())
		}
		_ = ch.cmd.Wait()
		close(ch.done)
	}()
	t.Cleanup(func() {
		_ = ch.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(20 * time.Second):
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
		if t.Failed() {
			t.Logf("child %d output:\n%s", ch.cmd.Process.Pid, ch.out.String())
		}
	})
	select {
	case <-ready:
	case <-ch.done:
		t.Fatalf("the child ended before it was ready (%v):\n%s", ch.cmd.ProcessState, ch.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the child was not ready in 60 s:\n%s", ch.out.String())
	}
	return ch
}

// kill SIGKILLs the child and waits for it to die of it.
func (ch *crashChild) kill(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ch.done
	if ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL:\n%s", ch.cmd.ProcessState, ch.out.String())
	}
}

// TestMirrorSurvivesBrokerSIGKILL runs the broker and the mirror in a
// child process, SIGKILLs it at a random moment while it mirrors a stream
// of messages, and restarts it on the same data directory, three times.
// Every message the broker acknowledged (SYNC_FLUSH) reaches Kafka, and a
// kill sends again at most one batch per queue.
func TestMirrorSurvivesBrokerSIGKILL(t *testing.T) {
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: txnbridgetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	topic := uniq("crash")
	kc := startKafka(t, kfake.SeedTopics(4, topic))
	env := []string{
		crashDirEnv + "=" + t.TempDir(),
		// Each start listens on a port of its own choosing; the broker
		// registers it with the name server, where clients find it.
		crashAddrEnv + "=127.0.0.1:0",
		crashNsEnv + "=" + ns.Addr(),
		crashNameEnv + "=" + uniq("broker-"+strconv.Itoa(os.Getpid())),
		crashKafkaEnv + "=" + kc.ListenAddrs()[0],
		crashTopicEnv + "=" + topic,
		crashGroupEnv + "=" + uniq("mirror"),
	}
	ch := startCrashChild(t, env)
	c := txnbridgetest.NewClient(t, ns.Addr())
	// No send retries: a send that failed because of the kill must not
	// store a second copy under the same id after the restart.
	snd := startSender(t, newProducer(t, c, client.ProducerOptions{RetryTimes: -1}), topic)
	r := readKafka(t, kc.ListenAddrs(), topic)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for round := range crashRounds {
		target := r.count() + 20 + rng.IntN(150)
		testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("round %d: %d records in Kafka", round, target),
			func() bool { return r.count() >= target })
		ch.kill(t)
		acked := snd.ackedCount()
		t.Logf("round %d: killed after %d records in Kafka, %d sends acknowledged", round, r.count(), acked)
		ch = startCrashChild(t, env)
		testutil.WaitFor(t, 60*time.Second, "sends acknowledged after the restart",
			func() bool { return snd.ackedCount() >= acked+20 })
	}
	snd.halt()
	acked := snd.ackedIDs()
	r.waitIDs(t, 60*time.Second, acked)
	counts := r.byID()
	dups := duplicates(counts)
	if limit := crashRounds * queues * crashBatch; dups > limit {
		t.Errorf("%d duplicate records after %d kills, want at most %d (a batch of %d per queue per kill)",
			dups, crashRounds, limit, crashBatch)
	}
	snd.mu.Lock()
	failed := snd.failed
	snd.mu.Unlock()
	t.Logf("%d sends acknowledged (%d failed during the kills), all in Kafka; %d records, %d distinct, %d duplicates",
		len(acked), failed, r.count(), len(counts), dups)
}
