package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/IBM/sarama"

	"github.com/halfbackmq/halfback/internal/app"
)

// Defaults of the flags.
const (
	DefaultBrokers = "127.0.0.1:9092"
	DefaultTopic   = "order-events"
	DefaultGroup   = "coupon-analytics"
	DefaultTag     = "OrderPaid"
)

// ServiceName is the service.name of the consumer's spans with --config.
const ServiceName = "halfback-kafka-consumer"

// errUsage is wrapped by every error about the command line.
var errUsage = app.ErrUsage

func main() { app.Main("kafka-consumer", run) }

// options are the parsed flags.
type options struct {
	brokers []string
	topic   string
	group   string
	// tag is the TAGS header value to keep; "" keeps every record.
	tag string
	// initial is sarama.OffsetOldest or OffsetNewest.
	initial int64
	// max stops the consumer after that many printed records; 0: never.
	max int
	// config is the config file for telemetry; "" sets none up.
	config string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("kafka-consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	brokers := fs.String("brokers", DefaultBrokers, "Kafka bootstrap brokers, host:port,host:port")
	fs.StringVar(&o.topic, "topic", DefaultTopic, "Kafka topic to read (the mirror's target topic)")
	fs.StringVar(&o.group, "group", DefaultGroup, "Kafka consumer group")
	fs.StringVar(&o.tag, "tag", DefaultTag, `print only records whose TAGS header is this; "" prints all`)
	from := fs.String("from", "oldest", "where a group without committed offsets starts: oldest or newest")
	fs.IntVar(&o.max, "max", 0, "stop after printing this many records; 0 runs until SIGINT or SIGTERM")
	fs.StringVar(&o.config, "config", "", "config file whose telemetry section exports the spans; empty: no exporter")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	for b := range strings.SplitSeq(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.brokers = append(o.brokers, b)
		}
	}
	switch {
	case len(o.brokers) == 0:
		return o, fmt.Errorf("%w: --brokers is empty", errUsage)
	case strings.TrimSpace(o.topic) == "":
		return o, fmt.Errorf("%w: --topic is empty", errUsage)
	case strings.TrimSpace(o.group) == "":
		return o, fmt.Errorf("%w: --group is empty", errUsage)
	case o.max < 0:
		return o, fmt.Errorf("%w: --max %d is negative", errUsage, o.max)
	}
	switch *from {
	case "oldest":
		o.initial = sarama.OffsetOldest
	case "newest":
		o.initial = sarama.OffsetNewest
	default:
		return o, fmt.Errorf("%w: --from %q: want oldest or newest", errUsage, *from)
	}
	return o, nil
}

// run is main with its arguments and outputs: it consumes until ctx is
// done or --max records were printed, commits and returns. A bad flag is
// an error wrapping errUsage (flag.ErrHelp for --help).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, slog.LevelInfo)
	if o.config != "" {
		cfg, err := app.LoadConfig(o.config, true)
		if err != nil {
			return err
		}
		log = app.NewLogger(stderr, cfg.Log.SlogLevel())
		stopTelemetry, err := app.SetupTelemetry(ctx, cfg, ServiceName, log)
		if err != nil {
			return err
		}
		defer stopTelemetry()
	}
	return consume(ctx, o, stdout, log)
}

// consume runs the consumer group of o until ctx is done or o.max records
// were printed to out.
func consume(ctx context.Context, o options, out io.Writer, log *slog.Logger) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "halfback-kafka-consumer"
	cfg.Consumer.Offsets.Initial = o.initial
	cfg.Consumer.Return.Errors = true
	group, err := sarama.NewConsumerGroup(o.brokers, o.group, cfg)
	if err != nil {
		return fmt.Errorf("consumer group %s of %s: %w", o.group, strings.Join(o.brokers, ","), err)
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range group.Errors() {
			log.Warn("consumer group", "group", o.group, "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := newHandler(o, out, cancel, log)
	log.Info("kafka consumer ready", "brokers", strings.Join(o.brokers, ","), "topic", o.topic, "group", o.group, "tag", o.tag)
	for ctx.Err() == nil {
		// Consume returns at each rebalance; the loop joins the next one.
		if err = group.Consume(ctx, []string{o.topic}, h); err != nil {
			break
		}
	}
	closeErr := group.Close() // commits the offsets marked since the last commit
	<-errsDone
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("consume %s as %s: %w", o.topic, o.group, err)
	}
	if closeErr != nil {
		return fmt.Errorf("close consumer group %s: %w", o.group, closeErr)
	}
	return nil
}
