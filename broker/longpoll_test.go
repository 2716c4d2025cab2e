package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/testutil"
)

// asyncPull starts a pull and delivers its response (nil on a transport
// error) on the returned channel.
func asyncPull(c *remoting.Conn, ext map[string]string) <-chan *remoting.Command {
	out := make(chan *remoting.Command, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, _ := c.Invoke(ctx, remoting.NewRequest(remoting.ReqPullMessage, ext))
		out <- resp
	}()
	return out
}

func TestLongPollAnsweredOnArrival(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 5 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lp", 0, "", "first") // the topic exists, offset 1 is next
	waitQueue(t, b, "lp", 0, 1)

	start := time.Now()
	done := asyncPull(c, pullExt("lp", 0, 1, pullFlagSuspend, "*", 20000))
	h := b.pulls
	waitFor(t, "the pull to be held", func() bool { return h.held() == 1 })

	p := dial(t, b) // another producer
	mustSend(t, p, "lp", 0, "", "second")
	resp := <-done
	elapsed := time.Since(start)
	if resp == nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("held pull answered %+v", resp)
	}
	if msgs := decodeAll(t, resp.Body); len(msgs) != 1 || string(msgs[0].Body) != "second" || resp.Ext("nextBeginOffset") != "2" {
		t.Fatalf("held pull got %d messages, ext %v", len(msgs), resp.ExtFields)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("held pull answered after %v, long after the message arrived", elapsed)
	}
	if n := h.held(); n != 0 {
		t.Fatalf("%d pulls still held", n)
	}
}

func TestLongPollOtherQueueDoesNotWake(t *testing.T) {
	o := testOptions(t)
	// Long enough that the send below (slow on a loaded machine) usually
	// lands while the pull is still held.
	o.LongPollTimeout = 2 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lq", 0, "", "x")
	waitQueue(t, b, "lq", 0, 1)
	start := time.Now()
	done := asyncPull(c, pullExt("lq", 1, 0, pullFlagSuspend, "*", 20000))
	waitFor(t, "the pull to be held", func() bool { return b.pulls.held() == 1 })
	mustSend(t, c, "lq", 0, "", "y") // queue 0, not the held queue 1
	waitQueue(t, b, "lq", 0, 2)
	// Only while its hold lasts: past it, the pull is answered anyway
	// (checked by the time below).
	if n := b.pulls.held(); n != 1 && time.Since(start) < o.LongPollTimeout {
		t.Fatalf("%d pulls held after a message to another queue, want the one", n)
	}
	// Woken or timed out, a pull of an empty queue answers PULL_NOT_FOUND:
	// only the time tells them apart.
	resp := <-done
	if resp == nil || resp.Code != remoting.RespPullNotFound {
		t.Fatalf("pull on a quiet queue answered %+v", resp)
	}
	if d := time.Since(start); d < o.LongPollTimeout {
		t.Fatalf("pull on a quiet queue answered after %v, before its %v hold ended", d, o.LongPollTimeout)
	}
}

// subscriptionHeartbeat is a heartbeat of consumer group cg subscribing to
// topic with a tag expression (tags and their hash codes) at version ver.
func subscriptionHeartbeat(topic, expr, tags, codes string, ver int64) []byte {
	return []byte(fmt.Sprintf(`{"clientID":"127.0.0.1@1","producerDataSet":[],"consumerDataSet":[{"groupName":"cg",`+
		`"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,`+
		`"subscriptionDataSet":[{"classFilterMode":false,"topic":%q,"subString":%q,"tagsSet":[%s],"codeSet":[%s],"subVersion":%d,"expressionType":"TAG"}]}]}`,
		topic, expr, tags, codes, ver))
}

// A held pull is answered with the group's subscription as it is when the
// message arrives: a consumer that subscribed anew while its pull was held
// gets a message of the new tag instead of having it filtered out (and its
// offset moved past it).
func TestLongPollAnswersWithCurrentSubscription(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 5 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "ls", 0, props("TAGS", "a"), "first")
	waitQueue(t, b, "ls", 0, 1)
	hbOK(t, c, subscriptionHeartbeat("ls", "a", `"a"`, `"97"`, 1))
	ext := pullExt("ls", 0, 1, pullFlagSuspend, "", 20000) // no subscription flag: the group's
	ext["subVersion"] = "1"
	done := asyncPull(c, ext)
	waitFor(t, "the pull to be held", func() bool { return b.pulls.held() == 1 })
	hbOK(t, c, subscriptionHeartbeat("ls", "a || b", `"a","b"`, `"97","98"`, 2))
	mustSend(t, c, "ls", 0, props("TAGS", "b"), "second")
	resp := <-done
	if resp == nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("held pull answered %+v, want the tag-b message", resp)
	}
	if msgs := decodeAll(t, resp.Body); len(msgs) != 1 || string(msgs[0].Body) != "second" {
		t.Fatalf("held pull got %d messages, want second", len(msgs))
	}
}

func TestLongPollTimeout(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 300 * time.Millisecond
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lt", 0, "", "x")
	waitQueue(t, b, "lt", 0, 1)

	start := time.Now()
	resp := pull(t, c, "lt", 0, 1, pullFlagSuspend, "*", 20000) // capped at LongPollTimeout
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the 300 ms poll timeout", elapsed)
	}
	if resp.Code != remoting.RespPullNotFound || resp.Ext("nextBeginOffset") != "1" {
		t.Fatalf("timed-out pull: code %d ext %v", resp.Code, resp.ExtFields)
	}
	// The consumer's own shorter timeout wins.
	start = time.Now()
	resp = pull(t, c, "lt", 0, 1, pullFlagSuspend, "*", 50)
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond || resp.Code != remoting.RespPullNotFound {
		t.Fatalf("50 ms pull: code %d after %v", resp.Code, elapsed)
	}
	// Without the suspend flag nothing is held.
	if resp = pull(t, c, "lt", 0, 1, 0, "*", 20000); resp.Code != remoting.RespPullNotFound {
		t.Fatalf("unsuspended pull: code %d", resp.Code)
	}
}

func TestLongPollReleasedOnClose(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 10 * time.Second
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, b)
	mustSend(t, c, "lc", 0, "", "x")
	waitQueue(t, b, "lc", 0, 1)
	done := asyncPull(c, pullExt("lc", 0, 1, pullFlagSuspend, "*", 20000))
	waitFor(t, "the pull to be held", func() bool { return b.pulls.held() == 1 })
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// SYSTEM_BUSY: on PULL_NOT_FOUND clients pull again at once, on the
	// connection Close ends next (see shuttingDown).
	resp := <-done
	if resp == nil || resp.Code != remoting.RespSystemBusy {
		t.Fatalf("held pull answered %v on Close, want SYSTEM_BUSY before the connection closes", resp)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Close took %v with a held pull", elapsed)
	}
}

// A pull that would be held once Close has answered the held ones (the
// client pulls again before its connection closes) is told to back off
// too, not answered PULL_NOT_FOUND.
func TestLongPollRefusedWhileClosing(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 10 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lx", 0, "", "x")
	waitQueue(t, b, "lx", 0, 1)
	b.pulls.close(closeGrace) // the first step of Close
	resp := <-asyncPull(c, pullExt("lx", 0, 1, pullFlagSuspend, "*", 20000))
	if resp == nil || resp.Code != remoting.RespSystemBusy {
		t.Fatalf("suspended pull while closing answered %v, want SYSTEM_BUSY", resp)
	}
	// One with a message is served as ever.
	if resp := <-asyncPull(c, pullExt("lx", 0, 0, pullFlagSuspend, "*", 20000)); resp == nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("pull of a message while closing answered %v, want SUCCESS", resp)
	}
}

func TestLongPollDroppedWithConnection(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 10 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "ld", 0, "", "x")
	waitQueue(t, b, "ld", 0, 1)
	done := asyncPull(c, pullExt("ld", 0, 1, pullFlagSuspend, "*", 20000))
	h := b.pulls
	waitFor(t, "the pull to be held", func() bool { return h.held() == 1 })
	c.Close()
	<-done
	waitFor(t, "the held pull to be dropped", func() bool { return h.held() == 0 })
	// The broker still serves others.
	mustSend(t, dial(t, b), "ld", 0, "", "y")
}

// A held (long-polling) pull frees its in-flight slot but keeps its
// header until LongPollTimeout: what one connection's held pulls keep is
// bounded (maxHeldBytesPerConn), pulls past that are answered at once, and
// a held pull's body, which PULL_MESSAGE does not use, is not kept at all.
func TestHeldPullsAreBoundedPerConnection(t *testing.T) {
	o := testOptions(t)
	// Held pulls must not time out (and count as answered) while the
	// test waits, however slow the machine.
	o.LongPollTimeout = 5 * time.Minute
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lp", 0, "", "first")
	waitQueue(t, b, "lp", 0, 1)
	b.pulls.mu.Lock()
	b.pulls.maxBytes = 1 << 20 // the 16 MiB of production, scaled down
	b.pulls.mu.Unlock()
	const n = 40
	pad := strings.Repeat("x", 64<<10) // an ext field PULL_MESSAGE ignores
	body := make([]byte, 16<<10)       // ignored too
	var answered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range n {
		ext := pullExt("lp", 0, 1, pullFlagSuspend, "*", 300000)
		ext["pad"] = pad
		req := remoting.NewRequest(remoting.ReqPullMessage, ext)
		req.Body = body
		go func() {
			if _, err := c.Invoke(ctx, req); err == nil {
				answered.Add(1)
			}
		}()
	}
	// Each pull is held or answered at once (SYSTEM_BUSY, or a refusal to hold).
	testutil.WaitFor(t, time.Minute, "every pull held or answered", func() bool { return int64(b.pulls.held())+answered.Load() >= n })
	held := b.pulls.held()
	if limit := b.pulls.maxBytes / len(pad); held > limit {
		t.Fatalf("one connection holds %d pulls of %d KiB headers (> %d, %d KiB)", held, len(pad)>>10, limit, b.pulls.maxBytes>>10)
	}
	if held == 0 {
		t.Fatal("no pull held")
	}
	b.pulls.mu.Lock()
	defer b.pulls.mu.Unlock()
	for p := range b.pulls.byConn[firstConn(b.pulls.byConn)] {
		if p.req.Body != nil {
			t.Fatalf("a held pull keeps its %d-byte body", len(p.req.Body))
		}
	}
}

// firstConn returns a key of m (tests with one connection).
func firstConn[V any](m map[*remoting.Conn]V) *remoting.Conn {
	for c := range m {
		return c
	}
	return nil
}

// One process's consumers share one connection per broker, with one
// long-polling pull per queue: many more than the connection's in-flight
// limit are all held, none answered at once (which the clients would
// answer with the next pull at once, in a loop).
func TestManyHeldPullsOnOneConnection(t *testing.T) {
	o := testOptions(t)
	// A held pull that timed out would count as answered at once: the
	// hold outlasts the test, however slow the machine.
	o.LongPollTimeout = 5 * time.Minute
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lp", 0, "", "first")
	waitQueue(t, b, "lp", 0, 1)
	var answered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n, chunk = 3 * remoting.DefaultMaxInFlight, 512
	for sent := 0; sent < n; sent += chunk {
		for range chunk {
			req := remoting.NewRequest(remoting.ReqPullMessage, pullExt("lp", 0, 1, pullFlagSuspend, "*", 300000))
			go func() {
				if _, err := c.Invoke(ctx, req); err == nil {
					answered.Add(1)
				}
			}()
		}
		testutil.WaitFor(t, time.Minute, "the pulls held or answered", func() bool { return int64(b.pulls.held())+answered.Load() >= int64(sent+chunk) })
		if a := answered.Load(); a > 0 {
			t.Fatalf("%d of %d pulls answered at once instead of held", a, sent+chunk)
		}
	}
	if h := b.pulls.held(); h != n {
		t.Fatalf("%d pulls held, want %d", h, n)
	}
}

// A held pull is woken by a message of its queue that passes its tag
// filter, not by one that does not (PullRequestHoldService matches the
// arriving message's tag code): a consumer of a rare tag on a busy queue
// stays parked instead of being answered PULL_RETRY_IMMEDIATELY, and
// pulling again, once per message of other tags.
func TestLongPollNotWokenByFilteredMessage(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 30 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lf", 0, props("TAGS", "a"), "first")
	waitQueue(t, b, "lf", 0, 1)
	// Runs after the holder's own hook, registered first: the holder has
	// seen the dispatch of offset 1 when notified closes.
	notified := make(chan struct{})
	var once sync.Once
	b.onDispatchHook(func(topic string, _ int32, maxOffset int64) {
		if topic == "lf" && maxOffset >= 2 {
			once.Do(func() { close(notified) })
		}
	})
	done := asyncPull(c, pullExt("lf", 0, 1, pullFlagSuspend, "a", 30000))
	waitFor(t, "the pull to be held", func() bool { return b.pulls.held() == 1 })
	p := dial(t, b)
	mustSend(t, p, "lf", 0, props("TAGS", "b"), "other")
	<-notified
	var early *remoting.Command
	waitFor(t, "the pull to be answered or held again", func() bool {
		select {
		case early = <-done:
			return true
		default:
			return b.pulls.held() == 1
		}
	})
	if early != nil {
		t.Fatalf("held pull for tag a answered code %d %q next %s on a message of tag b, want it held",
			early.Code, early.Remark, early.Ext("nextBeginOffset"))
	}
	mustSend(t, p, "lf", 0, props("TAGS", "a"), "second")
	resp := <-done
	if resp == nil || resp.Code != remoting.RespSuccess || resp.Ext("nextBeginOffset") != "3" {
		t.Fatalf("held pull answered %+v, want the tag-a message", resp)
	}
	if msgs := decodeAll(t, resp.Body); len(msgs) != 1 || string(msgs[0].Body) != "second" {
		t.Fatalf("held pull got %d messages, want second", len(msgs))
	}
}

// A pull asking to be held longer than a time.Duration holds (e.g. Java's
// Long.MAX_VALUE, "as long as you can") is held for LongPollTimeout, not
// answered at once: its milliseconds overflowed into a negative wait.
func TestLongPollHugeSuspendTimeout(t *testing.T) {
	o := testOptions(t)
	o.LongPollTimeout = 30 * time.Second
	b := startBroker(t, o)
	c := dial(t, b)
	mustSend(t, c, "lh", 0, "", "first")
	waitQueue(t, b, "lh", 0, 1)
	for i, ms := range []string{"9223372036854775807", "9223372036855"} {
		ext := pullExt("lh", 0, int64(i+1), pullFlagSuspend, "*", 0)
		ext["suspendTimeoutMillis"] = ms
		done := asyncPull(c, ext)
		waitFor(t, "the pull to be held or answered", func() bool { return b.pulls.held() == 1 || len(done) == 1 })
		if len(done) == 1 {
			resp := <-done
			t.Fatalf("pull with suspendTimeoutMillis %s answered at once: code %+v", ms, resp)
		}
		mustSend(t, c, "lh", 0, "", "next")
		if resp := <-done; resp == nil || resp.Code != remoting.RespSuccess {
			t.Fatalf("held pull answered %+v, want the new message", resp)
		}
	}
}
