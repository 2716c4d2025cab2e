package broker

import (
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
)

// stuckClient opens a raw connection, sends the given requests and then
// never reads again: its receive window fills and the broker's writes to it
// block.
func stuckClient(t *testing.T, b *Broker, reqs ...*remoting.Command) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	writeFrames(t, nc, reqs...)
	return nc
}

// writeFrames writes reqs on a raw connection, one frame each.
func writeFrames(t *testing.T, nc net.Conn, reqs ...*remoting.Command) {
	t.Helper()
	for _, r := range reqs {
		frame, err := remoting.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
}

func sendHalfGroup(t *testing.T, c *remoting.Conn, group, topic, id string, body []byte) {
	t.Helper()
	ext := sendExtV2(topic, 0, props("UNIQ_KEY", id, "TRAN_MSG", "true", "PGROUP", group))
	ext["a"] = group
	ext["f"] = strconv.Itoa(int(message.TransactionPreparedType))
	if resp := call(t, c, remoting.ReqSendMessageV2, ext, body); resp.Code != remoting.RespSuccess {
		t.Fatalf("half send: code %d %q", resp.Code, resp.Remark)
	}
}

// A producer of one group that stops reading does not hold up the
// check-backs of another group: each CHECK_TRANSACTION_STATE write waits
// at most checkWriteWait (it waited for the connection's WriteTimeout,
// 30 s, stalling every group's checks), and the stuck connection is then
// skipped.
func TestStuckProducerDoesNotDelayOtherGroupsChecks(t *testing.T) {
	o := testOptions(t)
	o.Txn = txn.Options{Timeout: 100 * time.Millisecond, CheckInterval: 100 * time.Millisecond, CheckMax: 1000,
		CheckpointInterval: 50 * time.Millisecond}
	b := startBroker(t, o)
	c := dial(t, b)

	hb := remoting.NewRequest(remoting.ReqHeartBeat, nil)
	hb.Body = []byte(`{"clientID":"STUCK","producerDataSet":[{"groupName":"stuck"}],"consumerDataSet":[]}`)
	stuckClient(t, b, hb)
	waitFor(t, "the stuck producer registered", func() bool { return len(b.groupTable().producerConns("stuck")) == 1 })

	big := []byte(strings.Repeat("x", 1<<20))
	for i := range 8 {
		sendHalfGroup(t, c, "stuck", "orders", "s"+strconv.Itoa(i), big)
	}
	// The healthy group's transaction is due after the stuck group's.
	p := dialProducer(t, b)
	sendHalfRaw(t, c, "orders", "h1")
	select {
	case <-p.checks:
	case <-time.After(10 * time.Second):
		t.Fatalf("healthy group pg got no CHECK_TRANSACTION_STATE in 10 s (check interval 100 ms): the check loop is blocked writing to group stuck's producer")
	}
}

// Broker.Close answers held pulls before it closes the server's
// connections; a held pull on a connection whose peer stopped reading
// holds it no longer than closeGrace (it held Close for the WriteTimeout,
// 30 s).
func TestCloseWithAHeldPullOnAStuckConnection(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 60 * time.Second
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	started := false
	t.Cleanup(func() {
		if !started {
			b.Close()
			return
		}
		<-done // a late Close must end before the test's directory goes
	})
	c := dial(t, b)
	big := strings.Repeat("x", 1<<20)
	for range 4 {
		mustSend(t, c, "big", 0, "", big)
	}
	mustSend(t, c, "idle", 0, "", "x")
	waitQueue(t, b, "big", 0, 4)
	waitQueue(t, b, "idle", 0, 1)

	var reqs []*remoting.Command
	for i := range 12 {
		reqs = append(reqs, remoting.NewRequest(remoting.ReqPullMessage, pullExt("big", 0, int64(i%4), 0, "*", 0)))
	}
	reqs = append(reqs, remoting.NewRequest(remoting.ReqPullMessage, pullExt("idle", 0, 1, pullFlagSuspend, "*", 60000)))
	stuckClient(t, b, reqs...)
	waitFor(t, "the stuck client's pull to be held", func() bool { return b.pulls.held() == 1 })

	started = true
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		done <- err
	case <-time.After(20 * time.Second): // 1.5 s here; 12.5 s once under load; 30 s (WriteTimeout) before the fix
		t.Fatal("Broker.Close has not returned after 20 s: a held pull's answer is blocked on a connection that does not read")
	}
}

// A consumer that stops reading does not keep a notification goroutine
// per change of its group for the WriteTimeout (30 s): each
// NOTIFY_CONSUMER_IDS_CHANGED write, or its wait for the connection's
// blocked writer, ends after notifyWriteWait.
func TestStuckConsumerDoesNotHoldNotifications(t *testing.T) {
	b := startBroker(t, testOptions(t))
	c := dial(t, b)
	big := strings.Repeat("x", 1<<20)
	for range 4 {
		mustSend(t, c, "big", 0, "", big)
	}
	waitQueue(t, b, "big", 0, 4)
	hb := remoting.NewRequest(remoting.ReqHeartBeat, nil)
	hb.Body = consumerHeartbeat("STUCK", "big", "cg")
	reqs := []*remoting.Command{hb}
	for i := range 12 { // answers that fill the stuck consumer's socket
		reqs = append(reqs, remoting.NewRequest(remoting.ReqPullMessage, pullExt("big", 0, int64(i%4), 0, "*", 0)))
	}
	stuckClient(t, b, reqs...)
	waitFor(t, "the stuck consumer registered", func() bool {
		g, ok := b.groupTable().info("cg")
		return ok && len(g.ClientIDs) == 1
	})
	// Changes of the group, each notifying the stuck consumer, until one
	// is held by its full socket.
	changes := 0
	waitFor(t, "a notification held by the stuck consumer", func() bool {
		changes++
		hbOK(t, c, consumerHeartbeat("LIVE"+strconv.Itoa(changes), "big", "cg"))
		return b.groupTable().notifyN.Load() > 0
	})
	testutil.WaitFor(t, 15*time.Second, "the notifications to the stuck consumer to end", func() bool {
		return b.groupTable().notifyN.Load() == 0
	})
}

// Held pulls of a client that stopped reading, woken by one message,
// keep no more than about one answer in memory: each pull's answer used
// to be built at once on its own goroutine and kept until the write to
// the stuck connection failed (WriteTimeout), so the per-connection cap on
// held pulls' headers (maxHeldBytesPerConn, some 20,000 pulls) turned one
// message into 20,000 copies of it.
func TestWokenHeldPullsOfAStuckClientDoNotPileUp(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 60 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "pile", 0, "", "first")
	waitQueue(t, b, "pile", 0, 1)

	const n = 400
	body := strings.Repeat("x", 256<<10)
	var reqs []*remoting.Command
	for range n {
		reqs = append(reqs, remoting.NewRequest(remoting.ReqPullMessage, pullExt("pile", 0, 1, pullFlagSuspend, "*", 60000)))
	}
	stuckClient(t, b, reqs...)
	waitFor(t, "the stuck client's pulls to be held", func() bool { return b.pulls.held() == n })

	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := heap()
	mustSend(t, c, "pile", 0, "", body)
	waitFor(t, "the held pulls to be woken", func() bool { return b.pulls.held() == 0 })
	// The stuck socket takes a few answers; the rest must not be kept.
	const limit = 32 << 20
	var peak int64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		peak = max(peak, heap()-base)
	}
	if peak > limit {
		t.Fatalf("%d held pulls of a client not reading, woken by one %d KiB message: the heap grew by %d MiB (> %d MiB)",
			n, len(body)>>10, peak>>20, limit>>20)
	}
}
