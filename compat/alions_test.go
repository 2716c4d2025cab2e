package compat

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
)

// The tests in this file run ali-ons, a Node.js port of the RocketMQ Java
// client (its MQProducer, MQPushConsumer, rebalance and offset store),
// against an in-process halfback cluster: a second client written apart
// from the Go client, speaking the same remoting protocol. compat/node
// holds its pinned package and the script that drives it (alions.js);
// `make compat` installs the package with npm ci, and node must be on PATH
// (`make node` installs Debian's). Without either the tests fail.

// nodeEvent is one line alions.js printed.
type nodeEvent struct {
	Event          string `json:"event"`
	Message        string `json:"message"`
	Body           string `json:"body"`
	Status         string `json:"status"`
	Topic          string `json:"topic"`
	Tags           string `json:"tags"`
	Keys           string `json:"keys"`
	MsgID          string `json:"msgId"`
	QueueID        int    `json:"queueId"`
	QueueOffset    int64  `json:"queueOffset"`
	ReconsumeTimes int    `json:"reconsumeTimes"`
	Began          int64  `json:"began"` // sent: when the send began (ms)
	At             int64  `json:"at"`    // when the event happened (ms)
}

// nodeProc is a running alions.js.
type nodeProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when stdout ends
	mu    sync.Mutex
	evs   []nodeEvent
}

// startNode runs alions.js with the cluster's name server and env
// ("KEY=value" entries); HOME is a fresh directory, where ali-ons keeps a
// broadcasting consumer's offsets.
func startNode(t *testing.T, c *cluster, env ...string) *nodeProc {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to run ali-ons (make node installs Debian's): %v", err)
	}
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ali-ons")); err != nil {
		t.Fatalf("ali-ons is not installed in %s (make compat runs npm ci there): %v", dir, err)
	}
	cmd := exec.Command(nodeBin, filepath.Join(dir, "alions.js"))
	cmd.Env = append(os.Environ(), "NAMESRV="+c.nsAddr, "HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			for _, ev := range p.evs {
				t.Logf("alions.js %s: %+v", env, ev)
			}
			p.mu.Unlock()
		}
		stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		cmd.Wait()
	})
	return p
}

func (p *nodeProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var ev nodeEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = nodeEvent{Event: "unparsed", Message: sc.Text()}
		}
		p.mu.Lock()
		p.evs = append(p.evs, ev)
		p.mu.Unlock()
	}
}

// events returns the events of kind printed so far. An "error" or
// "unparsed" line fails the test.
func (p *nodeProc) events(kind string) []nodeEvent {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []nodeEvent
	for _, ev := range p.evs {
		if ev.Event == "error" || ev.Event == "unparsed" {
			p.t.Fatalf("alions.js: %s: %s", ev.Event, ev.Message)
		}
		if ev.Event == kind {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until the script printed an event of kind.
func (p *nodeProc) waitEvent(kind string, timeout time.Duration) {
	p.t.Helper()
	waitFor(p.t, timeout, "alions.js to print "+kind, func() bool {
		return len(p.events(kind)) > 0
	})
}

// finish closes the script's standard input (a consumer then shuts down)
// and waits for it to exit successfully after printing kind.
func (p *nodeProc) finish(kind string) {
	p.t.Helper()
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("alions.js did not exit within 30 s")
	}
	if err := p.cmd.Wait(); err != nil {
		p.events("") // fails on a printed error first
		p.t.Fatalf("alions.js: %v", err)
	}
	if len(p.events(kind)) == 0 {
		p.t.Fatalf("alions.js exited without printing %q", kind)
	}
}

// produceNode sends count messages through ali-ons (bodies prefix0...,
// even ones tagged TagA, odd ones TagB, keys prefix-k<i>) and returns its
// send results.
func produceNode(t *testing.T, c *cluster, topic, prefix string, count int, env ...string) []nodeEvent {
	t.Helper()
	p := startNode(t, c, append([]string{"MODE=produce", "TOPIC=" + topic, "PREFIX=" + prefix, "COUNT=" + strconv.Itoa(count)}, env...)...)
	p.finish("done")
	sent := p.events("sent")
	if len(sent) != count {
		t.Fatalf("ali-ons sent %d messages, want %d", len(sent), count)
	}
	return sent
}

// gotBodies counts deliveries by body.
func gotBodies(evs []nodeEvent) map[string]int {
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Body]++
	}
	return n
}

func TestAliOnsSendIsStoredAndIndexed(t *testing.T) {
	c := startCluster(t)
	topic := uniq("ali")
	sent := produceNode(t, c, topic, "m", 8)
	ids := map[string]bool{}
	perQueue := map[int][]int64{}
	for _, s := range sent {
		if s.Status != "SEND_OK" {
			t.Fatalf("send of %s: status %q, want SEND_OK", s.Body, s.Status)
		}
		if ids[s.MsgID] {
			t.Fatalf("message id %s answered twice", s.MsgID)
		}
		ids[s.MsgID] = true
		perQueue[s.QueueID] = append(perQueue[s.QueueID], s.QueueOffset)
	}
	for q, offs := range perQueue {
		for i, off := range offs {
			if off != int64(i) {
				t.Fatalf("queue %d: send results gave offsets %v, want 0, 1, 2, ...", q, offs)
			}
		}
		if _, hi := c.b.Store().QueueBounds(topic, int32(q)); hi != int64(len(offs)) {
			t.Fatalf("queue %d holds %d messages, ali-ons was told %d", q, hi, len(offs))
		}
	}
	// The KEYS and TAGS ali-ons wrote are the broker's: the key index finds
	// the message, and it reads back with its tag and body.
	offs, err := c.b.Store().QueryByKey(topic, "m-k5", 0, math.MaxInt64, 4)
	if err != nil || len(offs) != 1 {
		t.Fatalf("QueryByKey(m-k5) = %v, %v; want one offset", offs, err)
	}
	m, err := c.b.Store().ReadMessage(offs[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "m5" || m.Property(message.PropertyTags) != "TagB" {
		t.Fatalf("message under key m-k5: body %q tags %q, want m5 and TagB", m.Body, m.Property(message.PropertyTags))
	}
}

func TestAliOnsConsumesFiltersRetriesAndKeepsOffsets(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ali"), uniq("alig")
	produceNode(t, c, topic, "m", 20)

	// TagA only; m4 asks for a retry once, which goes through the group's
	// retry topic and a delay level and comes back as m4 of topic again.
	cons := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "EXPR=TagA", "RETRY_ONCE=m4")
	waitFor(t, 60*time.Second, "every TagA message, and m4 twice", func() bool {
		got := gotBodies(cons.events("got"))
		return len(got) == 10 && got["m4"] == 2
	})
	for _, ev := range cons.events("got") {
		i, _ := strconv.Atoi(strings.TrimPrefix(ev.Body, "m"))
		if i%2 != 0 || ev.Tags != "TagA" {
			t.Fatalf("a TagA subscriber got %s with tags %q", ev.Body, ev.Tags)
		}
		if ev.Topic != topic {
			t.Fatalf("%s delivered as topic %q, want %q (a retry keeps its original topic)", ev.Body, ev.Topic, topic)
		}
		if ev.Keys != "m-k"+strconv.Itoa(i) {
			t.Fatalf("%s delivered with keys %q", ev.Body, ev.Keys)
		}
	}
	var retries []int
	for _, ev := range cons.events("got") {
		if ev.Body == "m4" {
			retries = append(retries, ev.ReconsumeTimes)
		}
	}
	if len(retries) != 2 || retries[0] != 0 || retries[1] != 1 {
		t.Fatalf("m4 delivered with reconsumeTimes %v, want [0 1]", retries)
	}
	cons.finish("closed")

	// The offsets it committed cover the filtered TagB messages too, so a
	// new member of the group gets only what is sent afterwards.
	if n := committed(t, c.b.Addr(), group, topic); n != 20 {
		t.Fatalf("group committed %d offsets, want 20", n)
	}
	again := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "EXPR=TagA")
	again.waitEvent("ready", 30*time.Second)
	produceNode(t, c, topic, "n", 4)
	waitFor(t, 60*time.Second, "the two new TagA messages", func() bool { return len(gotBodies(again.events("got"))) >= 2 })
	again.finish("closed")
	got := gotBodies(again.events("got"))
	if len(got) != 2 || got["n0"] != 1 || got["n2"] != 1 {
		t.Fatalf("after a restart the group got %v, want n0 and n2 once each", got)
	}
}

func TestAliOnsPoisonMessageReachesDLQ(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ali"), uniq("alig")
	produceNode(t, c, topic, "p", 1)
	// ali-ons sends maxReconsumeTimes with each send-back: after the first
	// delivery and one retry the broker moves p0 to %DLQ%<group>. (A
	// handler that throws fails the message; see alions.js.)
	cons := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "FAIL_ALWAYS=p0", "MAX_RECONSUME=1")
	dlq := "%DLQ%" + group
	waitFor(t, 60*time.Second, "p0 in "+dlq, func() bool {
		_, hi := c.b.Store().QueueBounds(dlq, 0)
		return hi == 1
	})
	cons.finish("closed")
	if n := gotBodies(cons.events("got"))["p0"]; n != 2 {
		t.Fatalf("p0 delivered %d times before the DLQ, want 2 (1 + 1 retry)", n)
	}
	r, err := c.b.Store().GetMessages(dlq, 0, 0, store.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := message.DecodeAll(r.Records)
	if err != nil || len(ms) != 1 {
		t.Fatalf("reading %s: %v, %d messages", dlq, err, len(ms))
	}
	m := ms[0]
	if string(m.Body) != "p0" || m.Property(message.PropertyRetryTopic) != topic {
		t.Fatalf("DLQ holds body %q from topic %q, want p0 from %q", m.Body, m.Property(message.PropertyRetryTopic), topic)
	}
}

func TestAliOnsBroadcasting(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ali"), uniq("alib")
	a := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "BROADCAST=1", "INSTANCE=a")
	b := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "BROADCAST=1", "INSTANCE=b")
	a.waitEvent("ready", 30*time.Second)
	b.waitEvent("ready", 30*time.Second)
	produceNode(t, c, topic, "b", 10)
	waitFor(t, 60*time.Second, "both members to get all 10", func() bool {
		return len(gotBodies(a.events("got"))) == 10 && len(gotBodies(b.events("got"))) == 10
	})
	a.finish("closed")
	b.finish("closed")
}

// TestAliOnsBroadcastingTwinsShareAClientID: ali-ons, as RocketMQ's Java
// client, keeps the instance name DEFAULT for a broadcasting consumer, so
// two members on one host (two processes of one service, say) share the
// client id ClientIP@DEFAULT. Both get every message; the broker lists
// both connections (as RocketMQ's, which keeps a group's members by
// channel), and when one leaves the other stays online.
func TestAliOnsBroadcastingTwinsShareAClientID(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ali"), uniq("alit")
	a := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "BROADCAST=1")
	b := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group, "BROADCAST=1")
	a.waitEvent("ready", 30*time.Second)
	b.waitEvent("ready", 30*time.Second)
	produceNode(t, c, topic, "t", 10)
	waitFor(t, 60*time.Second, "both members to get all 10", func() bool {
		return len(gotBodies(a.events("got"))) == 10 && len(gotBodies(b.events("got"))) == 10
	})
	ac, err := admin.Dial(context.Background(), c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	members := func() []admin.GroupClient {
		g, err := ac.GroupConnections(context.Background(), group)
		if err != nil {
			t.Fatalf("group connections: %v", err)
		}
		return g.Clients
	}
	if m := members(); len(m) != 2 || m[0].ClientID != m[1].ClientID || !strings.HasSuffix(m[0].ClientID, "@DEFAULT") {
		t.Fatalf("group connections %+v, want both members, under one id ending in @DEFAULT", m)
	}
	a.finish("closed")
	waitFor(t, 10*time.Second, "the member that left to leave the group", func() bool { return len(members()) == 1 })
	produceNode(t, c, topic, "u", 5)
	waitFor(t, 60*time.Second, "the remaining member to get the next 5", func() bool {
		return len(gotBodies(b.events("got"))) == 15
	})
	b.finish("closed")
}

func TestAliOnsDelayLevel(t *testing.T) {
	c := startCluster(t)
	topic, group := uniq("ali"), uniq("alid")
	cons := startNode(t, c, "MODE=consume", "TOPIC="+topic, "GROUP="+group)
	cons.waitEvent("ready", 30*time.Second)
	sent := produceNode(t, c, topic, "d", 1, "DELAY_LEVEL=5") // 1 s in this cluster
	waitFor(t, 60*time.Second, "the delayed message", func() bool { return len(cons.events("got")) > 0 })
	cons.finish("closed")
	got := cons.events("got")[0]
	if got.Topic != topic || got.Body != "d0" {
		t.Fatalf("delivered %s of topic %q, want d0 of %q", got.Body, got.Topic, topic)
	}
	// From when the send began: the level counts from the store time,
	// which lies within the send. (Not from the send's answer: on a loaded
	// machine it reached the producer some ms after the store time, and a
	// prompt delivery came 998ms after it.)
	if d := time.Duration(got.At-sent[0].Began) * time.Millisecond; d < time.Second {
		t.Fatalf("a level-5 (1 s) message was delivered %v after its send began", d)
	}
}
