package main

import (
	"context"
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

// benchStoreFlags are the flags of `halfback bench store`.
type benchStoreFlags struct {
	flush      string
	writers    int
	size       int
	duration   time.Duration
	dir        string
	json       bool
	cpuProfile string
}

func newBenchStoreCmd() *cobra.Command {
	var f benchStoreFlags
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Measure store appends against the disk's own limit",
		Long: `Measure how fast the storage engine appends, and how close that is to what
the disk itself allows for the same workload. One run measures, in fresh
subdirectories of --dir that it removes at the end:

  raw limit  perfect group commit: one write of writers x size bytes and one
             fdatasync, repeated for duration/3 (at least 1 s), half before
             and half after the store (the disk drifts), once into a
             preallocated zero-filled file and once into a growing file;
             the better of the two is the bound for SYNC_FLUSH, counted as
             writers messages per fdatasync.
  raw seq    sequential bandwidth: 1 MiB writes for duration/3 (at least 1 s)
             and a final fdatasync. The bound for ASYNC_FLUSH.
  store      --writers goroutines appending --size-byte messages for
             --duration, each waiting for its acknowledgement; with the
             process's CPU time per acknowledged message (store and
             writers), which varies far less between runs than msgs/s.

Under SYNC_FLUSH, after the store, for duration/3 (at least 1 s) each:

  goroutines the raw limit fed by --writers goroutines: each hands one
             message to a committer that waits for all of them, writes and
             fdatasyncs them together, and answers them; nothing else. The
             gap to the raw limit is what waking goroutines costs here.
  pebble     a peer: --writers goroutines each writing --size-byte values
             to a Pebble database (CockroachDB's storage engine), each
             write waiting for Pebble's group-committed WAL fsync.

The ratio is msgs/s over the raw limit (SYNC_FLUSH) or MB/s over raw seq
(ASYNC_FLUSH); under SYNC_FLUSH the store's share of the two above is
printed too, and its group commit taken apart: appends per fdatasync, the
time per group commit, the fdatasync's part of it, and the raw limit's
time per write + fdatasync. On a shared machine compare ratios from one
run, not raw figures from different runs.

--dir defaults to the system temp directory ($TMPDIR, else /tmp). On the
machine this command was written on, /tmp is on the root ext4 disk; on many
distributions it is tmpfs, in memory, where fsync costs nothing and every
figure is meaningless: point --dir at the disk that will hold the data (for
example ./data/bench). The command warns when the directory is on tmpfs.
The commit-log segment size and log level come from the config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ft, err := store.ParseFlushType(f.flush)
			if err != nil {
				return fmt.Errorf("--flush %q: %w (want sync or async)", f.flush, bench.ErrInvalidOptions)
			}
			dir := f.dir
			if dir == "" {
				dir = os.TempDir()
			}
			if onTmpfs(dir) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is on tmpfs (memory): fsync is free there and the figures say nothing about a disk\n", dir)
			}
			opts := bench.StoreOptions{Dir: dir, Flush: ft, Writers: f.writers, Size: f.size, Duration: f.duration,
				SegmentSize: cfg.Store.SegmentSize, Logger: newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel())}
			return runBenchStore(cmd.Context(), cmd.OutOrStdout(), opts, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.flush, "flush", "sync", "flush type to measure: sync or async")
	fl.IntVar(&f.writers, "writers", 64, "concurrent appending goroutines")
	fl.IntVar(&f.size, "size", 1024, "message body size in bytes (1 to 4 MiB)")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long the store is measured")
	fl.StringVar(&f.dir, "dir", "", "directory to measure in, on the disk under test (default: the system temp dir; see above for why not tmpfs)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of the table")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	_ = fl.MarkHidden("cpuprofile") // a developer's tool, not part of the interface
	return cmd
}

// runBenchStore runs the benchmark, with a CPU profile if f asks for one,
// and prints the result to out.
func runBenchStore(ctx context.Context, out io.Writer, opts bench.StoreOptions, f benchStoreFlags) error {
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.RunStore(ctx, opts)
	if err != nil {
		return fmt.Errorf("bench store in %s: %w", opts.Dir, err)
	}
	if f.json {
		return json.NewEncoder(out).Encode(res)
	}
	return printStoreResult(out, res)
}

// printStoreResult writes res as a few aligned lines.
func printStoreResult(out io.Writer, r bench.StoreResult) error {
	bound := "of the raw limit (SYNC_FLUSH's bound)"
	if r.Flush == store.AsyncFlush.String() {
		bound = "of raw sequential bandwidth (ASYNC_FLUSH's bound)"
	}
	_, err := fmt.Fprintf(out, `%s, %d writers, %d-byte bodies: %d messages in %.1f s
store      %10.0f msgs/s %9.1f MB/s   p50 %.0f µs, p99 %.0f µs, CPU %.1f µs/msg
raw limit  %10.0f msgs/s                  perfect group commit: write + fdatasync of writers x size bytes
           (preallocated file %.0f msgs/s, growing file %.0f msgs/s)
raw seq    %17s %9.1f MB/s   1 MiB writes, one fdatasync at the end
ratio      %10.2f %s
`, r.Flush, r.Writers, r.Size, r.Messages, r.DurationSec,
		r.MsgsPerSec, r.MBPerSec, r.P50Us, r.P99Us, r.CPUUsPerMsg,
		r.RawLimitMsgsPerSec, r.RawLimitPreallocMsgsPerSec, r.RawLimitGrowingMsgsPerSec,
		"", r.RawSeqMBPerSec,
		r.Ratio, bound)
	if err != nil || r.GoroutineLimitMsgsPerSec == 0 {
		return err
	}
	_, err = fmt.Fprintf(out, `goroutines %10.0f msgs/s                  the raw limit fed by writers goroutines, nothing else (store: %.2f of it)
pebble     %10.0f msgs/s                  a peer: synced Pebble writes from writers goroutines (store: %.2f of it)
cycle      %10.0f µs per group commit of %.1f appends, fdatasync %.0f µs of it (raw limit: %.0f µs per write + fdatasync)
cpu        %10.0f µs of CPU per group commit (raw limit: %.0f µs per write + fdatasync)
`, r.GoroutineLimitMsgsPerSec, r.RatioToGoroutineLimit, r.PebbleMsgsPerSec, r.RatioToPebble,
		r.CycleUs, r.AppendsPerFsync, r.FsyncUs, r.RawCycleUs, r.CPUUsPerMsg*r.AppendsPerFsync, r.RawCPUUsPerFsync)
	return err
}
