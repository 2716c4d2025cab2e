package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/halfbackmq/halfback/internal/testutil"
)

// devServer is run serving in the background.
type devServer struct {
	addr, readyFile string
	log             *testutil.Buffer
	stop            func() error
}

// serve runs the command with args plus --addr 127.0.0.1:0 and a ready
// file, and waits until it is ready. stop cancels it and returns run's
// error; the test stops it at the end if it did not.
func serve(t *testing.T, args ...string) *devServer {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	args = append([]string{"--addr", "127.0.0.1:0", "--ready-file", ready}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	log := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &bytes.Buffer{}, log) }()
	var once sync.Once
	var runErr error
	s := &devServer{readyFile: ready, log: log, stop: func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}}
	t.Cleanup(func() { _ = s.stop() })
	testutil.WaitFor(t, 10*time.Second, "the ready file", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v; log:\n%s", err, log)
		default:
		}
		b, err := os.ReadFile(ready)
		s.addr = strings.TrimSpace(string(b))
		return err == nil
	})
	return s
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	return cfg
}

// produce sends one record to topic's partition 0 and returns its offset.
func produce(t *testing.T, addr, topic, key, value string) int64 {
	t.Helper()
	cfg := saramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)})
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return off
}

// consumeOne reads the record at offset of topic's partition 0.
func consumeOne(t *testing.T, addr, topic string, offset int64) *sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, offset)
	if err != nil {
		t.Fatalf("consume %s: %v", topic, err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no record at %s/0@%d", topic, offset)
		return nil
	}
}

// partitions returns the partition count of every topic of the cluster.
func partitions(t *testing.T, addr string) map[string]int {
	t.Helper()
	c, err := sarama.NewClient([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topics, err := c.Topics()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, tp := range topics {
		ps, err := c.Partitions(tp)
		if err != nil {
			t.Fatal(err)
		}
		out[tp] = len(ps)
	}
	return out
}

func TestServesKafkaOnLoopback(t *testing.T) {
	s := serve(t, "--topics", "order-events:4, audit:2")
	if host, _, _ := net.SplitHostPort(s.addr); host != "127.0.0.1" {
		t.Errorf("listens on %s, want 127.0.0.1", s.addr)
	}
	if !strings.Contains(s.log.String(), `msg="kafka dev server ready" addr=`+s.addr) {
		t.Errorf("no ready line with the address in the log:\n%s", s.log)
	}
	if got := partitions(t, s.addr); got["order-events"] != 4 || got["audit"] != 2 {
		t.Errorf("topics %v, want order-events:4 and audit:2", got)
	}

	off := produce(t, s.addr, "order-events", "order-1", `{"orderId":"order-1"}`)
	m := consumeOne(t, s.addr, "order-events", off)
	if string(m.Key) != "order-1" || string(m.Value) != `{"orderId":"order-1"}` {
		t.Errorf("consumed %q=%q", m.Key, m.Value)
	}
	// Auto-created topics get one partition.
	produce(t, s.addr, "not-seeded", "k", "v")
	if got := partitions(t, s.addr)["not-seeded"]; got != 1 {
		t.Errorf("auto-created topic has %d partitions, want 1", got)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("run after SIGINT: %v", err)
	}
	if _, err := os.Stat(s.readyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left after exit: %v", err)
	}
	if !strings.Contains(s.log.String(), "kafka dev server stopped") {
		t.Errorf("no stop line in the log:\n%s", s.log)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := serve(t, "--data-dir", dir, "--topics", "order-events:3")
	off := produce(t, s.addr, "order-events", "order-7", "paid")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// The restart keeps the record, creates the new topic, and keeps
	// order-events' 3 partitions although --topics now says 5.
	s = serve(t, "--data-dir", dir, "--topics", "order-events:5,refunds:2")
	if m := consumeOne(t, s.addr, "order-events", off); string(m.Key) != "order-7" || string(m.Value) != "paid" {
		t.Errorf("after restart: %q=%q, want order-7=paid", m.Key, m.Value)
	}
	if got := partitions(t, s.addr); got["order-events"] != 3 || got["refunds"] != 2 {
		t.Errorf("topics after restart %v, want order-events:3 refunds:2", got)
	}
	if !strings.Contains(s.log.String(), "another partition count") {
		t.Errorf("no warning about order-events' partition count:\n%s", s.log)
	}
}

func TestBadFlags(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		args  []string
		usage bool
		msg   string
	}{
		{[]string{"--addr", "0.0.0.0:9092"}, true, "not a loopback address"},
		{[]string{"--addr", "10.1.2.3:9092"}, true, "not a loopback address"},
		{[]string{"--addr", "127.0.0.1"}, true, "missing port"},
		{[]string{"--addr", "127.0.0.1:99999"}, true, "0 to 65535"},
		{[]string{"--topics", "orders:0"}, true, "1 to 1000"},
		{[]string{"--topics", "orders:x"}, true, "1 to 1000"},
		{[]string{"--topics", "bad name:1"}, true, `' ' is not one of`},
		{[]string{"--topics", "a,b:2,a:3"}, true, "given twice"},
		{[]string{"--partitions", "3"}, true, "flag provided but not defined"},
		{[]string{"extra"}, true, "unexpected arguments"},
		{[]string{"--addr", busy.Addr().String()}, false, "address already in use"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), tt.args, &bytes.Buffer{}, &stderr)
		if err == nil || errors.Is(err, errUsage) != tt.usage || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: %v (usage error %v), want an error with %q (usage error %v)",
				tt.args, err, errors.Is(err, errUsage), tt.msg, tt.usage)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9092": "127.0.0.1 9092", ":9092": "127.0.0.1 9092", "localhost:0": "127.0.0.1 0",
		"[::1]:19092": "::1 19092", "127.0.0.2:1": "127.0.0.2 1",
	} {
		h, p, err := parseAddr(in)
		if got := h + " " + strconv.Itoa(p); err != nil || got != want {
			t.Errorf("parseAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
