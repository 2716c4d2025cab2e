package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
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
		Short: "Inspect, configure, pause, reset and delete consumer groups",
	}
	o.addFlags(cmd)
	o.addClusterFlags(cmd)
	offsets := &cobra.Command{
		Use:   "offsets GROUP",
		Short: "Show a group's committed offsets and lag on every queue it consumes",
		Long: `Show, for every queue of the topics the group has committed offsets for or
subscribes to (and of its retry topic), the queue's max offset, its oldest
kept offset (retention removed those before it), the group's committed
offset, the lag (what the group has yet to consume: max offset minus the
greater of the other two) and, as LAST CONSUMED, the store
time of the last message the group consumed there (GET_CONSUME_STATS'
lastTimestamp). A group the broker does not know (no offsets, no consumer
online, no settings in "group list": a typo, say) fails, as mqadmin
consumerProgress does, rather than showing a lag of 0. A group online in
BROADCASTING mode shows only the topics it has committed offsets for
(not those it subscribes to, nor its retry topic): its members keep their offsets themselves, so the broker knows no lag of
theirs.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			queues, err := c.GroupOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			if len(queues) == 0 {
				// Nothing committed, nothing subscribed: a group the broker
				// has no settings for either is most likely a typo, which
				// must not read as "lag 0" (mqadmin consumerProgress fails
				// too).
				if err := groupKnown(ctx, c, args[0]); err != nil {
					return err
				}
			}
			res := groupOffsetsResult{Group: args[0], Queues: queues}
			if res.Queues == nil {
				res.Queues = []admin.QueueProgress{}
			}
			for _, q := range queues {
				res.Lag += q.Lag
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "TOPIC\tQUEUE\tBROKER OFFSET\tMIN OFFSET\tCONSUMER OFFSET\tLAG\tLAST CONSUMED")
				for _, q := range queues {
					last := "-"
					if q.LastTimestamp > 0 {
						last = time.UnixMilli(q.LastTimestamp).Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", q.Topic, q.QueueID, q.BrokerOffset, q.MinOffset, q.ConsumerOffset, q.Lag, last)
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
deleteSubGroup): its settings ("group list"; a group that comes back gets
the defaults, unless broker.autoCreateSubscriptionGroup is false), its
committed offsets (unless --keep-offsets) and its metric series (its lag series go with its offsets). The broker keeps both
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
	conns := &cobra.Command{
		Use:   "connections GROUP",
		Short: "Show an online group's consumers (client id, address, language, version) and subscriptions",
		Long: `Show the consumers of a consumer group online on the broker
(GET_CONSUMER_CONNECTION_LIST, as mqadmin consumerConnection): each one's
client id, address, language and client version (one row per
connection: two consumers sharing a client id, as two processes on one
host with the Java client's default instance name, both show), then what
the group subscribes to and how it consumes. A group with no consumer online is
refused (CONSUMER_NOT_ONLINE).`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			g, err := c.GroupConnections(ctx, args[0])
			if err != nil {
				return err
			}
			return o.print(cmd, g, func(w io.Writer) {
				fmt.Fprintln(w, "CLIENT\tADDRESS\tLANGUAGE\tVERSION")
				for _, cl := range g.Clients {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", cl.ClientID, cl.Addr, cl.Language, cl.Version)
				}
				fmt.Fprintln(w, "\nTOPIC\tSUBSCRIPTION")
				topics := make([]string, 0, len(g.Subscriptions))
				for t := range g.Subscriptions {
					topics = append(topics, t)
				}
				sort.Strings(topics)
				for _, t := range topics {
					fmt.Fprintf(w, "%s\t%s\n", t, g.Subscriptions[t])
				}
				fmt.Fprintf(w, "\n%s, %s, %s\n", g.MessageModel, g.ConsumeType, g.ConsumeFromWhere)
			})
		}),
	}
	cmd.AddCommand(offsets, del, newGroupResetCmd(&o), newGroupListCmd(&o), newGroupUpdateCmd(&o), conns, newGroupRunningCmd(&o), newGroupStatusCmd(&o))
	return cmd
}

func newGroupRunningCmd(o *adminOpts) *cobra.Command {
	var client string
	cmd := &cobra.Command{
		Use:   "running GROUP [--client ID]",
		Short: "Ask an online group's consumers for their running state (queues, offsets, cached messages)",
		Long: `Ask each online consumer of GROUP (or only --client ID), through the
broker, for its running state (GET_CONSUMER_RUNNING_INFO, as mqadmin
consumerRunningInfo): the official clients and halfback's report their
settings, subscriptions and, for every queue they hold, the offsets
consumed up to, the messages cached and the queue lock. Each report is printed
as the client wrote it (RocketMQ's clients key the queue table by
MessageQueue objects, which is not strict JSON). A consumer that cannot
answer is listed with its error. Of consumers sharing a client id (see
group connections), the broker asks the one it heard from last.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			group := args[0]
			ids := []string{client}
			if client == "" {
				var err error
				if ids, err = onlineClientIDs(ctx, c, group); err != nil {
					return err
				}
			}
			out := make([]admin.RunningInfo, 0, len(ids))
			failed := 0
			for _, id := range ids {
				info, err := c.ConsumerRunningInfo(ctx, group, id)
				ri := admin.RunningInfo{ClientID: id, Info: info}
				if err != nil {
					ri.Err, failed = err.Error(), failed+1
				}
				out = append(out, ri)
			}
			err := o.print(cmd, out, func(w io.Writer) {
				for _, ri := range out {
					fmt.Fprintf(w, "== %s\n", ri.ClientID)
					if ri.Err != "" {
						fmt.Fprintf(w, "error: %s\n", ri.Err)
						continue
					}
					fmt.Fprintln(w, ri.Info)
				}
			})
			if err == nil && failed == len(out) {
				err = fmt.Errorf("no consumer of %s answered", group)
			}
			return err
		}),
	}
	cmd.Flags().StringVar(&client, "client", "", "only this consumer (its client id, as group connections shows it)")
	return cmd
}

func newGroupStatusCmd(o *adminOpts) *cobra.Command {
	var topic, client string
	cmd := &cobra.Command{
		Use:   "status GROUP --topic T [--client ID]",
		Short: "Ask an online group's consumers how far each has consumed the queues of a topic",
		Long: `Ask each online consumer of GROUP (or only --client ID), through the broker,
how far it has consumed each queue of topic T that it holds
(INVOKE_BROKER_TO_GET_CONSUMER_STATUS, as mqadmin getConsumerStatus): the
offset in the consumer's memory, which it commits every few seconds, so it
may be ahead of what "group offsets" shows. The official clients and
halfback's answer. A consumer that does not answer within 3 s is left out;
with no consumer online the command fails.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			rows, err := c.ConsumerStatus(ctx, args[0], topic, client)
			if err != nil {
				return err
			}
			return o.print(cmd, rows, func(w io.Writer) {
				fmt.Fprintln(w, "CLIENT\tTOPIC\tBROKER\tQUEUE\tOFFSET")
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", r.ClientID, r.Topic, r.BrokerName, r.QueueID, r.Offset)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic whose queues to report (required)")
	cmd.Flags().StringVar(&client, "client", "", "only this consumer (its client id, as group connections shows it)")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// onlineClientIDs lists the client ids of group's online consumers, each
// once (consumers may share one: see group connections).
func onlineClientIDs(ctx context.Context, c *admin.Client, group string) ([]string, error) {
	g, err := c.GroupConnections(ctx, group)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, cl := range g.Clients {
		if !slices.Contains(ids, cl.ClientID) {
			ids = append(ids, cl.ClientID)
		}
	}
	return ids, nil
}

// groupKnown fails unless the broker has settings for group ("group list").
func groupKnown(ctx context.Context, c *admin.Client, group string) error {
	groups, err := c.GroupConfigs(ctx)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Group == group {
			return nil
		}
	}
	return fmt.Errorf("consumer group %s is not known to the broker: no offsets committed, no consumer online, no settings (see group list)", group)
}

func newGroupListCmd(o *adminOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups the broker knows, with their settings",
		Long: `List every consumer group the broker has settings for
(GET_ALL_SUBSCRIPTIONGROUP_CONFIG, as mqadmin's subscription group list): a
group gets them on its first heartbeat or pull (broker.autoCreateSubscriptionGroup)
or from "group update". CONSUME no means its pulls are refused; BROADCAST
no refuses its broadcasting consumers; RETRY MAX is how often a message is
retried before the dead-letter queue when the client does not say;
RETRY QUEUES is its retry topic's queue count when created; NOTIFY no stops
the broker telling its consumers of membership changes.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			groups, err := c.GroupConfigs(ctx)
			if err != nil {
				return err
			}
			yes := func(b bool) string {
				if b {
					return "yes"
				}
				return "no"
			}
			return o.print(cmd, groups, func(w io.Writer) {
				fmt.Fprintln(w, "GROUP\tCONSUME\tBROADCAST\tRETRY MAX\tRETRY QUEUES\tNOTIFY")
				for _, g := range groups {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", g.Group, yes(g.ConsumeEnable), yes(g.ConsumeBroadcastEnable),
						g.RetryMaxTimes, g.RetryQueueNums, yes(g.NotifyIDsChanged))
				}
			})
		}),
	}
}

func newGroupUpdateCmd(o *adminOpts) *cobra.Command {
	var (
		consume, broadcast, notify bool
		retryMax, retryQueues      int
	)
	cmd := &cobra.Command{
		Use:   "update GROUP [--consume=false] [--broadcast=false] [--retry-max-times N] [--retry-queue-nums N] [--notify=false]",
		Short: "Create a consumer group or change its settings (pause and resume it, its retries)",
		Long: `Create a consumer group or change its settings
(UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, as mqadmin updateSubGroup). Only the
flags given change; the rest keep their value, or the broker's defaults for
a new group.

--consume=false pauses the group: the broker refuses its pulls
(NO_PERMISSION) and its consumers keep asking, so --consume=true resumes it
where it stopped. --broadcast=false refuses the group's broadcasting
consumers. --retry-max-times is how often a failed message is retried
before the dead-letter queue when the consumer does not say (the official
clients and halfback's send their own limit, which wins).
--retry-queue-nums is the queue count of the group's retry topic when the
broker creates it. --notify=false stops NOTIFY_CONSUMER_IDS_CHANGED for the
group (its consumers rebalance on their own timer).

With broker.autoCreateSubscriptionGroup false, a group consumes only once
this created it.`,
		Args: cobra.ExactArgs(1),
		// Flags are checked before the broker is dialled, so that a bad
		// one is reported as such (once, with --cluster), broker or not.
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("retry-max-times") && retryMax < 0 {
				return fmt.Errorf("--retry-max-times %d: want 0 or more", retryMax)
			}
			if cmd.Flags().Changed("retry-queue-nums") && (retryQueues < 1 || retryQueues > 1024) {
				return fmt.Errorf("--retry-queue-nums %d: want 1..1024", retryQueues)
			}
			return nil
		},
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			fields := map[string]any{}
			for flag, field := range map[string]string{"consume": "consumeEnable", "broadcast": "consumeBroadcastEnable",
				"notify": "notifyConsumerIdsChangedEnable", "retry-max-times": "retryMaxTimes", "retry-queue-nums": "retryQueueNums"} {
				if !cmd.Flags().Changed(flag) {
					continue
				}
				switch flag {
				case "consume":
					fields[field] = consume
				case "broadcast":
					fields[field] = broadcast
				case "notify":
					fields[field] = notify
				case "retry-max-times":
					fields[field] = retryMax
				case "retry-queue-nums":
					fields[field] = retryQueues
				}
			}
			g, err := c.UpdateGroupConfig(ctx, args[0], fields)
			if err != nil {
				return err
			}
			return o.print(cmd, g, func(w io.Writer) {
				fmt.Fprintf(w, "group %s: consume %v, broadcast %v, retry max times %d, retry queues %d, notify %v\n",
					g.Group, g.ConsumeEnable, g.ConsumeBroadcastEnable, g.RetryMaxTimes, g.RetryQueueNums, g.NotifyIDsChanged)
			})
		}),
	}
	cmd.Flags().BoolVar(&consume, "consume", true, "false pauses the group: its pulls are refused")
	cmd.Flags().BoolVar(&broadcast, "broadcast", true, "false refuses the group's broadcasting consumers")
	cmd.Flags().BoolVar(&notify, "notify", true, "false stops telling the group's consumers of membership changes")
	cmd.Flags().IntVar(&retryMax, "retry-max-times", 16, "retries before the dead-letter queue when the consumer does not say")
	cmd.Flags().IntVar(&retryQueues, "retry-queue-nums", 1, "queue count of the group's retry topic when it is created")
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
		target    admin.ResetTo // from the flags, by PreRunE
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
--queue and --offset move one queue instead (not with --cluster: each
broker has its own queue N).

The broker commits the new offsets at once. Consumers of the group that
are online are moved too: each one's next pull of a queue is answered
PULL_OFFSET_MOVED with the new offset (RocketMQ 5's server-side reset,
which every RocketMQ client follows), and their commits of that queue are
ignored until then. Messages a consumer is handling at that moment are
still acknowledged; with a reset backwards they are delivered again.
A broker with broker.useServerSideResetOffset false (or a RocketMQ 4
broker) commits nothing: it sends the new offsets to the group's online
consumers, which move and commit them, and refuses the reset when none is
online, or with --queue.`,
		Args: cobra.ExactArgs(1),
		// Flags are checked before the broker is dialled, so that a bad
		// one is reported as such (once, with --cluster), broker or not.
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			queueSet, offsetSet := cmd.Flags().Changed("queue"), cmd.Flags().Changed("offset")
			switch {
			case o.cluster != "" && (queueSet || offsetSet):
				return fmt.Errorf("--queue/--offset name one queue of one broker: use --broker, not --cluster")
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
			return nil
		},
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
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
