package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/broker/lifecycle"
	"github.com/halfbackmq/halfback/internal/admin"
)

func newTraceCmd() *cobra.Command {
	var o adminOpts
	var limit int
	cmd := &cobra.Command{
		Use:   "trace ID|KEY|TRACEID",
		Short: "Show what happened to a message in the broker, step by step",
		Long: `Show the lifecycle of the messages named by a message id (UNIQ_KEY), an
offset message id (the broker's, as send prints it), a message key (KEYS)
or a trace id (from the producer's traceparent): stored,
half stored, committed or rolled back (by the client, a check-back or an
operator), checked back, parked, scheduled, delivered from the schedule,
sent back for retry, dead-lettered, and consumed by each group whose
committed offset has passed it (filtered instead when the tag or SQL92
subscription of that group, online, skips the message; a broadcasting
group keeps its offsets in its members, so its consumption is not shown). Each message's first event
shows its time; each later one the time since the one before (+Δ).
Consumption has no time: it is read from the groups' offsets when you
ask. The broker keeps events as long as the store keeps messages (72 h by
default).`,
		Args:    cobra.ExactArgs(1),
		PreRunE: atLeastOne(&limit),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			msgs, err := c.Trace(ctx, args[0], limit)
			if err != nil {
				return err
			}
			if msgs == nil {
				msgs = []admin.MessageTrace{}
			}
			if !o.json && len(msgs) == 0 {
				return fmt.Errorf("no message with id, key or trace id %q in the broker's lifecycle record", args[0])
			}
			return o.print(cmd, msgs, func(w io.Writer) { printTraces(w, msgs) })
		}),
	}
	o.addFlags(cmd)
	cmd.Flags().IntVar(&limit, "max", 100, "at most this many messages")
	return cmd
}

// printTraces writes each message's events as an indented timeline.
func printTraces(w io.Writer, msgs []admin.MessageTrace) {
	for i, m := range msgs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "message %s%s\n", m.MsgID, traceIdentity(m))
		var prev time.Time
		for _, e := range m.Events {
			when := "-"
			switch {
			case e.Time.IsZero():
			case prev.IsZero():
				when = e.Time.UTC().Format("2006-01-02T15:04:05.000Z")
			default:
				when = "+" + e.Time.Sub(prev).Round(time.Millisecond).String()
			}
			if !e.Time.IsZero() {
				prev = e.Time
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", when, e.Kind, traceDetail(e))
		}
	}
}

// traceIdentity is a message's keys and trace id, as its events name them.
func traceIdentity(m admin.MessageTrace) string {
	var keys, traceID string
	for _, e := range m.Events {
		if keys == "" {
			keys = e.Keys
		}
		if traceID == "" {
			traceID = e.TraceID
		}
	}
	var parts []string
	if keys != "" {
		parts = append(parts, "keys "+keys)
	}
	if traceID != "" {
		parts = append(parts, "trace "+traceID)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// traceDetail says what an event's fields mean for its kind.
func traceDetail(e admin.TraceEvent) string {
	where := fmt.Sprintf("%s queue %d offset %d", e.Topic, e.Queue, e.Offset)
	var s string
	switch e.Kind {
	case "stored", "delivered", "dead-lettered":
		s = where
		if e.Flush != "" {
			s += " " + e.Flush
		}
		switch {
		case e.Kind != "dead-lettered":
		case e.From == lifecycle.FromConsumer:
			// Its retries (an orderly consumer's, local) may not be in
			// Reconsume: not with halfback's client, which sends the stored count.
			s = fmt.Sprintf("group %s at its consumer's request, %s", e.Group, where)
		default:
			s = fmt.Sprintf("group %s after %d retries, %s", e.Group, max(0, e.Reconsume-1), where)
		}
		if e.Kind == "delivered" && e.Level > 0 {
			s += fmt.Sprintf(" (delay level %d)", e.Level)
		}
	case "half-stored":
		s = fmt.Sprintf("for %s, producer group %s", e.Topic, e.Group)
	case "committed", "rolled-back":
		s = "by " + e.From
		if e.Check > 0 {
			s += fmt.Sprintf(" #%d", e.Check)
		}
	case "checked-back":
		s = fmt.Sprintf("#%d, producer group %s", e.Check, e.Group)
	case "parked":
		s = fmt.Sprintf("after %d checks", e.Check)
	case "scheduled":
		s = "for " + e.Topic
		if e.Level > 0 {
			s += fmt.Sprintf(" on delay level %d", e.Level)
		}
		if !e.DueAt.IsZero() {
			s += ", due " + e.DueAt.UTC().Format("15:04:05.000")
		}
	case "sent-back":
		s = fmt.Sprintf("by group %s for retry %d", e.Group, e.Reconsume)
		if e.Level > 0 {
			s += fmt.Sprintf(" on delay level %d", e.Level)
		}
		if e.From == lifecycle.FromClient {
			s += ", sent by its consumer's client"
		}
	case "consumed":
		s = fmt.Sprintf("by group %s (%s)", e.Group, where)
	case "filtered":
		s = fmt.Sprintf("by group %s's subscription, never delivered to it (%s)", e.Group, where)
	default:
		s = where
	}
	if e.Detail != "" && e.Kind != "consumed" && e.Kind != "filtered" {
		s += "; " + e.Detail
	}
	return s
}
