package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
)

// consumeResult is what `consume --json` prints.
type consumeResult struct {
	Group    string          `json:"group"`
	Topic    string          `json:"topic"`
	Messages []admin.Message `json:"messages"`
	// Committed are the offsets stored for the group, by queue.
	Committed []queueOffset `json:"committed"`
}

type queueOffset struct {
	QueueID int32 `json:"queueId"`
	Offset  int64 `json:"offset"`
}

func newConsumeCmd() *cobra.Command {
	var (
		o            adminOpts
		group, topic string
		from         string
		maxMsgs      int
		tags, sql    string
	)
	cmd := &cobra.Command{
		Use:   "consume --group GROUP --topic TOPIC [--from first|last] [--max N] [--tags EXPR | --sql EXPR]",
		Short: "Pull messages for a consumer group, print them and commit its offsets",
		Long: `Pull up to --max messages from the topic's queues in turn (of every tag,
or those --tags "a || b" names, or those whose properties the SQL92
expression --sql matches, e.g. "amount > 100 AND TAGS IN ('paid')": the
broker filters, and needs broker.enablePropertyFilter for --sql),
starting where the group's committed offset is (or, for a queue where it has
none, where a RocketMQ consumer of a new group starts: the queue's first
message if retention has removed none and the broker still counts it in
memory (broker.accessMessageInMemoryMaxRatio), else its first or last
message, --from), print them, and then
commit the group's new offsets (UPDATE_CONSUMER_OFFSET): a failure before the
commit shows the messages again next time, never skips them. With a
selector the offsets pass the messages it skipped, as a RocketMQ
consumer's do. If a queue
cannot be read, the messages of the queues before it are printed and
committed, and the command fails. It does not wait for new
messages, and it does not join the group: online consumers of the same group
are not rebalanced.`,
		Args: cobra.NoArgs,
		// Flags are checked before the broker is dialled, so that a bad
		// one is reported as such whether or not a broker answers.
		PreRunE: func(*cobra.Command, []string) error {
			if from != "first" && from != "last" {
				return fmt.Errorf("--from %q: want first or last", from)
			}
			if tags != "" && sql != "" {
				return errors.New("--tags and --sql: give one selector")
			}
			return atLeastOne(&maxMsgs)(nil, nil)
		},
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			t, err := c.GetTopic(ctx, topic)
			if err != nil {
				return err
			}
			res := consumeResult{Group: group, Topic: topic, Messages: []admin.Message{}, Committed: []queueOffset{}}
			sel := admin.Selector{Expression: tags}
			if sql != "" {
				sel = admin.Selector{SQL92: true, Expression: sql}
			}
			var pullErr error
			for qid := int32(0); int(qid) < t.ReadQueueNums && len(res.Messages) < maxMsgs; qid++ {
				msgs, next, err := consumeQueue(ctx, c, group, topic, qid, from == "first", maxMsgs-len(res.Messages), sel)
				if err != nil {
					pullErr = err // what the queues before it gave is still printed and committed
					if be := (*admin.BrokerError)(nil); errors.As(err, &be) && be.Code == remoting.RespNoPermission &&
						strings.HasPrefix(be.Remark, "subscription group no permission") {
						pullErr = fmt.Errorf("%w (the group is paused: halfback group update %s --consume=true resumes it)", err, group)
					}
					break
				}
				res.Messages = append(res.Messages, msgs...)
				res.Committed = append(res.Committed, queueOffset{qid, next})
			}
			if pullErr != nil && len(res.Committed) == 0 {
				return pullErr // nothing read: the refusal alone
			}
			// Printed first, committed after: a failure in between shows the
			// messages again next time instead of skipping them.
			err = o.print(cmd, res, func(w io.Writer) {
				printMessages(w, res.Messages)
				fmt.Fprintf(w, "\n%d messages; group %s commits", len(res.Messages), group)
				for _, q := range res.Committed {
					fmt.Fprintf(w, " q%d=%d", q.QueueID, q.Offset)
				}
				fmt.Fprintln(w)
			})
			if err != nil {
				return err
			}
			for _, q := range res.Committed {
				if err := c.CommitOffset(ctx, group, topic, q.QueueID, q.Offset); err != nil {
					return fmt.Errorf("group %s's offset of queue %d not committed; its messages above will come again: %w", group, q.QueueID, err)
				}
			}
			return pullErr
		}),
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&group, "group", "", "consumer group (required)")
	cmd.Flags().StringVar(&topic, "topic", "", "topic to consume (required)")
	cmd.Flags().StringVar(&from, "from", "last", "where a queue without a committed offset starts: first or last")
	cmd.Flags().IntVar(&maxMsgs, "max", 32, "at most this many messages in all")
	cmd.Flags().StringVar(&tags, "tags", "", `only messages of these tags ("a || b"; default every tag)`)
	cmd.Flags().StringVar(&sql, "sql", "", "only messages whose properties this SQL92 expression matches (broker.enablePropertyFilter)")
	_ = cmd.MarkFlagRequired("group")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// consumeQueue pulls up to limit messages of one queue from the group's
// position and returns them with the offset to commit.
func consumeQueue(ctx context.Context, c *admin.Client, group, topic string, qid int32, fromFirst bool, limit int, sel admin.Selector) ([]admin.Message, int64, error) {
	// As the broker answers a RocketMQ consumer of a new group: a queue
	// that has lost nothing to retention and whose first message is still
	// in memory starts there whatever --from says, so the commit below
	// never marks unread messages consumed for the group's real
	// consumers, who would start there.
	off, ok, err := c.StartOffset(ctx, group, topic, qid)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		minOff, maxOff, err := c.QueueBounds(ctx, topic, qid)
		if err != nil {
			return nil, 0, err
		}
		off = maxOff
		if fromFirst {
			off = minOff
		}
	}
	// The broker filters tags by hash code; two tags may share one, and
	// the consumer checks the tag itself, as RocketMQ's clients do.
	var tagSet map[string]bool
	if e := strings.TrimSpace(sel.Expression); !sel.SQL92 && e != "" && e != "*" {
		tagSet = map[string]bool{}
		for _, t := range strings.Split(e, "||") {
			if t = strings.TrimSpace(t); t != "" {
				tagSet[t] = true
			}
		}
	}
	var out []admin.Message
	for moves := 0; len(out) < limit; {
		r, err := c.PullSelect(ctx, group, topic, qid, off, limit-len(out), sel)
		if err != nil {
			return nil, 0, err
		}
		// The position was outside the queue, or the group's offsets were
		// reset (the first pull after a reset is told so, even from the
		// reset offset itself). A broker does not move a pull twice.
		if r.Moved && moves < 2 {
			moves++
			off = r.NextBeginOffset
			continue
		}
		if len(r.Messages) == 0 {
			if r.NextBeginOffset > off && r.NextBeginOffset <= r.MaxOffset {
				off = r.NextBeginOffset // the selector skipped what the scan found: go on
				continue
			}
			break
		}
		for _, m := range r.Messages {
			if len(out) == limit {
				break
			}
			off = m.QueueOffset + 1
			if tagSet == nil || tagSet[m.Tags] {
				out = append(out, m)
			}
		}
	}
	return out, off, nil
}
