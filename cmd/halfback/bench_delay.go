package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/bench"
	"github.com/halfbackmq/halfback/broker/store"
)

func newBenchDelayCmd() *cobra.Command {
	var (
		o         bench.DelayOptions
		flush     string
		jsonOut   bool
		dir       string
		dueSpread time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delay",
		Short: "Measure how late delayed messages are delivered, burst included",
		Long: `Schedule --messages delayed messages that fall due within --due-spread
(after --lead): a third on the delay levels that fit the window, the rest at
arbitrary delivery times, and --burst of them due at the same millisecond in
the middle of the window. Wait until every one is delivered to its real
topic, then read them back and report lateness (store time minus due time)
p50/p99/max outside the burst, how long the burst took to drain, and
missing or duplicate deliveries.

--dir works as for 'bench store' (the system temp directory by default;
not tmpfs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if o.Flush, err = store.ParseFlushType(flush); err != nil {
				return fmt.Errorf("--flush %q: %w (want sync or async)", flush, bench.ErrInvalidOptions)
			}
			if dir == "" {
				dir = os.TempDir()
			}
			if onTmpfs(dir) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is on tmpfs (memory): fsync is free there\n", dir)
			}
			o.Dir, o.DueSpread = dir, dueSpread
			o.Logger = newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel())
			res, err := bench.RunDelay(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench delay in %s: %w", dir, err)
			}
			if jsonOut {
				err = json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			} else {
				err = printDelayResult(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			return checkDelivery("delay", int64(res.Missing), int64(res.Duplicates))
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Messages, "messages", 1_000_000, "messages to schedule, burst included")
	fl.DurationVar(&dueSpread, "due-spread", time.Minute, "window the messages fall due in")
	fl.DurationVar(&o.Lead, "lead", 30*time.Second, "time before the window opens (scheduling happens in it)")
	fl.IntVar(&o.Burst, "burst", 100_000, "messages due at the same millisecond mid-window")
	fl.IntVar(&o.Size, "size", 64, "message body size in bytes")
	fl.StringVar(&flush, "flush", "sync", "store flush type: sync or async")
	fl.StringVar(&dir, "dir", "", "directory to run in, on a real disk (default: the system temp dir)")
	fl.BoolVar(&jsonOut, "json", false, "print one JSON object instead of the table")
	return cmd
}

func printDelayResult(out io.Writer, r bench.DelayResult) error {
	_, err := fmt.Fprintf(out, `%s: %d messages (%d on levels, %d at arbitrary times) due within %.0f s; scheduled in %.1f s
delivered  %d (missing %d, duplicates %d, stored after their time %d), %.0f msgs/s over the window
lateness   p50 %.0f ms, p99 %.0f ms, max %.0f ms (outside the burst)
           p99 %.0f ms, max %.0f ms for those due after scheduling finished
burst      %d messages due at one instant: all delivered %.0f ms after it (%.0f msgs/s)
`, r.Flush, r.Messages, r.LevelMessages, r.TimerMessages, r.DueSpreadSeconds, r.ScheduleSec,
		r.Delivered, r.Missing, r.Duplicates, r.StoredAfterDue, r.DeliveredPerSec,
		r.LatenessP50ms, r.LatenessP99ms, r.LatenessMaxms,
		r.QuietP99ms, r.QuietMaxms,
		r.Burst, r.BurstDrainms, r.BurstMsgsPerSec)
	return err
}
