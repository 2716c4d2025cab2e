// Command kafka-dev runs a development Kafka for the mirror demo: one broker
// of github.com/twmb/franz-go/pkg/kfake, an in-process fake of Kafka that
// speaks the real wire protocol, so sarama (the mirror, the sample
// consumer) and any other Kafka client talk to it as to Kafka.
//
//	go run ./samples/kafka-dev [--addr 127.0.0.1:9092] [--data-dir DIR] [--topics order-events:4,...] [--ready-file F]
//
// It is a development stand-in, not a production Kafka: a single broker,
// no replication, no authentication, and kfake's own storage. It listens
// on a loopback address only (--addr; port 0 picks a free one), creates the
// --topics with their partition counts, logs one line "kafka dev server
// ready" with the address it listens on, writes that address to
// --ready-file if given, and runs until SIGINT or SIGTERM. Topics a client
// asks for that do not exist are created with one partition, as Kafka's
// auto.create.topics.enable does, unless --auto-create=false.
//
// Without --data-dir everything lives in memory and is lost on exit. With
// it, kfake persists topics, records and committed group offsets there and
// reloads them on the next start; a --topics entry the directory does not
// hold yet is then created, one it holds keeps its partition count.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/halfbackmq/halfback/internal/app"
)

func main() { app.Main("kafka-dev", run) }

// run is main with its arguments and outputs: it serves until ctx is done,
// then stops the server and returns nil. A bad flag is an error wrapping
// errUsage (flag.ErrHelp for --help).
func run(ctx context.Context, args []string, _, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := start(o, log)
	if err != nil {
		return err
	}
	log.Info("kafka dev server ready", "addr", s.addr, "topics", o.topicsFlag, "dataDir", o.dataDir)
	if o.readyFile != "" {
		if err := writeReadyFile(o.readyFile, s.addr); err != nil {
			s.close()
			return err
		}
		defer os.Remove(o.readyFile)
	}
	<-ctx.Done()
	s.close()
	log.Info("kafka dev server stopped", "addr", s.addr)
	return nil
}

// writeReadyFile writes addr and a newline to path, atomically: a reader
// polling for path never sees it half written.
func writeReadyFile(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}
