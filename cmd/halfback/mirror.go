package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/mirror"
)

func newMirrorCmd() *cobra.Command {
	var namesrv string
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Run the Kafka mirror alone (and show its lag with `mirror status`)",
		Long: `Run the Kafka mirror of the mirror.kafka section until SIGINT or SIGTERM,
as a process of its own: it consumes the mapped topics (mirror.kafka.topics)
from the brokers of the config's name server (namesrv.listenAddr with
namesrv.embedded, where "halfback broker" runs it, else broker.namesrvAddr;
--namesrv overrides) as the consumer group
mirror.kafka.group and produces every committed message to Kafka
(mirror.kafka.brokers) with the idempotent producer, acks=all, committing
its offsets only after Kafka acknowledged the records. It runs whatever
mirror.kafka.enabled says (that key starts the mirror inside the broker);
several mirrors of one group share the queues.

While Kafka is down the mirror retries with back-off and its lag grows:
see 'halfback mirror status'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if _, err := cfg.MirrorOptions(); err != nil {
				return err
			}
			addrs := app.BrokerNamesrvAddrs(cfg)
			if namesrv != "" {
				addrs = namesrvAddrs(namesrv)
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log.SlogLevel())
			ctx := cmd.Context()
			stopTelemetry, err := app.SetupTelemetry(ctx, cfg, config.ServiceMirror, log)
			if err != nil {
				return err
			}
			defer stopTelemetry()
			stop, err := app.StartMirror(ctx, cfg, addrs, log)
			if err != nil {
				return err
			}
			log.Info("halfback mirror ready", "namesrv", strings.Join(addrs, ";"), "kafka", cfg.Mirror.Kafka.Brokers,
				"topics", cfg.Mirror.Kafka.Topics, "group", cfg.Mirror.Kafka.Group)
			<-ctx.Done()
			err = stop()
			log.Info("halfback mirror stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&namesrv, "namesrv", "", namesrvFlagHelp("name servers"))
	cmd.AddCommand(newMirrorStatusCmd())
	return cmd
}

// namesrvAddrs splits a ';'-separated list of name servers.
func namesrvAddrs(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ";") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// mirrorStatus is what `mirror status --json` prints.
type mirrorStatus struct {
	Group  string              `json:"group"`
	Lag    int64               `json:"lag"`
	Topics []mirrorTopicStatus `json:"topics"`
}

type mirrorTopicStatus struct {
	Topic      string                `json:"topic"`
	KafkaTopic string                `json:"kafkaTopic"`
	Lag        int64                 `json:"lag"`
	Queues     []admin.QueueProgress `json:"queues"`
}

func newMirrorStatusCmd() *cobra.Command {
	var o adminOpts
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show how far the Kafka mirror is behind, per mapped topic and queue",
		Long: `Show, for every topic of mirror.kafka.topics, the Kafka topic it goes to and,
per queue, the broker's max offset, the offset the mirror's group
(mirror.kafka.group) has committed (only after Kafka acknowledged the
records), the lag between them and the store time of the last message it
consumed there (as RocketMQ's lastTimestamp). A
lag that grows while messages keep arriving means the mirror is stopped or
Kafka is down (the mirror logs why). It asks one broker (--broker, else the
config's); --cluster asks every master broker of a cluster in turn.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, cmd *cobra.Command, c *admin.Client, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			topics, err := mirror.ParseTopics(cfg.Mirror.Kafka.Topics)
			switch {
			case err != nil:
				return fmt.Errorf("mirror.kafka.topics: %w", err)
			case len(topics) == 0:
				return errors.New("mirror.kafka.topics is empty: no mirrored topic to show (set it in the config or HALFBACK_MIRROR_KAFKA_TOPICS)")
			}
			// The group the mirror runs as (MirrorOptions trims it, and
			// an empty one is the default).
			group := strings.TrimSpace(cfg.Mirror.Kafka.Group)
			if group == "" {
				group = mirror.DefaultGroup
			}
			queues, err := c.GroupOffsets(ctx, group)
			if err != nil {
				return err
			}
			res := mirrorStatus{Group: group}
			for _, t := range topics {
				ts := mirrorTopicStatus{Topic: t.RocketMQ, KafkaTopic: t.Kafka, Queues: []admin.QueueProgress{}}
				for _, q := range queues {
					if q.Topic == t.RocketMQ {
						ts.Queues = append(ts.Queues, q)
						ts.Lag += q.Lag
					}
				}
				if len(ts.Queues) == 0 { // the group has not consumed it yet: everything is behind
					if ts.Queues, err = unconsumedQueues(ctx, c, t.RocketMQ); err != nil {
						return err
					}
					for _, q := range ts.Queues {
						ts.Lag += q.Lag
					}
				}
				res.Lag += ts.Lag
				res.Topics = append(res.Topics, ts)
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "TOPIC\tKAFKA TOPIC\tQUEUE\tBROKER OFFSET\tMIRRORED OFFSET\tLAG\tLAST MIRRORED")
				for _, t := range res.Topics {
					if len(t.Queues) == 0 {
						fmt.Fprintf(w, "%s\t%s\t-\t-\t-\t0\tno such topic on this broker (yet)\n", t.Topic, t.KafkaTopic)
					}
					for _, q := range t.Queues {
						last := "-"
						if q.LastTimestamp > 0 {
							last = time.UnixMilli(q.LastTimestamp).Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Topic, t.KafkaTopic, q.QueueID, q.BrokerOffset, q.ConsumerOffset, q.Lag, last)
					}
				}
				fmt.Fprintf(w, "\ngroup %s: total lag %d over %d topics\n", group, res.Lag, len(res.Topics))
			})
		}),
	}
	o.addFlags(cmd)
	o.addClusterFlags(cmd)
	return cmd
}

// unconsumedQueues lists a topic's queues as a group that has consumed
// nothing sees them (GET_TOPIC_STATS_INFO): consumer offset 0, every kept
// message behind. A topic the broker does not have yet has no queue.
func unconsumedQueues(ctx context.Context, c *admin.Client, topic string) ([]admin.QueueProgress, error) {
	qs, err := c.TopicStatus(ctx, topic)
	if err != nil {
		if be := (*admin.BrokerError)(nil); errors.As(err, &be) {
			return []admin.QueueProgress{}, nil
		}
		return nil, err
	}
	out := []admin.QueueProgress{}
	for _, q := range qs {
		out = append(out, admin.QueueProgress{Topic: topic, Broker: q.Broker, QueueID: q.QueueID,
			BrokerOffset: q.MaxOffset, MinOffset: q.MinOffset, Lag: q.MaxOffset - q.MinOffset})
	}
	return out, nil
}
