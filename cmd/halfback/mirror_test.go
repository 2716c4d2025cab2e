package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/mirror"
)

// startKafka runs an in-process Kafka (kfake, the real wire protocol) on
// 127.0.0.1 with topic seeded, and returns its address.
func startKafka(t *testing.T, topic string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic)) // it listens on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// readKafka reads topic from its start until n records came.
func readKafka(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records arrived in Kafka topic %s", len(recs), n, topic)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// A broker started with `halfback broker`, a mirror with `halfback
// mirror` on its name server: messages sent with `halfback send` arrive
// in Kafka with their key and headers, and `mirror status` shows no lag.
func TestMirrorCommandCopiesToKafka(t *testing.T) {
	clearEnv(t)
	kafka := startKafka(t, "orders-v1")
	cfgPath := smallStoreConfig(t)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "mirror:\n  kafka:\n    brokers: %s\n    topics: order-events=orders-v1\n    startFrom: first\n    batchSize: 4\n", kafka)
	f.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	bout, bdone := start(ctx, "broker", "--config", cfgPath, "--data-dir", filepath.Join(t.TempDir(), "data"))
	waitFor(t, 10*time.Second, "the broker", func() bool { return strings.Contains(bout.String(), "halfback broker ready") })
	brokerAddr := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(bout.String())[1]
	ns := regexp.MustCompile(`namesrv=(\S+)`).FindStringSubmatch(bout.String())[1]

	const n = 10
	for i := range n {
		if out, err := run(t, "send", "--config", cfgPath, "--broker", brokerAddr, "--topic", "order-events",
			"--tag", "OrderPaid", "--keys", fmt.Sprintf("order-%d,extra", i), fmt.Sprintf("body-%d", i)); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
	}
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	mout, mdone := start(mctx, "mirror", "--config", cfgPath, "--namesrv", ns)
	waitFor(t, 15*time.Second, "the mirror", func() bool { return strings.Contains(mout.String(), "halfback mirror ready") })

	recs := readKafka(t, kafka, "orders-v1", n)
	seen := map[string]bool{}
	for _, r := range recs {
		var id, tags string
		for _, h := range r.Headers {
			switch h.Key {
			case mirror.HeaderMsgID:
				id = string(h.Value)
			case "TAGS":
				tags = string(h.Value)
			}
		}
		i := strings.TrimPrefix(string(r.Value), "body-")
		if string(r.Key) != "order-"+i || tags != "OrderPaid" || id == "" || seen[id] {
			t.Errorf("record key %q value %q tags %q msgId %q (seen before: %v)", r.Key, r.Value, tags, id, seen[id])
		}
		seen[id] = true
	}

	var st mirrorStatus
	waitFor(t, 15*time.Second, "mirror status with no lag", func() bool {
		runAdmin(t, brokerAddr, &st, "mirror", "status", "--config", cfgPath)
		return st.Lag == 0 && len(st.Topics) == 1 && st.Topics[0].KafkaTopic == "orders-v1" && len(st.Topics[0].Queues) > 0
	})
	var behind int64
	for _, q := range st.Topics[0].Queues {
		behind += q.BrokerOffset
	}
	if behind != n || st.Group != mirror.DefaultGroup {
		t.Errorf("status %+v: broker offsets sum to %d, want %d", st, behind, n)
	}

	// The mirror first: it commits its offsets on the way out.
	for _, p := range []struct {
		name   string
		cancel context.CancelFunc
		done   <-chan error
	}{{"mirror", mcancel, mdone}, {"broker", cancel, bdone}} {
		name, done := p.name, p.done
		p.cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v", name, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop", name)
		}
	}
	if !strings.Contains(mout.String(), "halfback mirror stopped") {
		t.Errorf("no stop line:\n%s", mout)
	}
}

func TestMirrorCommandRejectsBadConfig(t *testing.T) {
	clearEnv(t)
	t.Setenv("HALFBACK_MIRROR_KAFKA_TOPICS", "order-events")
	_, err := run(t, "mirror", "--config", "")
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "mirror.kafka.brokers") {
		t.Errorf("mirror without brokers: %v; want mirror.kafka.brokers invalid", err)
	}
	// The broker refuses to start with the mirror enabled and a bad mapping.
	t.Setenv("HALFBACK_MIRROR_KAFKA_ENABLED", "true")
	t.Setenv("HALFBACK_MIRROR_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("HALFBACK_MIRROR_KAFKA_TOPICS", "order-events=bad/name")
	_, err = run(t, "broker", "--config", "", "--data-dir", t.TempDir())
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "mirror.kafka.topics") {
		t.Errorf("broker with a bad mapping: %v; want mirror.kafka.topics invalid", err)
	}
	// With topic auto-creation off, a mapped topic that does not exist is
	// a start-up error too.
	t.Setenv("HALFBACK_MIRROR_KAFKA_TOPICS", "no-such-topic=orders")
	t.Setenv("HALFBACK_BROKER_AUTOCREATETOPICENABLE", "false")
	_, err = run(t, "broker", "--config", smallStoreConfig(t), "--data-dir", t.TempDir())
	if !errors.Is(err, mirror.ErrUnknownTopic) || !strings.Contains(err.Error(), "no-such-topic") ||
		!strings.Contains(err.Error(), "mirror.kafka.topics") {
		t.Errorf("broker mirroring an unknown topic: %v; want ErrUnknownTopic naming it and the key", err)
	}
}

// `mirror status` shows the group the mirror runs as: with
// mirror.kafka.group written empty, the default one (MirrorOptions'), not
// an error about an empty group.
func TestMirrorStatusShowsTheGroupTheMirrorRunsAs(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	body := "mirror:\n  kafka:\n    group: \"\"\n    brokers: 127.0.0.1:9092\n    topics: order-events\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.MirrorOptions()
	if err != nil {
		t.Fatal(err)
	}
	want := o.Group
	if want == "" {
		want = mirror.DefaultGroup
	}
	var sent admin.SendResult
	runAdmin(t, addr, &sent, "send", "--topic", "order-events", "one")
	var st mirrorStatus
	// The group never consumed the topic: every queue is behind (once the
	// message is in its consume queue), and each names its broker as for
	// a consumed topic.
	waitFor(t, 10*time.Second, "the message behind", func() bool {
		runAdmin(t, addr, &st, "mirror", "status", "--config", cfgPath)
		return st.Lag == 1
	})
	if st.Group != want {
		t.Errorf("mirror status shows group %q, want %q, the mirror's", st.Group, want)
	}
	if len(st.Topics) != 1 || len(st.Topics[0].Queues) == 0 {
		t.Fatalf("mirror status %+v, want order-events' queues", st)
	}
	for _, q := range st.Topics[0].Queues {
		if q.Broker == "" || q.Topic != "order-events" || q.ConsumerOffset != 0 || q.Lag != q.BrokerOffset {
			t.Errorf("queue %+v of a topic never mirrored", q)
		}
	}
	// A mapped topic the broker does not have is named as such, not left
	// out of the table.
	t.Setenv("HALFBACK_MIRROR_KAFKA_TOPICS", "nosuch")
	table, err := run(t, "mirror", "status", "--config", cfgPath, "--broker", addr)
	if err != nil || !strings.Contains(table, "nosuch") || !strings.Contains(table, "no such topic on this broker") {
		t.Fatalf("mirror status of a topic the broker does not have: %v\n%s", err, table)
	}
}
