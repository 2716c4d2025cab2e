package compat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/testutil"
)

const (
	childDirEnv  = "COMPAT_BROKER_DIR"
	childAddrEnv = "COMPAT_BROKER_ADDR"
	childNsEnv   = "COMPAT_BROKER_NAMESRV"
	childNameEnv = "COMPAT_BROKER_NAME"
	// childShortEnv, when set, gives the child short delay levels and
	// transaction check times (shortLevels, shortTxn).
	childShortEnv = "COMPAT_BROKER_SHORT"
)

// shortLevels are the delay levels of a child started with childShortEnv:
// a first retry (level 3) comes after 1 s.
const shortLevels = "300ms 600ms 1s 1200ms 1500ms"

var shortTxn = txn.Options{Timeout: 500 * time.Millisecond, CheckInterval: 500 * time.Millisecond}

// runChildBroker serves a broker until killed; TestMain calls it in the
// child process.
func runChildBroker() {
	o := broker.Options{
		Store:        store.Options{Dir: os.Getenv(childDirEnv), FlushType: store.SyncFlush, SegmentSize: 64 << 20},
		ListenAddr:   os.Getenv(childAddrEnv),
		NamesrvAddrs: []string{os.Getenv(childNsEnv)},
		BrokerName:   os.Getenv(childNameEnv),
		Logger:       quiet(),
	}
	if os.Getenv(childShortEnv) != "" {
		o.Delay.Levels, _ = delay.ParseLevels(shortLevels)
		o.Txn = shortTxn
		o.RegisterInterval = time.Second
	}
	b, err := broker.Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	b.Close()
	os.Exit(0)
}

// startChild starts the broker process and waits for its ready line.
func startChild(t *testing.T, dir, addr, ns, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childAddrEnv+"="+addr, childNsEnv+"="+ns, childNameEnv+"="+name)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 6)
		_, err := out.Read(buf)
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("child broker did not start: %v", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child broker not ready in 60 s")
	}
	return cmd
}

// TestSendOKSurvivesSIGKILL sends with the official producer while the
// broker process is killed with SIGKILL and restarted, then consumes
// everything: every message that got SEND_OK must arrive.
func TestSendOKSurvivesSIGKILL(t *testing.T) {
	c := startCluster(t) // its name server; its own broker just idles
	dir, addr, name := t.TempDir(), testutil.FreeAddr(t), uniq("killed")
	topic := uniq("kill")
	p := newProducer(t, c)
	var mu sync.Mutex
	acked := map[string]bool{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < 4; round++ {
		child := startChild(t, dir, addr, c.nsAddr, name)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					m := primitive.NewMessage(topic, []byte(body))
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					res, err := p.SendSync(ctx, m)
					cancel()
					if err == nil && res.Status == primitive.SendOK {
						mu.Lock()
						acked[body] = true
						mu.Unlock()
					}
				}
			}(w)
		}
		// Kill at a random moment: after a random number of further
		// acknowledged sends, while the producers keep sending.
		mu.Lock()
		target := len(acked) + 20 + rng.IntN(200)
		mu.Unlock()
		waitFor(t, 60*time.Second, "acknowledged sends", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= target })
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		close(stop)
		wg.Wait()
	}
	// Restart once more and consume everything.
	child := startChild(t, dir, addr, c.nsAddr, name)
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	got := newReceived()
	pc := newPushConsumer(t, c, uniq("kg"), topic, consumer.Clustering, false,
		func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			got.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	defer pc.Shutdown()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	waitFor(t, 120*time.Second, strconv.Itoa(want)+" acknowledged messages consumed", func() bool {
		for body := range acked {
			if !got.has(body) {
				return false
			}
		}
		return true
	})
	t.Logf("%d sends acknowledged across 4 SIGKILLs; all consumed", want)
}
