package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/app"
)

// The admin commands (topic, send, consume, msg, group, dlq) talk to a
// running broker over the remoting protocol through internal/admin. Their
// shared flags and output helpers live in this file.

// topicStatusResult is what `topic status --json` prints.
type topicStatusResult struct {
	Topic          string              `json:"topic"`
	Queues         []admin.QueueStatus `json:"queues"`
	ConsumerGroups []string            `json:"consumerGroups"`
}

// adminOpts are the flags every admin command has.
type adminOpts struct {
	broker string
	json   bool
	// cluster and namesrv (topic and group commands): run against every
	// master broker of the cluster instead of one broker.
	cluster, namesrv string
	// In a cluster run: the broker being addressed and, with --json, the
	// answers so far.
	cur     admin.BrokerAddr
	results []clusterResult
}

// clusterResult is one broker's answer in a cluster run's JSON output.
type clusterResult struct {
	Broker string `json:"brokerName"`
	Addr   string `json:"addr"`
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// addClusterFlags declares --cluster and --namesrv on cmd and its
// subcommands.
func (o *adminOpts) addClusterFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.cluster, "cluster", "",
		"run against every master broker of this cluster, found through the name server (as mqadmin -c), instead of --broker")
	cmd.PersistentFlags().StringVar(&o.namesrv, "namesrv", "",
		namesrvFlagHelp("name servers for --cluster"))
}

// addFlags declares --broker and --json on cmd and its subcommands.
func (o *adminOpts) addFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.broker, "broker", "", "broker address, host:port (default: broker.listenAddr of the config)")
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print one JSON value for scripts instead of a table")
}

// namesrvFlagHelp is the help of a --namesrv flag: what names the name
// servers, and the default the config gives.
func namesrvFlagHelp(what string) string {
	return what + ", host:port joined by ';' (default: the config's broker's: namesrv.listenAddr with namesrv.embedded, else broker.namesrvAddr)"
}

// run returns a RunE that connects to the broker, calls f and disconnects.
// The config is read when it names the broker or when --config names a
// file (so that a missing or bad file is reported, not ignored).
func (o *adminOpts) run(f func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		if o.cluster != "" {
			return o.runCluster(ctx, cmd, f, args)
		}
		addr := o.broker
		if addr == "" || cmd.Flag(configFlag).Changed {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if addr == "" {
				addr = cfg.Broker.ListenAddr
			}
		}
		c, err := admin.Dial(ctx, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return f(ctx, cmd, c, args)
	}
}

// namesrvAddrs are --namesrv's name servers, else those the config's
// broker registers with (namesrv.listenAddr with namesrv.embedded, else
// broker.namesrvAddr).
func (o *adminOpts) namesrvAddrs(cmd *cobra.Command) ([]string, error) {
	if o.namesrv != "" && !cmd.Flag(configFlag).Changed {
		return namesrvAddrs(o.namesrv), nil
	}
	cfg, err := loadConfig(cmd) // a file named by --config is read, so that a missing or bad one is reported
	if err != nil {
		return nil, err
	}
	if o.namesrv != "" {
		return namesrvAddrs(o.namesrv), nil
	}
	return app.BrokerNamesrvAddrs(cfg), nil
}

// runCluster runs f against each master broker of o.cluster in turn. The
// table output has one section per broker; --json prints one array of
// {brokerName, addr, result or error}. A broker that fails does not stop
// the others; the command then fails naming each.
func (o *adminOpts) runCluster(ctx context.Context, cmd *cobra.Command, f func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error, args []string) error {
	if o.broker != "" {
		return fmt.Errorf("--broker and --cluster exclude each other")
	}
	ns, err := o.namesrvAddrs(cmd)
	if err != nil {
		return err
	}
	brokers, err := admin.ClusterBrokers(ctx, ns, o.cluster)
	if err != nil {
		return err
	}
	o.results = nil
	var failed []string
	for _, b := range brokers {
		o.cur = b
		if !o.json {
			fmt.Fprintf(cmd.OutOrStdout(), "== %s (%s)\n", b.Name, b.Addr)
		}
		err := func() error {
			if b.Addr == "" {
				return fmt.Errorf("no master registered with the name server")
			}
			c, err := admin.Dial(ctx, b.Addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return f(ctx, cmd, c, args)
		}()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", b.Name, err))
			if n := len(o.results); o.json && n > 0 && o.results[n-1].Broker == b.Name {
				o.results[n-1].Error = err.Error() // it printed a result, then failed
			} else if o.json {
				o.results = append(o.results, clusterResult{Broker: b.Name, Addr: b.Addr, Error: err.Error()})
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "error: %v\n", err)
			}
		}
		if !o.json {
			fmt.Fprintln(cmd.OutOrStdout())
		}
	}
	if o.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(o.results); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d brokers of %s failed: %s", len(failed), len(brokers), o.cluster, strings.Join(failed, "; "))
	}
	return nil
}

// atLeastOne is a PreRunE refusing a --max below 1 before the broker is
// dialled (a bad flag is then reported as such, broker or not).
func atLeastOne(max *int) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		if *max < 1 {
			return fmt.Errorf("--max %d: want at least 1", *max)
		}
		return nil
	}
}

// print writes v as one JSON value with --json, else calls table with a
// tabwriter that is flushed afterwards.
func (o *adminOpts) print(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	if o.json && o.cluster != "" {
		o.results = append(o.results, clusterResult{Broker: o.cur.Name, Addr: o.cur.Addr, Result: v})
		return nil
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printMessages writes messages as a table, one line each.
func printMessages(w io.Writer, msgs []admin.Message) {
	fmt.Fprintln(w, "TOPIC\tQUEUE\tOFFSET\tMSG ID\tOFFSET MSG ID\tTAGS\tKEYS\tRECONSUME\tBODY")
	for _, m := range msgs {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Topic, m.QueueID, m.QueueOffset, m.MsgID, m.OffsetMsgID,
			m.Tags, strings.Join(m.Keys, ","), m.ReconsumeTimes, bodyPreview(m))
	}
}

// bodyPreview is a one-line excerpt of a message body for tables.
func bodyPreview(m admin.Message) string {
	const limit = 60
	if m.BodyBase64 != "" {
		return fmt.Sprintf("(%d bytes, binary)", len(m.Ext().Body))
	}
	s := strings.Join(strings.Fields(m.Body), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "..."
	}
	return s
}

// permString renders topic permission bits as r, w, rw or -.
func permString(perm int) string {
	s := ""
	if perm&admin.PermRead != 0 {
		s += "r"
	}
	if perm&admin.PermWrite != 0 {
		s += "w"
	}
	if s == "" {
		s = "-"
	}
	return s
}

func newTopicCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list and delete topics on a running broker",
	}
	o.addFlags(cmd)
	o.addClusterFlags(cmd)
	var queues int
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic (or change its queue count)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			if err := c.CreateTopic(ctx, args[0], queues); err != nil {
				return err
			}
			return o.print(cmd, map[string]any{"topic": args[0], "queues": queues, "created": true}, func(w io.Writer) {
				fmt.Fprintf(w, "created topic %s with %d queues\n", args[0], queues)
			})
		}),
	}
	create.Flags().IntVar(&queues, "queues", 4, "read and write queue count")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the broker's topics (with the schedule and timer topics; not the transaction topics)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			topics, err := c.ListTopics(ctx)
			if err != nil {
				return err
			}
			return o.print(cmd, topics, func(w io.Writer) {
				fmt.Fprintln(w, "TOPIC\tREAD QUEUES\tWRITE QUEUES\tPERM\tORDER")
				for _, t := range topics {
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%t\n", t.Name, t.ReadQueueNums, t.WriteQueueNums, permString(t.Perm), t.Order)
				}
			})
		}),
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic: its consume queues and every group's offsets on it (stored messages age out with retention)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			if err := c.DeleteTopic(ctx, args[0]); err != nil {
				return err
			}
			return o.print(cmd, map[string]any{"topic": args[0], "deleted": true}, func(w io.Writer) {
				fmt.Fprintf(w, "deleted topic %s\n", args[0])
			})
		}),
	}
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show every queue of a topic: its oldest and newest offsets and when it last got a message",
		Long: `Show every queue of a topic (GET_TOPIC_STATS_INFO, as mqadmin topicStatus):
MIN OFFSET is the oldest message retention kept, MAX OFFSET one past the
newest, MESSAGES the difference, LAST STORED the store time of the newest.
Then the consumer groups of the topic (QUERY_TOPIC_CONSUME_BY_WHO): those
online that subscribe to it and those with offsets committed on it
("group offsets GROUP" shows each one's lag).`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, args []string) error {
			queues, err := c.TopicStatus(ctx, args[0])
			if err != nil {
				return err
			}
			groups, err := c.TopicConsumers(ctx, args[0])
			if err != nil {
				return err
			}
			res := topicStatusResult{Topic: args[0], Queues: queues, ConsumerGroups: groups}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "QUEUE\tMIN OFFSET\tMAX OFFSET\tMESSAGES\tLAST STORED")
				var total int64
				for _, q := range queues {
					last := "-"
					if q.LastUpdated > 0 {
						last = time.UnixMilli(q.LastUpdated).Format(time.RFC3339)
					}
					total += q.MaxOffset - q.MinOffset
					fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%s\n", q.QueueID, q.MinOffset, q.MaxOffset, q.MaxOffset-q.MinOffset, last)
				}
				fmt.Fprintf(w, "\n%d messages kept in %d queues of %s\n", total, len(queues), args[0])
				if len(groups) == 0 {
					fmt.Fprintln(w, "consumed by no group")
				} else {
					fmt.Fprintf(w, "consumed by %s\n", strings.Join(groups, ", "))
				}
			})
		}),
	}
	cmd.AddCommand(create, list, del, status)
	return cmd
}
