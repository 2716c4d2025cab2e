package mirror_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// TestMirrorRebalanceAndRestartKeepEveryMessageInKeyOrder runs two
// mirrors of one group over a stream of keyed messages, and moves the
// queues between them: a second mirror joins, the first leaves (clean
// Close), a new one joins. Every acknowledged message reaches Kafka, the
// last copy of each key's messages is in send order, and the group ends
// with no lag.
func TestMirrorRebalanceAndRestartKeepEveryMessageInKeyOrder(t *testing.T) {
	st, c := startStack(t)
	topic, ktopic, group := uniq("rebal"), uniq("rebal.kafka"), uniq("mirror")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(4, ktopic))
	opts := func(c *client.Client) mirror.Options {
		return mirror.Options{Client: c, Group: group, StartFrom: mirror.StartFirst, BatchSize: 4,
			Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
			Kafka:  mirror.KafkaOptions{Brokers: kc.ListenAddrs()}}
	}
	r := readKafka(t, kc.ListenAddrs(), ktopic)
	snd := startSender(t, newProducer(t, c, client.ProducerOptions{}), topic)
	a := startMirror(t, opts(c))
	step := func(what string) {
		target := r.count() + 60
		testutil.WaitFor(t, 60*time.Second, what, func() bool { return r.count() >= target })
	}
	step("records before the second mirror")
	cb := txnbridgetest.NewClient(t, st.NamesrvAddr)
	b := startMirror(t, opts(cb))
	step("records after the second mirror joined")
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	step("records after the first mirror left")
	cc := txnbridgetest.NewClient(t, st.NamesrvAddr)
	startMirror(t, opts(cc))
	step("records after a third mirror joined")
	snd.halt()
	acked := snd.ackedIDs()
	r.waitIDs(t, 60*time.Second, acked)
	testutil.WaitFor(t, 60*time.Second, "no lag", func() bool {
		return groupLag(t, st.Broker.Addr(), group, topic) == 0
	})
	// Per key: the sequence numbers of the last copies, in Kafka order.
	recs := r.records()
	lastPos := map[string]int{}
	for i, rec := range recs {
		lastPos[header(rec, mirror.HeaderMsgID)] = i
	}
	prev := map[string]int{}
	for i, rec := range recs {
		if lastPos[header(rec, mirror.HeaderMsgID)] != i {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(string(rec.Value), "msg-"))
		key := string(rec.Key)
		if p, ok := prev[key]; ok && n < p {
			t.Errorf("key %s: message %d's last copy after message %d's", key, n, p)
		}
		prev[key] = n
	}
	t.Logf("%d acked, %d records, %d duplicates; stats b %+v", len(acked), len(recs), duplicates(r.byID()), b.Stats())
}
