package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// server is a running one-broker kfake cluster.
type server struct {
	cluster *kfake.Cluster
	// addr is the address it listens on (the port resolved).
	addr string
}

// start starts the cluster of o and creates its topics.
func start(o options, log *slog.Logger) (*server, error) {
	opts := []kfake.Opt{
		kfake.Ports(o.port), // one broker
		kfake.ListenFn(loopbackListen(o.host)),
		kfake.WithLogger(kfakeLogger{log}),
	}
	if o.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	}
	if o.dataDir != "" {
		opts = append(opts, kfake.DataDir(o.dataDir))
	}
	for _, t := range o.topics {
		opts = append(opts, kfake.SeedTopics(t.partitions, t.name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake on %s: %w", net.JoinHostPort(o.host, strconv.Itoa(o.port)), err)
	}
	s := &server{cluster: c, addr: c.ListenAddrs()[0]}
	if err := s.createMissing(o.topics, log); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// loopbackListen returns kfake's listen function: kfake always asks for
// 127.0.0.1:port; this listens on host:port instead, host being the
// loopback address of --addr. The broker advertises the address it
// listens on, so clients dial exactly that.
func loopbackListen(host string) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		return net.Listen(network, net.JoinHostPort(host, port))
	}
}

// createMissing creates the topics a cluster reloaded from --data-dir does
// not hold yet (kfake seeds topics only into a fresh data directory), and
// warns about those it holds with another partition count.
func (s *server) createMissing(topics []topicSpec, log *slog.Logger) error {
	var missing []topicSpec
	for _, t := range topics {
		if s.cluster.TopicInfo(t.name) == nil {
			missing = append(missing, t)
		} else if n := len(s.cluster.PartitionInfos(t.name)); n != int(t.partitions) {
			log.Warn("topic kept from the data directory with another partition count",
				"topic", t.name, "partitions", n, "asked", t.partitions)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "kafka-dev"
	admin, err := sarama.NewClusterAdmin([]string{s.addr}, cfg)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	defer admin.Close()
	for _, t := range missing {
		if err := admin.CreateTopic(t.name, &sarama.TopicDetail{NumPartitions: t.partitions, ReplicationFactor: 1}, false); err != nil {
			return fmt.Errorf("create topic %s: %w", t.name, err)
		}
	}
	return nil
}

// close stops the cluster; with a data directory, kfake saves its state
// there first.
func (s *server) close() { s.cluster.Close() }

// kfakeLogger passes kfake's warnings and errors to a slog logger.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		return
	}
	l.log.Log(context.Background(), sl, "kfake: "+fmt.Sprintf(format, args...))
}
