package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
)

func newSendCmd() *cobra.Command {
	var (
		o     adminOpts
		req   admin.SendRequest
		keys  string
		props []string
	)
	cmd := &cobra.Command{
		Use:   "send --topic TOPIC [--tag TAG] [--keys K1,K2] [--property NAME=VALUE]... [--delay-level N] BODY",
		Short: "Send one message to a running broker",
		Long: `Send one message and wait until the broker has stored it. BODY "-" reads
the body from standard input. Prints the message id (UNIQ_KEY) and the
offset message id that "halfback msg show" takes.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			req.Body = []byte(args[0])
			if args[0] == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("read the body from stdin: %w", err)
				}
				req.Body = b
			}
			if keys != "" {
				req.Keys = strings.Split(keys, ",")
			}
			for _, p := range props {
				name, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--property %q: want NAME=VALUE", p)
				}
				if req.Properties == nil {
					req.Properties = map[string]string{}
				}
				req.Properties[name] = v
			}
			res, err := c.Send(ctx, req)
			if err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "msgId:\t%s\n", res.MsgID)
				fmt.Fprintf(w, "offsetMsgId:\t%s\n", res.OffsetMsgID)
				fmt.Fprintf(w, "topic:\t%s\n", res.Topic)
				fmt.Fprintf(w, "queue:\t%d\n", res.QueueID)
				fmt.Fprintf(w, "queueOffset:\t%d\n", res.QueueOffset)
			})
		}),
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&req.Topic, "topic", "", "topic to send to (required)")
	cmd.Flags().StringVar(&req.Tag, "tag", "", "message tag")
	cmd.Flags().StringVar(&keys, "keys", "", "message keys, comma-separated")
	cmd.Flags().StringArrayVar(&props, "property", nil, "a user property NAME=VALUE (repeatable), e.g. for SQL92 selectors")
	cmd.Flags().IntVar(&req.DelayLevel, "delay-level", 0, "deliver after the broker's delay level N (0: now; above the broker's highest level, its highest, as RocketMQ)")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}
