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
		Short: "Inspect and delete consumer groups",
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
	var keepOffsets bool
	del := &cobra.Command{
		Use:   "delete GROUP",
		Short: "Forget a consumer group that went away, with its committed offsets",
		Long: `Forget a consumer group that went away (DELETE_SUBSCRIPTIONGROUP, as mqadmin
deleteSubGroup): its committed offsets (unless --keep-offsets) and its
metric series (its lag series go with its offsets). The broker keeps both
for a group that left until then.
It refuses while the group has consumers online. The group's %RETRY% and
%DLQ% topics stay: delete them with "topic delete" (a dead letter there is
still a message to look at).`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			if err := c.DeleteGroup(ctx, args[0], !keepOffsets); err != nil {
				return err
			}
			res := map[string]any{"group": args[0], "offsetsRemoved": !keepOffsets}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "deleted consumer group %s (offsets removed: %v)\n", args[0], !keepOffsets)
			})
		}),
	}
	del.Flags().BoolVar(&keepOffsets, "keep-offsets", false, "keep the group's committed offsets")
	cmd.AddCommand(offsets, del)
	return cmd
}
