package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/bench"
)

func newBenchTxnCmd() *cobra.Command {
	var (
		f            benchProduceFlags
		unknown      int
		checkTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Measure transactions per second: half message, commit, consumed",
		Long: `Start a name server and a broker in-process and run transactions through
halfback's Go client: --producers goroutines each send a half message
(SendHalf), run no local transaction, and commit (EndTransaction), over
and over for --duration, while consumers pull the topic as 'bench e2e'
does. --unknown-percent of the transactions are left unknown: the broker
checks them back after --check-timeout and the producer's check listener
answers commit.

Reports transactions per second (consumed messages from the first
SendHalf to the last receipt) and the latency of a transaction from
SendHalf to its message reaching a consumer, p50/p99 in milliseconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			po, err := f.options(cmd)
			if err != nil {
				return err
			}
			res, err := bench.RunTxn(cmd.Context(), bench.TxnOptions{Dir: po.Dir, Flush: po.Flush, Size: po.Size,
				Duration: po.Duration, Queues: po.Queues, SegmentSize: po.SegmentSize, Logger: po.Logger,
				Producers: po.Producers, UnknownPercent: unknown, CheckTimeout: checkTimeout})
			if err != nil {
				return fmt.Errorf("bench txn in %s: %w", po.Dir, err)
			}
			if f.json {
				err = json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			} else {
				err = printTxnResult(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			return checkDelivery("txn", res.Missing, res.Duplicates)
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&unknown, "unknown-percent", 0, "percent of transactions left unknown, resolved by check-back (0-100)")
	cmd.Flags().DurationVar(&checkTimeout, "check-timeout", time.Second, "the broker's transactionTimeout and check interval for the run")
	return cmd
}

// printTxnResult writes r as a few lines.
func printTxnResult(out io.Writer, r bench.TxnResult) error {
	_, err := fmt.Fprintf(out, `%s, %d producers, %d queues, %d-byte bodies, %d%% left to check-back (after %d ms)
transactions %10d  committed %d, by check-back %d
consumed     %10d %10.0f txn/s  send→consumed p50 %.2f ms, p99 %.2f ms
missing      %10d  duplicates %d
`, r.Flush, r.Producers, r.Queues, r.Size, r.UnknownPercent, r.CheckTimeoutMs,
		r.Transactions, r.Committed, r.CheckedBack, r.Consumed, r.TxnPerSec, r.P50ms, r.P99ms, r.Missing, r.Duplicates)
	return err
}
