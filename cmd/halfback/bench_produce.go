package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/bench"
	"github.com/halfbackmq/halfback/broker/store"
)

// benchProduceFlags are the flags `bench produce` and `bench e2e` share.
type benchProduceFlags struct {
	flush       string
	producers   int
	connections int
	queues      int
	size        int
	duration    time.Duration
	dir         string
	json        bool
	cpuProfile  string
}

// add defines the shared flags on cmd.
func (f *benchProduceFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.flush, "flush", "sync", "broker flush type: sync or async")
	fl.IntVar(&f.producers, "producers", 32, "sends in flight: goroutines each waiting for its response (connections x in-flight)")
	fl.IntVar(&f.connections, "connections", 0, "TCP connections the producers share (default min(producers, 4))")
	fl.IntVar(&f.queues, "queues", bench.DefaultQueues, "queues of the benchmark topic")
	fl.IntVar(&f.size, "size", 1024, "message body size in bytes")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long the producers send")
	fl.StringVar(&f.dir, "dir", "", "directory for the broker's store, on the disk under test (default: the system temp dir; not tmpfs)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of the table")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	_ = fl.MarkHidden("cpuprofile") // a developer's tool, not part of the interface
}

// startCPUProfile starts a CPU profile into --cpuprofile when it is set; the
// returned function stops it and closes the file (a no-op without the flag).
func (f *benchProduceFlags) startCPUProfile() (stop func(), err error) {
	if f.cpuProfile == "" {
		return func() {}, nil
	}
	pf, err := os.Create(f.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); pf.Close() }, nil
}

// options turns the flags into ProduceOptions, with the config's segment
// size and log level, and warns on stderr when the directory is on tmpfs.
func (f *benchProduceFlags) options(cmd *cobra.Command) (bench.ProduceOptions, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return bench.ProduceOptions{}, err
	}
	ft, err := store.ParseFlushType(f.flush)
	if err != nil {
		return bench.ProduceOptions{}, fmt.Errorf("--flush %q: %w (want sync or async)", f.flush, bench.ErrInvalidOptions)
	}
	dir := f.dir
	if dir == "" {
		dir = os.TempDir()
	}
	if onTmpfs(dir) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is on tmpfs (memory): fsync is free there and the figures say nothing about a disk\n", dir)
	}
	return bench.ProduceOptions{Dir: dir, Flush: ft, Producers: f.producers, Connections: f.connections,
		Size: f.size, Duration: f.duration, Queues: f.queues, SegmentSize: cfg.Store.SegmentSize,
		Logger: newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel())}, nil
}

func newBenchProduceCmd() *cobra.Command {
	var f benchProduceFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Measure sends to an in-process broker over the remoting protocol",
		Long: `Open a broker in a fresh subdirectory of --dir, listening on a loopback
port, and send to it over TCP as synchronous producers do: --producers
goroutines, spread over --connections connections, each sending one
SEND_MESSAGE_V2 with a --size-byte body (a unique UNIQ_KEY, WAIT=true) and
waiting for its response before the next, for --duration. The topic, with
--queues queues, is created over the protocol first; each producer sends to
the queues in turn.

Reports msgs/s, MB/s (bodies, 10^6 bytes) and send latency p50/p99 in
milliseconds. Compare with 'bench store' in the same flush mode to see what
the protocol costs on top of the store.

--dir works as for 'bench store' (the system temp directory by default;
not tmpfs). The commit-log segment size and log level come from the config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			stop, err := f.startCPUProfile()
			if err != nil {
				return err
			}
			res, err := bench.RunProduce(cmd.Context(), o)
			stop()
			if err != nil {
				return fmt.Errorf("bench produce in %s: %w", o.Dir, err)
			}
			if f.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			return printProduceResult(cmd.OutOrStdout(), res)
		},
	}
	f.add(cmd)
	return cmd
}

// printProduceResult writes res as two lines.
func printProduceResult(out io.Writer, r bench.ProduceResult) error {
	_, err := fmt.Fprintf(out, `%s, %d producers over %d connections, %d queues, %d-byte bodies: %d messages in %.1f s
produce  %10.0f msgs/s %9.1f MB/s   send p50 %.2f ms, p99 %.2f ms
`, r.Flush, r.Producers, r.Connections, r.Queues, r.Size, r.Messages, r.DurationSec,
		r.MsgsPerSec, r.MBPerSec, r.P50ms, r.P99ms)
	return err
}
