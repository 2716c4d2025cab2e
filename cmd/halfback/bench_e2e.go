package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/bench"
)

func newBenchE2ECmd() *cobra.Command {
	var (
		f         benchProduceFlags
		consumers int
	)
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Measure end-to-end latency from producers to consumers over the protocol",
		Long: `Run 'bench produce' with consumers: before the producers start,
--consumers consumers connect (one connection each), the topic's queues
are dealt out among them, and each keeps one PULL_MESSAGE in flight per
queue it owns, from offset 0, with long polling (the suspend flag, up to
15 s, 32 messages a pull) as push consumers do. Each body starts with the
producer's send time; end-to-end latency is the time a consumer receives
the message minus that time. When the producers stop, the consumers get
max(--duration, 10s) to receive the rest.

Reports messages consumed per second (from the first send to the last
receipt), end-to-end p50/p99 in milliseconds, and produced, consumed,
missing and duplicate counts, besides the producers' own figures.
--size must be at least 16 bytes (the send time and a message id).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			po, err := f.options(cmd)
			if err != nil {
				return err
			}
			stop, err := f.startCPUProfile()
			if err != nil {
				return err
			}
			res, err := bench.RunE2E(cmd.Context(), bench.E2EOptions{ProduceOptions: po, Consumers: consumers})
			stop()
			if err != nil {
				return fmt.Errorf("bench e2e in %s: %w", po.Dir, err)
			}
			if f.json {
				err = json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			} else {
				err = printE2EResult(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			return checkDelivery("e2e", res.Missing, res.Duplicates)
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&consumers, "consumers", 0, "consumers, each with its own connection (default min(--queues, 4); at most --queues)")
	return cmd
}

// printE2EResult writes res as a few lines.
func printE2EResult(out io.Writer, r bench.E2EResult) error {
	_, err := fmt.Fprintf(out, `%s, %d producers over %d connections, %d consumers, %d queues, %d-byte bodies
produced  %10d %10.0f msgs/s             send p50 %.2f ms, p99 %.2f ms
consumed  %10d %10.0f msgs/s %9.1f MB/s  end-to-end p50 %.2f ms, p99 %.2f ms
missing   %10d   duplicates %d; last message received %.2f s after the last send
`, r.Flush, r.Producers, r.Connections, r.Consumers, r.Queues, r.Size,
		r.Produced, r.ProducedPerSec, r.SendP50ms, r.SendP99ms,
		r.Consumed, r.MsgsPerSec, r.MBPerSec, r.P50ms, r.P99ms,
		r.Missing, r.Duplicates, r.DrainSec)
	return err
}

// checkDelivery fails a bench run (after its result is printed) that did
// not receive every message exactly once, so that it exits non-zero.
func checkDelivery(bench string, missing, duplicates int64) error {
	if missing == 0 && duplicates == 0 {
		return nil
	}
	return fmt.Errorf("bench %s: %d messages missing, %d received more than once (a missing one may only be late: give the run more time to drain)",
		bench, missing, duplicates)
}
