package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
)

func newTxnCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "List, resume and resolve transactional (half) messages",
		Long: `A half message waits for its producer's commit or rollback; the broker
checks back with the producer group when none comes, and parks it after
broker.transactionCheckMax checks. These commands show the open ones and let
an operator resume checking or decide. ID is a half message's offset message
id, its transaction id (UNIQ_KEY) or its commit-log offset.`,
	}
	o.addFlags(cmd)
	var status string
	var limit int
	list := &cobra.Command{
		Use:     "list",
		Short:   "List open transactions (pending and parked), oldest first",
		Args:    cobra.NoArgs,
		PreRunE: atLeastOne(&limit),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			ts, err := c.Transactions(ctx, status, limit)
			if err != nil {
				return err
			}
			if ts == nil {
				ts = []admin.Transaction{}
			}
			return o.print(cmd, ts, func(w io.Writer) {
				fmt.Fprintln(w, "MSG ID\tTRANSACTION ID\tGROUP\tTOPIC\tKEYS\tSTATUS\tCHECKS\tSTORED\tNEXT CHECK")
				for _, t := range ts {
					next := "-"
					if !t.NextCheck.IsZero() {
						next = t.NextCheck.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.MsgID, t.TransactionID, t.Group, t.Topic, t.Keys,
						t.Status, t.Checks, t.Stored.Format(time.RFC3339), next)
				}
			})
		}),
	}
	list.Flags().StringVar(&status, "status", "", "only pending or only parked ones")
	list.Flags().IntVar(&limit, "max", 1000, "at most this many")
	resume := &cobra.Command{
		Use:   "resume ID",
		Short: "Check a parked transaction's producer group again, its check count reset",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			t, err := c.ResumeTransaction(ctx, args[0])
			return o.printTxn(cmd, t, err, "resumed")
		}),
	}
	resolve := func(use string, commit bool, short string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
				t, err := c.ResolveTransaction(ctx, args[0], commit)
				return o.printTxn(cmd, t, err, t.Status)
			}),
		}
	}
	cmd.AddCommand(list, resume,
		resolve("commit", true, "Commit an open transaction: its message is delivered"),
		resolve("rollback", false, "Roll back an open transaction: its message is never delivered"))
	return cmd
}

func (o *adminOpts) printTxn(cmd *cobra.Command, t admin.Transaction, err error, what string) error {
	if err != nil {
		return err
	}
	return o.print(cmd, t, func(w io.Writer) {
		fmt.Fprintf(w, "%s: transaction %s (%s) of group %s for topic %s\n", what, t.TransactionID, t.MsgID, t.Group, t.Topic)
	})
}
