package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
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
		Short: "Inspect, reset and delete consumer groups",
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
	cmd.AddCommand(offsets, del, newGroupResetCmd(&o))
	return cmd
}

// groupResetResult is what `group reset --json` prints.
type groupResetResult struct {
	Group  string              `json:"group"`
	Topic  string              `json:"topic"`
	Queues []admin.QueueOffset `json:"queues"`
}

func newGroupResetCmd(o *adminOpts) *cobra.Command {
	var (
		topic, to string
		queue     int32
		offset    int64
	)
	cmd := &cobra.Command{
		Use:   "reset GROUP --topic TOPIC (--to earliest|latest|TIME | --queue N --offset K)",
		Short: "Move a consumer group's offsets on a topic to a time, its start or end, or one queue to an offset",
		Long: `Move a consumer group's committed offsets on a topic
(INVOKE_BROKER_TO_RESET_OFFSET, as mqadmin resetOffsetByTime): to replay
from a time, skip a backlog, or put one queue at an offset.

--to takes earliest (the oldest message kept), latest (the end: everything
stored is skipped), an RFC 3339 time (2026-11-23T09:00:00Z) or Unix
milliseconds; each queue goes to its first message stored at or after it.
--queue and --offset move one queue instead.

The broker commits the new offsets at once. Consumers of the group that
are online are moved too: each one's next pull of a queue is answered
PULL_OFFSET_MOVED with the new offset (RocketMQ 5's server-side reset,
which every RocketMQ client follows), and their commits of that queue are
ignored until then. Messages a consumer is handling at that moment are
still acknowledged; with a reset backwards they are delivered again.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			var target admin.ResetTo
			queueSet, offsetSet := cmd.Flags().Changed("queue"), cmd.Flags().Changed("offset")
			switch {
			case topic == "":
				return fmt.Errorf("--topic is required")
			case queueSet != offsetSet:
				return fmt.Errorf("--queue and --offset go together")
			case queueSet && to != "":
				return fmt.Errorf("--to and --queue/--offset exclude each other")
			case queueSet:
				if queue < 0 || offset < 0 {
					return fmt.Errorf("--queue %d --offset %d: want numbers from 0", queue, offset)
				}
				target = admin.ResetQueueTo(queue, offset)
			case to == "":
				return fmt.Errorf("say where: --to earliest|latest|TIME, or --queue N --offset K")
			default:
				ts, err := parseResetTime(to)
				if err != nil {
					return err
				}
				target = admin.ResetToTime(ts)
			}
			queues, err := c.ResetOffsets(ctx, args[0], topic, target)
			if err != nil {
				return err
			}
			res := groupResetResult{Group: args[0], Topic: topic, Queues: queues}
			if res.Queues == nil {
				res.Queues = []admin.QueueOffset{}
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "TOPIC\tQUEUE\tOFFSET")
				for _, q := range queues {
					fmt.Fprintf(w, "%s\t%d\t%d\n", q.Topic, q.QueueID, q.Offset)
				}
				fmt.Fprintf(w, "\nreset group %s on %d queues of %s\n", args[0], len(queues), topic)
			})
		}),
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic whose offsets to move (required)")
	cmd.Flags().StringVar(&to, "to", "", "earliest, latest, an RFC 3339 time or Unix milliseconds")
	cmd.Flags().Int32Var(&queue, "queue", 0, "queue id to move alone (with --offset)")
	cmd.Flags().Int64Var(&offset, "offset", 0, "offset to move --queue to")
	return cmd
}

// parseResetTime reads --to: earliest (0), latest (-1), an RFC 3339 time
// or Unix milliseconds.
func parseResetTime(s string) (int64, error) {
	switch s {
	case "earliest":
		return 0, nil
	case "latest":
		return -1, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if t.UnixMilli() < 0 {
			return 0, fmt.Errorf("--to %q is before 1970", s)
		}
		return t.UnixMilli(), nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return 0, fmt.Errorf("--to %q: want earliest, latest, an RFC 3339 time or Unix milliseconds", s)
	}
	return ms, nil
}
