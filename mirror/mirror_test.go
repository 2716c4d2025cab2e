package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/mirror"
)

// sentMsg is what a test sent, to check its record against.
type sentMsg struct {
	id, kind, body, tags string
	keys                 []string
	seq                  int               // position among its key's messages (plain ones)
	props                map[string]string // user properties
	traceID              trace.TraceID     // the sender's trace, if it sent in one
	sentAt               time.Time         // just before the send
	delayed              bool              // sent with DelayLevel 1 (300 ms)
}

const (
	kafkaPartitions = 6
	plainKeys       = 20
	plainPerKey     = 10
	delayLevel1     = 300 * time.Millisecond
)

// TestMirrorCopiesCommittedMessages sends plain keyed messages,
// transactional ones (committed, rolled back, and one left half), and
// delayed ones, and reads the Kafka topic with franz-go: every visible
// message arrives exactly once, with its key, body, store time and
// properties; no rolled-back or half message ever does; one key's
// messages stay in order in the partition Kafka's own partitioner picks
// for the key; and each record's traceparent continues the sender's trace
// through the mirror's publish span.
func TestMirrorCopiesCommittedMessages(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("orders"), uniq("orders.kafka"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(kafkaPartitions, ktopic))
	spans := tracetest.NewSpanRecorder()
	mirrorTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = mirrorTP.Shutdown(context.Background()) })
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}, TracerProvider: mirrorTP})
	r := readKafka(t, kc.ListenAddrs(), ktopic)

	// The application's tracer, independent of the mirror's.
	appTP := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = appTP.Shutdown(context.Background()) })
	app := appTP.Tracer("app")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc := newSender(t, st.NamesrvAddr) // each message stored once
	p := newProducer(t, sc, client.ProducerOptions{})
	sent := sendPlain(t, ctx, p, topic, app)
	tx := sendTransactions(t, ctx, sc, topic, app)
	sent = append(append(sent, tx.committed...), sendDelayed(t, ctx, p, topic)...)

	byID := map[string]*sentMsg{}
	ids := make([]string, 0, len(sent))
	for _, s := range sent {
		byID[s.id] = s
		ids = append(ids, s.id)
	}
	r.waitIDs(t, 30*time.Second, ids)
	// The half message was asked about and stays half; the rollbacks are
	// recorded (EndTransaction returned); the group consumed every visible
	// message; the reader read everything the mirror produced.
	testutil.WaitFor(t, 20*time.Second, "a check-back of the half message", func() bool {
		return tx.checks(tx.half) > 0
	})
	testutil.WaitFor(t, 20*time.Second, "the mirror's lag to reach 0", func() bool {
		return groupLag(t, st.Broker.Addr(), group, topic) == 0
	})
	testutil.WaitFor(t, 10*time.Second, "the reader to read every record mirrored", func() bool {
		return int64(r.count()) >= m.Stats().Mirrored
	})
	live := st.Broker.Transactions().List(0, 0)
	if len(live) != 1 || live[0].TransactionID != tx.half {
		t.Fatalf("open transactions %+v, want only the half message %s", live, tx.half)
	}
	if got := st.Broker.Transactions().Stats().Rollbacks; got < int64(len(tx.rolledBack)) {
		t.Fatalf("broker recorded %d rollbacks, want %d", got, len(tx.rolledBack))
	}

	if s := m.Stats(); s.Mirrored != int64(len(sent)) || s.Failures != 0 || s.Rejected != 0 || s.Retrying != 0 ||
		s.LastMirroredAt.IsZero() {
		t.Errorf("Stats() = %+v, want %d mirrored, no failure", s, len(sent))
	}
	counts := r.byID()
	for _, id := range append(tx.rolledBack, tx.half) {
		if counts[id] != 0 {
			t.Errorf("message %s, rolled back or half, is in Kafka %d times", id, counts[id])
		}
	}
	for id, n := range counts {
		if byID[id] == nil {
			t.Errorf("Kafka holds %d records of message %q, which was not sent visible", n, id)
		} else if n != 1 {
			t.Errorf("message %s (%s) is in Kafka %d times, want once", id, byID[id].body, n)
		}
	}
	recs := r.records()
	checkRecords(t, topic, ktopic, recs, byID)
	checkOrder(t, recs)
	checkTraces(t, ktopic, recs, byID, spans)
}

// sendPlain sends plainPerKey messages for each of the keys order-1 to
// order-<plainKeys>, each key's in sequence to the queue its sharding key
// picks; keys 1 to 5 in a trace of app each.
func sendPlain(t *testing.T, ctx context.Context, p *client.Producer, topic string, app trace.Tracer) []*sentMsg {
	t.Helper()
	traceOf := map[string]context.Context{}
	for k := 1; k <= 5; k++ {
		sctx, span := app.Start(ctx, "order "+strconv.Itoa(k))
		t.Cleanup(func() { span.End() })
		traceOf["order-"+strconv.Itoa(k)] = sctx
	}
	var sent []*sentMsg
	for i := range plainKeys * plainPerKey {
		key, n := "order-"+strconv.Itoa(i%plainKeys+1), i/plainKeys
		s := &sentMsg{kind: "plain", body: fmt.Sprintf("%s#%d", key, n), tags: "plain", keys: []string{key, "m" + strconv.Itoa(i)},
			seq: n, props: map[string]string{"seq": strconv.Itoa(n), "kind": "plain"}}
		sctx := ctx
		if tc, ok := traceOf[key]; ok {
			sctx, s.traceID = tc, trace.SpanContextFromContext(tc).TraceID()
		}
		s.id = send(t, sctx, p, &client.Message{Topic: topic, Body: []byte(s.body), Tags: s.tags, Keys: s.keys,
			ShardingKey: key, Properties: s.props})
		sent = append(sent, s)
	}
	return sent
}

// sentTransactions are the transactional messages a test sent.
type sentTransactions struct {
	committed  []*sentMsg
	rolledBack []string // message ids
	half       string   // the id of the one never resolved
	mu         sync.Mutex
	checked    map[string]int // check-backs by message id
}

func (s *sentTransactions) checks(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked[id]
}

// sendTransactions sends transactional messages, commits some (the first
// in a trace of app), rolls the others back, and leaves one half: the
// check listener answers UNKNOWN to every check-back.
func sendTransactions(t *testing.T, ctx context.Context, c *client.Client, topic string, app trace.Tracer) *sentTransactions {
	t.Helper()
	tx := &sentTransactions{checked: map[string]int{}}
	tp := newProducer(t, c, client.ProducerOptions{CheckListener: client.CheckListenerFunc(
		func(_ context.Context, req *client.CheckRequest) client.TransactionState {
			tx.mu.Lock()
			defer tx.mu.Unlock()
			tx.checked[req.Message.MsgID]++
			return client.Unknown
		})})
	for i, outcome := range []client.TransactionState{client.Commit, client.Rollback, client.Commit, client.Rollback,
		client.Commit, client.Rollback, client.Commit} {
		s := &sentMsg{kind: "txn", body: fmt.Sprintf("txn-%d-%s", i, outcome), tags: "txn", keys: []string{"txn-" + strconv.Itoa(i)},
			props: map[string]string{"kind": "txn"}}
		sctx := ctx
		if i == 0 {
			var span trace.Span
			sctx, span = app.Start(ctx, "transaction")
			t.Cleanup(func() { span.End() })
			s.traceID = span.SpanContext().TraceID()
		}
		rcpt, err := tp.SendHalf(sctx, &client.Message{Topic: topic, Body: []byte(s.body), Tags: s.tags, Keys: s.keys, Properties: s.props})
		if err != nil {
			t.Fatalf("SendHalf %s: %v", s.body, err)
		}
		s.id = rcpt.MsgID
		if err := tp.EndTransaction(ctx, rcpt, outcome); err != nil { // returns once the broker recorded it
			t.Fatalf("EndTransaction %s: %v", s.body, err)
		}
		if outcome == client.Commit {
			tx.committed = append(tx.committed, s)
		} else {
			tx.rolledBack = append(tx.rolledBack, s.id)
		}
	}
	half, err := tp.SendHalf(ctx, &client.Message{Topic: topic, Body: []byte("never resolved"), Tags: "txn", Keys: []string{"txn-half"}})
	if err != nil {
		t.Fatal(err)
	}
	tx.half = half.MsgID
	return tx
}

// sendDelayed sends messages without keys at delay level 1 (300 ms).
func sendDelayed(t *testing.T, ctx context.Context, p *client.Producer, topic string) []*sentMsg {
	t.Helper()
	var sent []*sentMsg
	for i := range 5 {
		s := &sentMsg{kind: "delayed", body: "delayed-" + strconv.Itoa(i), tags: "delayed", delayed: true,
			props: map[string]string{"kind": "delayed"}, sentAt: time.Now()}
		s.id = send(t, ctx, p, &client.Message{Topic: topic, Body: []byte(s.body), Tags: s.tags, DelayLevel: 1, Properties: s.props})
		sent = append(sent, s)
	}
	return sent
}

// checkRecords checks each record against the message it copies.
func checkRecords(t *testing.T, topic, ktopic string, recs []*kgo.Record, byID map[string]*sentMsg) {
	t.Helper()
	partitioner := kgo.StickyKeyPartitioner(nil).ForTopic(ktopic) // Kafka's Java client's: murmur2
	for _, rec := range recs {
		s := byID[header(rec, mirror.HeaderMsgID)]
		if s == nil {
			continue // reported already
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("record %s (partition %d offset %d): %s", s.body, rec.Partition, rec.Offset, fmt.Sprintf(format, args...))
		}
		if string(rec.Value) != s.body {
			fail("value %q", rec.Value)
		}
		switch {
		case len(s.keys) == 0 && rec.Key != nil:
			fail("key %q, want none", rec.Key)
		case len(s.keys) > 0 && string(rec.Key) != s.keys[0]:
			fail("key %q, want the first key %q", rec.Key, s.keys[0])
		case len(s.keys) > 0:
			if want := partitioner.Partition(&kgo.Record{Key: rec.Key}, kafkaPartitions); int(rec.Partition) != want {
				fail("in partition %d, want %d (murmur2 of the key)", rec.Partition, want)
			}
		}
		want := map[string]string{
			mirror.HeaderTopic: topic, mirror.HeaderTags: s.tags, message.PropertyTags: s.tags,
			message.PropertyUniqKey: s.id, mirror.HeaderMsgID: s.id,
		}
		if len(s.keys) > 0 {
			want[message.PropertyKeys] = strings.Join(s.keys, " ")
		}
		for k, v := range s.props {
			want[k] = v
		}
		for k, v := range want {
			if got, ok := lookup(rec, k); !ok || got != v {
				fail("header %s = %q (present %v), want %q", k, got, ok, v)
			}
		}
		if q, err := strconv.Atoi(header(rec, mirror.HeaderQueueID)); err != nil || q < 0 || q >= queues {
			fail("header %s = %q, want a queue id below %d", mirror.HeaderQueueID, header(rec, mirror.HeaderQueueID), queues)
		}
		for _, h := range []string{mirror.HeaderQueueOffset, mirror.HeaderBornTimestamp} {
			if _, err := strconv.ParseInt(header(rec, h), 10, 64); err != nil {
				fail("header %s = %q, want a number", h, header(rec, h))
			}
		}
		if header(rec, mirror.HeaderOffsetMsgID) == "" {
			fail("no header %s", mirror.HeaderOffsetMsgID)
		}
		if s.delayed && rec.Timestamp.UnixMilli() < s.sentAt.Add(delayLevel1).UnixMilli() {
			fail("timestamp %v, want at least the send time %v + %v", rec.Timestamp, s.sentAt, delayLevel1)
		}
		if !s.delayed && rec.Timestamp.Before(time.Now().Add(-time.Minute)) {
			fail("timestamp %v, want the store time, seconds ago", rec.Timestamp)
		}
	}
}

// checkOrder checks that each plain key's records are in one partition,
// their sequence numbers strictly increasing with the offsets.
func checkOrder(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	type pos struct {
		partition int32
		offset    int64
		seq       int
	}
	last := map[string]pos{}
	seen := map[string]int{}
	for _, rec := range recs { // each partition's records in offset order
		if header(rec, "kind") != "plain" {
			continue
		}
		key := string(rec.Key)
		n, err := strconv.Atoi(header(rec, "seq"))
		if err != nil {
			t.Fatalf("record %s: seq header %q", rec.Value, header(rec, "seq"))
		}
		if p, ok := last[key]; ok {
			switch {
			case p.partition != rec.Partition:
				t.Errorf("key %s is in partitions %d and %d", key, p.partition, rec.Partition)
			case rec.Offset > p.offset && n <= p.seq:
				t.Errorf("key %s: seq %d at offset %d after seq %d at offset %d", key, n, rec.Offset, p.seq, p.offset)
			}
		}
		last[key] = pos{rec.Partition, rec.Offset, n}
		seen[key]++
	}
	if len(seen) != plainKeys {
		t.Errorf("%d keys in Kafka, want %d", len(seen), plainKeys)
	}
	for key, n := range seen {
		if n != plainPerKey {
			t.Errorf("key %s: %d records, want %d", key, n, plainPerKey)
		}
	}
}

// checkTraces checks every record's traceparent: the mirror's publish
// span (recorded by its tracer provider), a child of the sender's trace
// when the message was sent in one.
func checkTraces(t *testing.T, ktopic string, recs []*kgo.Record, byID map[string]*sentMsg, spans *tracetest.SpanRecorder) {
	t.Helper()
	published := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range spans.Ended() {
		published[sp.SpanContext().SpanID()] = sp
	}
	traced := 0
	for _, rec := range recs {
		s := byID[header(rec, mirror.HeaderMsgID)]
		if s == nil {
			continue
		}
		tp := header(rec, mirror.HeaderTraceparent)
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[0] != "00" {
			t.Errorf("record %s: traceparent %q", s.body, tp)
			continue
		}
		tid, err1 := trace.TraceIDFromHex(parts[1])
		sid, err2 := trace.SpanIDFromHex(parts[2])
		if err1 != nil || err2 != nil {
			t.Errorf("record %s: traceparent %q: %v %v", s.body, tp, err1, err2)
			continue
		}
		sp := published[sid]
		switch {
		case sp == nil:
			t.Errorf("record %s: traceparent %s names no publish span of the mirror", s.body, tp)
		case sp.Name() != "publish "+ktopic || sp.SpanKind() != trace.SpanKindProducer:
			t.Errorf("record %s: span %q kind %v, want publish %s, a producer span", s.body, sp.Name(), sp.SpanKind(), ktopic)
		case sp.SpanContext().TraceID() != tid:
			t.Errorf("record %s: traceparent trace %s, span's %s", s.body, tid, sp.SpanContext().TraceID())
		}
		if sp != nil {
			for _, kv := range sp.Attributes() {
				if kv.Key == "messaging.destination.partition.id" && kv.Value.Type() != attribute.STRING {
					t.Errorf("record %s: publish span's messaging.destination.partition.id is a %v, want a string (semantic conventions)",
						s.body, kv.Value.Type())
				}
			}
		}
		if s.traceID.IsValid() {
			traced++
			if tid != s.traceID {
				t.Errorf("record %s: trace %s, want the sender's %s", s.body, tid, s.traceID)
			}
			if sp != nil && sp.Parent().TraceID() != s.traceID {
				t.Errorf("record %s: publish span's parent %v, want one of the sender's trace", s.body, sp.Parent())
			}
		}
	}
	if want := 5*plainPerKey + 1; traced != want {
		t.Errorf("%d records of traced sends checked, want %d", traced, want)
	}
}

// TestMirrorSurvivesKafkaOutage closes Kafka while messages keep coming,
// checks that the mirror waits (Stats().Retrying, Failures growing) and
// that the group's lag grows on the broker, then starts Kafka again on the
// same port (held by the test throughout, see heldPort) and data
// directory: every acknowledged message arrives, at least once.
func TestMirrorSurvivesKafkaOutage(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("stream"), uniq("stream"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	port := holdPort(t)
	kafkaOpts := []kfake.Opt{kfake.NumBrokers(1), kfake.ListenFn(port.listen), kfake.DataDir(t.TempDir()),
		kfake.SeedTopics(4, ktopic)}
	kc := startKafka(t, kafkaOpts...)
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	snd := startSender(t, newProducer(t, c, client.ProducerOptions{}), topic)

	testutil.WaitFor(t, 20*time.Second, "records mirrored before the outage", func() bool { return m.Stats().Mirrored >= 50 })
	kc.Close()
	down := m.Stats()
	testutil.WaitFor(t, 20*time.Second, "the mirror to retry", func() bool {
		s := m.Stats()
		return s.Retrying > 0 && s.Failures >= down.Failures+3 && s.LastError != ""
	})
	lag := groupLag(t, st.Broker.Addr(), group, topic)
	testutil.WaitFor(t, 20*time.Second, "the group's lag to grow", func() bool {
		return groupLag(t, st.Broker.Addr(), group, topic) >= lag+100
	})
	mirroredDown := m.Stats().Mirrored
	t.Logf("Kafka down: %+v, lag %d", m.Stats(), groupLag(t, st.Broker.Addr(), group, topic))

	kc2 := startKafka(t, kafkaOpts...) // on the port held since the first
	testutil.WaitFor(t, 30*time.Second, "the mirror to resume", func() bool { return m.Stats().Mirrored > mirroredDown+50 })
	snd.halt()
	acked := snd.ackedIDs()
	r := readKafka(t, kc2.ListenAddrs(), ktopic)
	r.waitIDs(t, 30*time.Second, acked)
	testutil.WaitFor(t, 20*time.Second, "the mirror's lag to reach 0", func() bool {
		return groupLag(t, st.Broker.Addr(), group, topic) == 0
	})
	if s := m.Stats(); s.Retrying != 0 {
		t.Errorf("after the outage Stats() = %+v, want no queue retrying", s)
	}
	counts := r.byID()
	snd.mu.Lock()
	failed, errs := snd.failed, snd.errs
	snd.mu.Unlock()
	// The broker stays up: a send fails only by running out of its 3 s
	// (or the broker's flush timeout) on a loaded machine, and may have
	// been stored all the same (its outcome unknown). Kafka has every
	// acknowledged message and at most those of the failed sends besides.
	for _, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, client.ErrNotDurable) {
			t.Errorf("a send failed other than by its deadline: %v", err)
		}
	}
	if len(counts) < len(acked) || len(counts) > len(acked)+failed {
		t.Errorf("%d distinct messages in Kafka, %d sends acknowledged and %d timed out: want every acknowledged one and at most the timed-out ones besides",
			len(counts), len(acked), failed)
	}
	t.Logf("%d messages acknowledged, %d records in Kafka, %d duplicates; %+v", len(acked), r.count(), duplicates(counts), m.Stats())
}

// TestMirrorSASL runs mirrors against a Kafka that requires SASL: with
// each mechanism's right credentials they deliver; with a wrong password
// a mirror delivers nothing, counts its failed attempts, and still closes
// at once.
func TestMirrorSASL(t *testing.T) {
	st, c := startStack(t)
	users := map[string][2]string{
		mirror.SASLPlain:       {"plain-user", "plain-pw"},
		mirror.SASLScramSHA256: {"scram256-user", "scram256-pw"},
		mirror.SASLScramSHA512: {"scram512-user", "scram512-pw"},
	}
	mechs := []string{mirror.SASLPlain, mirror.SASLScramSHA256, mirror.SASLScramSHA512}
	topics := map[string]string{} // case -> topic, the same name in both systems
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mirror.SASLScramSHA256, "reader", "reader-pw")}
	for _, mech := range mechs {
		opts = append(opts, kfake.Superuser(mech, users[mech][0], users[mech][1]))
		topics[mech] = uniq("sasl")
	}
	topics["wrong"] = uniq("sasl")
	for _, topic := range topics {
		opts = append(opts, kfake.SeedTopics(2, topic))
		createTopic(t, st.Broker.Addr(), topic)
	}
	kc := startKafka(t, opts...)
	reader := kgo.SASL(scram.Auth{User: "reader", Pass: "reader-pw"}.AsSha256Mechanism())
	p := newProducer(t, c, client.ProducerOptions{})

	// mirrorOf starts a mirror of topic with sasl and sends it n messages.
	mirrorOf := func(t *testing.T, topic string, sasl mirror.SASLOptions, n int) (m *mirror.Mirror, ids []string) {
		m = startMirror(t, mirror.Options{Client: c, Group: uniq("mirror"),
			Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
			Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), SASL: sasl}})
		for i := range n {
			ids = append(ids, send(t, context.Background(), p, &client.Message{Topic: topic, Body: []byte("m" + strconv.Itoa(i))}))
		}
		return m, ids
	}
	for _, mech := range mechs {
		t.Run(mech, func(t *testing.T) {
			u := users[mech]
			m, ids := mirrorOf(t, topics[mech], mirror.SASLOptions{Mechanism: mech, User: u[0], Password: u[1]}, 10)
			r := readKafka(t, kc.ListenAddrs(), topics[mech], reader)
			r.waitIDs(t, 20*time.Second, ids)
			// Kafka shows a record a moment before the mirror counts its
			// acknowledgement.
			testutil.WaitFor(t, 10*time.Second, "the mirror to count every record", func() bool {
				return m.Stats().Mirrored == int64(len(ids))
			})
			if s := m.Stats(); s.Failures != 0 {
				t.Errorf("Stats() = %+v, want %d mirrored without failure", s, len(ids))
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		ktopic := topics["wrong"]
		m, _ := mirrorOf(t, ktopic, mirror.SASLOptions{Mechanism: mirror.SASLScramSHA256, User: "scram256-user", Password: "wrong"}, 5)
		testutil.WaitFor(t, 20*time.Second, "failed attempts", func() bool {
			s := m.Stats()
			return s.Failures >= 3 && s.Retrying > 0
		})
		t.Logf("wrong password: %+v", m.Stats())
		if s := m.Stats(); s.Mirrored != 0 || s.LastError == "" {
			t.Errorf("Stats() = %+v, want nothing mirrored and the last error", s)
		}
		if n := kafkaEnd(t, kc.ListenAddrs(), ktopic, 2, reader); n != 0 {
			t.Errorf("Kafka holds %d records of %s, want none", n, ktopic)
		}
		start := time.Now()
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Close took %v while retrying, want it prompt", d)
		}
	})
}

// TestMirrorSkipsRecordsKafkaCannotTake sends messages too large for
// Kafka between small ones of the same key (one queue, one partition):
// one larger than the mirror's Kafka.MaxMessageBytes, one that only
// Kafka's message.max.bytes refuses. Both are counted as rejected and
// skipped; every other message arrives, and the group's lag reaches 0.
func TestMirrorSkipsRecordsKafkaCannotTake(t *testing.T) {
	st, c := startStack(t)
	topic := uniq("big")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(2, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8000"}))
	group := uniq("mirror")
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}},
		Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs(), MaxMessageBytes: 20000}})
	p := newProducer(t, c, client.ProducerOptions{})
	msg := func(body string) *client.Message {
		return &client.Message{Topic: topic, Body: []byte(body), Keys: []string{"k"}, ShardingKey: "k"}
	}
	var small, big []string
	for _, body := range []string{"s0", strings.Repeat("m", 30000), "s1", "s2", strings.Repeat("k", 12000), "s3"} {
		id := send(t, context.Background(), p, msg(body))
		if len(body) > 2 {
			big = append(big, id)
		} else {
			small = append(small, id)
		}
	}
	r := readKafka(t, kc.ListenAddrs(), topic)
	// A small record sarama put in one request with the one Kafka refuses
	// is refused with it and sent again alone: a later record of the key
	// that Kafka took meanwhile is then sent again too (its key's order),
	// so the check is on the last copies, as the order tests'.
	checkLastCopiesInOrder(t, 20*time.Second, st.Broker.Addr(), m, r, group, topic, small)
	counts := r.byID()
	for _, id := range big {
		if counts[id] != 0 {
			t.Errorf("oversized message %s is in Kafka", id)
		}
	}
	if s := m.Stats(); s.Rejected != int64(len(big)) || s.Mirrored < int64(len(small)) || s.Retrying != 0 {
		t.Errorf("Stats() = %+v, want %d rejected, at least %d mirrored", s, len(big), len(small))
	}
}

// TestClientClosedBeforeMirrorWhileKafkaDown closes the mirror's Client
// first (a caller's shutdown in the wrong order) while the mirror retries
// a batch Kafka does not take: the Client's Close, which waits for the
// consumer's handler calls, returns, and the batch stays unacknowledged
// (mirrored after the next start).
func TestClientClosedBeforeMirrorWhileKafkaDown(t *testing.T) {
	st, c := startStack(t)
	topic, group := uniq("stream"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	nobody := holdPort(t).addr() // closes every connection: no Kafka answers there
	m := startMirror(t, mirror.Options{Client: c, Group: group, BatchSize: 8, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: "k-" + topic}},
		Kafka:  mirror.KafkaOptions{Brokers: []string{nobody}}})
	if _, err := newProducer(t, c, client.ProducerOptions{}).Send(context.Background(),
		&client.Message{Topic: topic, Body: []byte("waits for Kafka")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the mirror to retry the batch", func() bool { return m.Stats().Retrying > 0 })
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Client.Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Client.Close did not return while the mirror retried a batch")
	}
	if lag := groupLag(t, st.Broker.Addr(), group, topic); lag != 1 {
		t.Fatalf("group lag %d after the close, want 1: the batch must stay unacknowledged", lag)
	}
}

// hungKafka accepts connections and never answers (a Kafka that is
// stopped, SIGSTOP, or behind a stalled network): it reports each
// connection on conns and holds it until the test ends.
func hungKafka(t *testing.T) (addr string, conns <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 64)
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), ch
}

// "Close does not wait for a request a hung Kafka holds: the batch is
// given up, unacknowledged", also while the producer is being made (its
// metadata requests, which sarama retries for minutes).
func TestCloseDoesNotWaitForAHungKafkaToConnect(t *testing.T) {
	st, c := startStack(t)
	topic, group := uniq("hung"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	addr, conns := hungKafka(t)
	m := startMirror(t, mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst,
		Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: "k-" + topic}},
		Kafka:  mirror.KafkaOptions{Brokers: []string{addr}, DialTimeout: time.Second, ProduceTimeout: 5 * time.Second}})
	if _, err := newProducer(t, c, client.ProducerOptions{}).Send(context.Background(),
		&client.Message{Topic: topic, Body: []byte("waits for Kafka")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the mirror to connect to the hung Kafka", func() bool {
		select {
		case <-conns:
			return true
		default:
			return false
		}
	})
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	var took time.Duration
	select {
	case <-closed:
		took = time.Since(start)
	case <-time.After(240 * time.Second):
		t.Fatal("mirror.Close did not return within 240 s")
	}
	if took > 3*time.Second {
		t.Errorf("mirror.Close took %v while a hung Kafka held the producer's metadata request; want it at once (< 3 s)", took.Round(time.Millisecond))
	}
	if lag := groupLag(t, st.Broker.Addr(), group, topic); lag != 1 {
		t.Errorf("group lag %d after the close, want 1: the batch must stay unacknowledged", lag)
	}
}
