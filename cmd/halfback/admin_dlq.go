package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
)

func newDLQCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and re-drive a consumer group's dead-letter queue",
	}
	o.addFlags(cmd)
	var maxMsgs int
	list := &cobra.Command{
		Use:     "list GROUP",
		Short:   "List the messages in %DLQ%<GROUP>, oldest first",
		Args:    cobra.ExactArgs(1),
		PreRunE: atLeastOne(&maxMsgs),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			msgs, err := c.DLQMessages(ctx, args[0], maxMsgs)
			if err != nil {
				return err
			}
			if msgs == nil {
				msgs = []admin.Message{}
			}
			return o.print(cmd, msgs, func(w io.Writer) {
				fmt.Fprintln(w, "OFFSET MSG ID\tMSG ID\tORIGINAL TOPIC\tTAGS\tRECONSUME\tSTORED\tBODY")
				for _, m := range msgs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.OffsetMsgID, m.MsgID, admin.OriginalTopic(m), m.Tags,
						m.ReconsumeTimes, time.UnixMilli(m.StoreTimestamp).UTC().Format(time.RFC3339), bodyPreview(m))
				}
			})
		}),
	}
	list.Flags().IntVar(&maxMsgs, "max", 100, "at most this many messages")
	var force bool
	resend := &cobra.Command{
		Use:   "resend GROUP ID",
		Short: "Send a dead-letter message back to its original topic",
		Long: `Send the message of %DLQ%<GROUP> with offset message id ID (as "dlq list"
prints it) to the topic it was first sent to, with its body, tags, keys and
message id (UNIQ_KEY), as a fresh message. The dead-letter copy stays.
Every consumer group of that topic receives the copy, not only GROUP
(consumers that drop a message id they have seen drop it). A dead letter
already resent (a copy with its message id stored in the topic after it)
is refused unless --force.`,
		Args: cobra.ExactArgs(2),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			res, err := c.ResendDLQ(ctx, args[0], args[1], force)
			if err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "resent %s to topic %s queue %d as %s\n", res.MsgID, res.Topic, res.QueueID, res.OffsetMsgID)
			})
		}),
	}
	resend.Flags().BoolVar(&force, "force", false, "resend even if a copy was resent before")
	cmd.AddCommand(list, resend)
	return cmd
}
