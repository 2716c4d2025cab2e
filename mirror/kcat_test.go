package mirror_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/internal/testutil"
	"github.com/halfbackmq/halfback/message"
	"github.com/halfbackmq/halfback/mirror"
)

// kcatRecord is a line of `kcat -C -J`.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Timestamp int64    `json:"ts"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"` // name, value, name, value, ...
}

func (r kcatRecord) header(name string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == name {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

// kcatPath returns Debian's kcat, failing the test when it is missing.
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not on PATH (%v): install Debian's kcat (apt-get install kcat); this test reads the mirrored topic with it", err)
	}
	return p
}

// TestKcatReadsMirroredRecords reads the mirrored topic with kcat
// (librdkafka), a consumer that shares no code with the mirror: the keys,
// values, timestamps and headers are what the messages carried.
func TestKcatReadsMirroredRecords(t *testing.T) {
	kcat := kcatPath(t)
	st, c := startStack(t)
	topic, ktopic := uniq("kcat"), uniq("kcat")
	createTopic(t, st.Broker.Addr(), topic)
	kc := startKafka(t, kfake.SeedTopics(3, ktopic))
	startMirror(t, mirror.Options{Client: c, Topics: []mirror.TopicMapping{{RocketMQ: topic, Kafka: ktopic}},
		Kafka: mirror.KafkaOptions{Brokers: kc.ListenAddrs()}})
	p := newProducer(t, c, client.ProducerOptions{})
	want := map[string]*client.Message{} // by message id
	for i := range 12 {
		key := "order-" + strconv.Itoa(i%4)
		m := &client.Message{Topic: topic, Body: []byte("body-" + strconv.Itoa(i)), Tags: "TagA", Keys: []string{key},
			ShardingKey: key, Properties: map[string]string{"region": "eu-" + strconv.Itoa(i)}}
		want[send(t, context.Background(), p, m)] = m
	}
	testutil.WaitFor(t, 20*time.Second, "every record in Kafka", func() bool {
		return kafkaEnd(t, kc.ListenAddrs(), ktopic, 3) == int64(len(want))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", kc.ListenAddrs()[0], "-C", "-t", ktopic, "-o", "beginning", "-e", "-J", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		id, _ := r.header(mirror.HeaderMsgID)
		m := want[id]
		switch {
		case m == nil:
			t.Errorf("kcat read a record with msgId %q, which was not sent: %s", id, sc.Text())
			continue
		case seen[id]:
			t.Errorf("kcat read message %s twice", id)
		}
		seen[id] = true
		if r.Topic != ktopic || r.Key == nil || *r.Key != m.Keys[0] || r.Payload == nil || *r.Payload != string(m.Body) {
			t.Errorf("kcat record %s, want topic %s key %q payload %q", sc.Text(), ktopic, m.Keys[0], m.Body)
		}
		if r.Timestamp < time.Now().Add(-time.Minute).UnixMilli() || r.Timestamp > time.Now().UnixMilli() {
			t.Errorf("kcat record %s: timestamp %d, want the store time", sc.Text(), r.Timestamp)
		}
		for k, v := range map[string]string{mirror.HeaderTopic: topic, message.PropertyTags: "TagA", mirror.HeaderTags: "TagA",
			message.PropertyKeys: m.Keys[0], "region": m.Properties["region"], message.PropertyUniqKey: id} {
			if got, ok := r.header(k); !ok || got != v {
				t.Errorf("kcat record %s: header %s = %q, want %q", sc.Text(), k, got, v)
			}
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("kcat read %d of the %d messages:\n%s", len(seen), len(want), out)
	}
}
