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
