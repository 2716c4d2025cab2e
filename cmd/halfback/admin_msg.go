package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
)

func newMsgCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "msg",
		Short: "Find stored messages by key or id",
	}
	o.addFlags(cmd)
	var topic, key string
	query := &cobra.Command{
		Use:   "query --topic TOPIC --key KEY",
		Short: "List the messages of a topic with a key (newest first)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			msgs, err := c.QueryByKey(ctx, topic, key)
			if err != nil {
				return err
			}
			if msgs == nil {
				msgs = []admin.Message{}
			}
			return o.print(cmd, msgs, func(w io.Writer) { printMessages(w, msgs) })
		}),
	}
	query.Flags().StringVar(&topic, "topic", "", "topic to search (required)")
	query.Flags().StringVar(&key, "key", "", "message key (required)")
	_ = query.MarkFlagRequired("topic")
	_ = query.MarkFlagRequired("key")

	var uniqTopic string
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one message, properties and body included",
		Long: `Show the message with offset message id ID (what "halfback send" prints as
offsetMsgId). With --topic, ID is instead a client message id (UNIQ_KEY,
"msgId") looked up in that topic; the newest copy is shown.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			var m admin.Message
			if uniqTopic == "" {
				var err error
				if m, err = c.ViewMessage(ctx, args[0]); err != nil {
					if errors.Is(err, message.ErrBadMessageID) && len(args[0]) == 32 {
						// Most likely the msgId (UNIQ_KEY) send printed: the
						// same length as an offset message id.
						return fmt.Errorf("%w (not an offset message id; a msgId is looked up with --topic TOPIC, or by halfback trace)", err)
					}
					return err
				}
			} else {
				msgs, err := c.QueryByUniqKey(ctx, uniqTopic, args[0])
				if err != nil {
					return err
				}
				if len(msgs) == 0 {
					return fmt.Errorf("no message with id %s in topic %s", args[0], uniqTopic)
				}
				m = msgs[0]
			}
			return o.print(cmd, m, func(w io.Writer) { printMessage(w, m) })
		}),
	}
	show.Flags().StringVar(&uniqTopic, "topic", "", "look ID up as a UNIQ_KEY in this topic")
	cmd.AddCommand(query, show, newMsgConsumeCmd(&o))
	return cmd
}

// storedHere fails unless the broker c is connected to stored the message
// with offset message id id (store host host): the broker reads its own
// log at the id's offset, where another broker's id finds another
// message, or none, and a consumer's handler must not be handed the wrong
// one.
func storedHere(ctx context.Context, c *admin.Client, id string, host netip.AddrPort) error {
	m, err := c.ViewMessage(ctx, id)
	if err != nil {
		return err
	}
	if stored := m.Ext().StoreHost; stored != host {
		return fmt.Errorf("message %s was stored by %s, and this broker is %s: run the command against that broker (--broker)", id, host, stored)
	}
	return nil
}

func newMsgConsumeCmd(o *adminOpts) *cobra.Command {
	var group, client, uniqTopic string
	cmd := &cobra.Command{
		Use:   "consume ID --group GROUP [--client ID]",
		Short: "Hand one stored message to an online consumer's handler and show what it made of it",
		Long: `Hand the message with offset message id ID (with --topic, the newest
message with client message id ID in that topic, as "msg show") to an
online consumer of GROUP, through the broker (CONSUME_MESSAGE_DIRECTLY, as
mqadmin queryMsgById -g GROUP -d CLIENT): its client runs the handler of
the message's topic on it and reports the result: CR_SUCCESS, CR_LATER
(the handler asked for a retry), CR_THROW_EXCEPTION (it failed; remark
says how) and, from other clients, CR_ROLLBACK, CR_COMMIT, CR_RETURN_NULL.
Nothing else happens: no offset moves and nothing is retried, whatever the
result; a consumer that already consumed the message consumes it again.
ID must be one the broker (--broker) stored: another broker's is refused.
The official RocketMQ clients and halfback's answer it. --client (a client
id, as group connections shows it) may be left out when the group has one
consumer online. The command fails unless the result is CR_SUCCESS.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			id := args[0]
			if uniqTopic != "" {
				msgs, err := c.QueryByUniqKey(ctx, uniqTopic, id)
				if err != nil {
					return err
				}
				if len(msgs) == 0 {
					return fmt.Errorf("no message with id %s in topic %s", id, uniqTopic)
				}
				id = msgs[0].OffsetMsgID
			} else if host, _, err := message.ParseOffsetMsgID(id); err != nil {
				return fmt.Errorf("%w (not an offset message id; a msgId is looked up with --topic TOPIC)", err)
			} else if err := storedHere(ctx, c, id, host); err != nil {
				return err
			}
			if client == "" {
				ids, err := onlineClientIDs(ctx, c, group)
				if err != nil {
					return err
				}
				switch len(ids) {
				case 0:
					return fmt.Errorf("no consumer of %s is online", group)
				case 1:
					client = ids[0]
				default:
					return fmt.Errorf("%s has %d consumers online (%s): say which with --client", group, len(ids), strings.Join(ids, ", "))
				}
			}
			res, err := c.ConsumeMessageDirectly(ctx, group, client, id)
			if err != nil {
				return err
			}
			err = o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "client:\t%s\n", res.ClientID)
				fmt.Fprintf(w, "message:\t%s\n", id)
				fmt.Fprintf(w, "result:\t%s\n", res.ConsumeResult)
				fmt.Fprintf(w, "orderly:\t%t\n", res.Order)
				fmt.Fprintf(w, "spent:\t%d ms\n", res.SpentMillis)
				if res.Remark != "" {
					fmt.Fprintf(w, "remark:\t%s\n", res.Remark)
				}
			})
			if err == nil && res.ConsumeResult != "CR_SUCCESS" {
				err = fmt.Errorf("the consumer's handler did not consume message %s: %s", id, res.ConsumeResult)
			}
			return err
		}),
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose consumer gets the message (required)")
	cmd.Flags().StringVar(&client, "client", "", "the consumer's client id (default: the group's only consumer online)")
	cmd.Flags().StringVar(&uniqTopic, "topic", "", "look ID up as a UNIQ_KEY in this topic")
	_ = cmd.MarkFlagRequired("group")
	return cmd
}

// printMessage writes one message as "name: value" lines, then its body.
func printMessage(w io.Writer, m admin.Message) {
	fmt.Fprintf(w, "msgId:\t%s\n", m.MsgID)
	fmt.Fprintf(w, "offsetMsgId:\t%s\n", m.OffsetMsgID)
	fmt.Fprintf(w, "topic:\t%s\n", m.Topic)
	fmt.Fprintf(w, "queue:\t%d\n", m.QueueID)
	fmt.Fprintf(w, "queueOffset:\t%d\n", m.QueueOffset)
	fmt.Fprintf(w, "tags:\t%s\n", m.Tags)
	fmt.Fprintf(w, "keys:\t%s\n", strings.Join(m.Keys, ","))
	fmt.Fprintf(w, "reconsumeTimes:\t%d\n", m.ReconsumeTimes)
	fmt.Fprintf(w, "bornTimestamp:\t%d\n", m.BornTimestamp)
	fmt.Fprintf(w, "storeTimestamp:\t%d\n", m.StoreTimestamp)
	names := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "property %s:\t%s\n", k, m.Properties[k])
	}
	if m.BodyBase64 != "" {
		fmt.Fprintf(w, "body (base64):\t%s\n", m.BodyBase64)
	} else {
		fmt.Fprintf(w, "body:\t%s\n", m.Body)
	}
}
