package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// Helpers shared by the package's tests: an in-process Kafka (kfake) on
// 127.0.0.1, an independent Kafka reader (franz-go, not the sarama the
// mirror produces with), a broker stack and a started mirror, all closed
// when the test ends.

// queues is the queue count of every mirrored RocketMQ topic.
const queues = 4

var seq atomic.Int64

// uniq returns a name legal as a RocketMQ topic, a Kafka topic and a
// consumer group, unique in the process.
func uniq(prefix string) string { return prefix + "-" + strconv.FormatInt(seq.Add(1), 10) }

// startKafka starts a one-broker kfake cluster on 127.0.0.1 (a random port
// unless opts say otherwise), closed when the test ends.
func startKafka(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaReader reads a Kafka topic from its start, every partition, in
// the background, with franz-go.
type kafkaReader struct {
	cl   *kgo.Client
	done chan struct{}
	mu   sync.Mutex
	recs []*kgo.Record
}

// readKafka starts reading topic at brokers; the reader stops when the
// test ends.
func readKafka(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) *kafkaReader {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := &kafkaReader{cl: cl, done: make(chan struct{})}
	go r.run()
	t.Cleanup(func() {
		cl.Close()
		<-r.done
	})
	return r
}

func (r *kafkaReader) run() {
	defer close(r.done)
	for {
		fs := r.cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return
		}
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) { r.recs = append(r.recs, rec) })
		r.mu.Unlock()
	}
}

// records returns what was read so far, in the order read (each
// partition's records in offset order).
func (r *kafkaReader) records() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*kgo.Record(nil), r.recs...)
}

func (r *kafkaReader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// byID counts the records read by rocketmq.msgId.
func (r *kafkaReader) byID() map[string]int {
	out := map[string]int{}
	for _, rec := range r.records() {
		out[header(rec, mirror.HeaderMsgID)]++
	}
	return out
}

// waitIDs waits until every id of want was read.
func (r *kafkaReader) waitIDs(t testing.TB, timeout time.Duration, want []string) {
	t.Helper()
	testutil.WaitFor(t, timeout, fmt.Sprintf("%d message ids in Kafka", len(want)), func() bool {
		got := r.byID()
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
}

// header returns a record's header value ("" if it has none).
func header(rec *kgo.Record, key string) string {
	v, _ := lookup(rec, key)
	return v
}

func lookup(rec *kgo.Record, key string) (string, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// startStack starts a name server and a SYNC_FLUSH broker (delay level 1
// is 300 ms) and returns it with a client of it.
func startStack(t testing.TB) (*txnbridgetest.Stack, *client.Client) {
	t.Helper()
	st := txnbridgetest.StartBroker(t, txnbridgetest.BrokerOptions{})
	return st, txnbridgetest.NewClient(t, st.NamesrvAddr)
}

// newSender returns a client of the name server nsAddr for a test's
// producers, whose requests wait up to a minute. A send that times out is
// sent again with the same MsgID, and the broker may have stored the
// first attempt too: two stored messages, both of which the mirror rightly
// copies, that a test counting Kafka records per message would blame on
// the mirror. On a loaded machine a send took longer than the default 3 s.
func newSender(t testing.TB, nsAddr string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{NamesrvAddrs: []string{nsAddr}, Logger: txnbridgetest.Logger(t),
		RequestTimeout: time.Minute, RouteRefreshInterval: time.Second, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// createTopic creates topic with the package's queue count on the broker
// at addr.
func createTopic(t testing.TB, addr, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if err := ac.CreateTopic(ctx, topic, queues); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// groupLag returns the group's lag on topic, summed over its queues, as
// the broker reports it.
func groupLag(t testing.TB, addr, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	qs, err := ac.GroupOffsets(ctx, group)
	if err != nil {
		t.Fatalf("group offsets of %s: %v", group, err)
	}
	var lag int64
	for _, q := range qs {
		if q.Topic == topic {
			lag += q.Lag
		}
	}
	return lag
}

// startMirror makes and starts a mirror of opts, closed when the test
// ends. Unset back-off and Kafka timeouts are short, for tests.
func startMirror(t testing.TB, opts mirror.Options) *mirror.Mirror {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = txnbridgetest.Logger(t)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 300 * time.Millisecond
	}
	if opts.Kafka.DialTimeout == 0 {
		opts.Kafka.DialTimeout = time.Second
	}
	if opts.Kafka.ProduceTimeout == 0 {
		opts.Kafka.ProduceTimeout = 3 * time.Second
	}
	m, err := mirror.New(opts)
	if err != nil {
		t.Fatalf("mirror.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("mirror.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil && !errors.Is(err, mirror.ErrClosed) {
			t.Errorf("mirror.Close: %v", err)
		}
	})
	return m
}

// newProducer returns a producer of a new group of c.
func newProducer(t testing.TB, c *client.Client, opts client.ProducerOptions) *client.Producer {
	t.Helper()
	if opts.Group == "" {
		opts.Group = uniq("pg")
	}
	p, err := c.NewProducer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// send sends m and returns its message id, failing the test on an error.
func send(t testing.TB, ctx context.Context, p *client.Producer, m *client.Message) string {
	t.Helper()
	r, err := p.Send(ctx, m)
	if err != nil {
		t.Fatalf("send %s: %v", m.Body, err)
	}
	return r.MsgID
}

// sender sends keyed messages to a topic in the background, one every
// few milliseconds, until stopped, and records those the broker
// acknowledged. Failed sends (the broker down) are counted and skipped.
type sender struct {
	stop, done chan struct{}
	mu         sync.Mutex
	acked      []string
	failed     int
	errs       []error // of the failed sends, the first few
}

// startSender starts sending to topic with p (whose RetryTimes should be
// negative when the broker may die, so a failed send never stores a
// second copy later); it is stopped when the test ends.
func startSender(t testing.TB, p *client.Producer, topic string) *sender {
	t.Helper()
	s := &sender{stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(p, topic)
	t.Cleanup(s.halt)
	return s
}

func (s *sender) run(p *client.Producer, topic string) {
	defer close(s.done)
	tick := time.NewTicker(3 * time.Millisecond) // pacing, not waiting
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		key := "key-" + strconv.Itoa(i%16)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := p.Send(ctx, &client.Message{Topic: topic, Body: []byte("msg-" + strconv.Itoa(i)), Keys: []string{key},
			ShardingKey: key, Tags: "stream"})
		cancel()
		s.mu.Lock()
		if err != nil {
			s.failed++
			if len(s.errs) < 8 {
				s.errs = append(s.errs, err)
			}
		} else {
			s.acked = append(s.acked, r.MsgID)
		}
		s.mu.Unlock()
	}
}

// halt stops sending and waits for the send in progress.
func (s *sender) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// ackedIDs returns the ids of the acknowledged sends so far.
func (s *sender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

func (s *sender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// duplicates counts the records beyond the first of each message id.
func duplicates(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c - 1
	}
	return n
}

// kafkaEnd returns the sum of the end offsets of topic's partitions: how
// many records Kafka holds (ListOffsets, latest).
func kafkaEnd(t testing.TB, brokers []string, topic string, partitions int32, opts ...kgo.Opt) int64 {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	var n int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("list offsets of %s/%d: %v", topic, rp.Partition, err)
			}
			n += rp.Offset
		}
	}
	return n
}
