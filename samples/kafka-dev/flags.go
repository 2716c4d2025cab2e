package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/halfbackmq/halfback/internal/app"
)

// DefaultAddr is where the server listens without --addr: Kafka's usual
// port, on loopback.
const DefaultAddr = "127.0.0.1:9092"

// DefaultTopics is --topics' default: the topic the demo mirrors into.
const DefaultTopics = "order-events:4"

// errUsage is wrapped by every error about the command line.
var errUsage = app.ErrUsage

// options are the parsed flags.
type options struct {
	// host and port are --addr's: host a loopback IP, port 0 for any.
	host string
	port int
	// dataDir is where kfake persists; "" keeps everything in memory.
	dataDir string
	// topics are the topics to create, with their partition counts.
	topics []topicSpec
	// topicsFlag is --topics as given, for the log.
	topicsFlag string
	// autoCreate lets clients create topics by asking for them.
	autoCreate bool
	// readyFile gets the listen address once the server serves.
	readyFile string
}

// topicSpec is one --topics entry.
type topicSpec struct {
	name       string
	partitions int32
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("kafka-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	addr := fs.String("addr", DefaultAddr, "host:port to listen on; the host must be loopback (127.0.0.1, ::1, localhost); port 0 picks a free port")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory to persist topics, records and group offsets in, reloaded on the next start; empty: in memory")
	fs.StringVar(&o.topicsFlag, "topics", DefaultTopics, "topics to create, name[:partitions],... (partitions default 1); empty: none")
	fs.BoolVar(&o.autoCreate, "auto-create", true, "create a topic a client asks for that does not exist, with one partition")
	fs.StringVar(&o.readyFile, "ready-file", "", "file to write the listen address to once ready (removed on exit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	var err error
	if o.host, o.port, err = parseAddr(*addr); err != nil {
		return o, fmt.Errorf("%w: --addr %q: %w", errUsage, *addr, err)
	}
	if o.topics, err = parseTopics(o.topicsFlag); err != nil {
		return o, fmt.Errorf("%w: --topics %q: %w", errUsage, o.topicsFlag, err)
	}
	return o, nil
}

// parseAddr splits a listen address whose host is loopback: an IP of
// 127.0.0.0/8 or ::1, "localhost" (127.0.0.1) or empty (127.0.0.1).
func parseAddr(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	switch h {
	case "", "localhost":
		return "127.0.0.1", port, nil
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("host %q is not a loopback address: this development server has no authentication and listens on 127.0.0.1 or ::1 only", h)
	}
	return h, port, nil
}

// parseTopics reads "name[:partitions],...": Kafka topic names, one to
// 1000 partitions each, every name once.
func parseTopics(s string) ([]topicSpec, error) {
	var out []topicSpec
	seen := map[string]bool{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, count, hasCount := strings.Cut(entry, ":")
		t := topicSpec{name: strings.TrimSpace(name), partitions: 1}
		if err := validTopic(t.name); err != nil {
			return nil, err
		}
		if hasCount {
			n, err := strconv.ParseInt(strings.TrimSpace(count), 10, 32)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("topic %s: partitions %q is not a number from 1 to 1000", t.name, count)
			}
			t.partitions = int32(n)
		}
		if seen[t.name] {
			return nil, fmt.Errorf("topic %s given twice", t.name)
		}
		seen[t.name] = true
		out = append(out, t)
	}
	return out, nil
}

// validTopic applies Kafka's rule for topic names: 1 to 249 of
// [a-zA-Z0-9._-], and neither "." nor "..".
func validTopic(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return fmt.Errorf("topic name %q: want 1 to 249 characters, not \".\" or \"..\"", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q: %q is not one of [a-zA-Z0-9._-]", name, r)
		}
	}
	return nil
}
