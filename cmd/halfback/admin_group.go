package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
)

// groupOffsetsResult is what `group offsets --json` prints.
type groupOffsetsResult struct {
	Group  string                `json:"group"`
	Lag    int64                 `json:"lag"`
	Queues []admin.QueueProgress `json:"queues"`
}

func newGroupCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Inspect consumer groups",
	}
	o.addFlags(cmd)
	offsets := &cobra.Command{
		Use:   "offsets GROUP",
		Short: "Show a group's committed offsets and lag on every queue it consumes",
		Long: `Show, for every queue of the topics the group has committed offsets for or
subscribes to (and of its retry topic), the queue's max offset, the group's
committed offset, the lag between them and, as LAST CONSUMED, the store
time of the last message the group consumed there (GET_CONSUME_STATS'
lastTimestamp).`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			queues, err := c.GroupOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			res := groupOffsetsResult{Group: args[0], Queues: queues}
			if res.Queues == nil {
				res.Queues = []admin.QueueProgress{}
			}
			for _, q := range queues {
				res.Lag += q.Lag
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "TOPIC\tQUEUE\tBROKER OFFSET\tCONSUMER OFFSET\tLAG\tLAST CONSUMED")
				for _, q := range queues {
					last := "-"
					if q.LastTimestamp > 0 {
						last = time.UnixMilli(q.LastTimestamp).Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\n", q.Topic, q.QueueID, q.BrokerOffset, q.ConsumerOffset, q.Lag, last)
				}
				fmt.Fprintf(w, "\ntotal lag %d over %d queues\n", res.Lag, len(queues))
			})
		}),
	}
	cmd.AddCommand(offsets)
	return cmd
}
