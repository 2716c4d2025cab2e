package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/internal/app"
	"github.com/halfbackmq/halfback/namesrv"
	"github.com/halfbackmq/halfback/workflows"
)

// topics are the topics the worker sends to; it creates them on its
// embedded broker, so that they exist before the first consumer asks for
// their route (and at all with broker.autoCreateTopicEnable false).
var topics = []string{workflows.TopicOrderEvents, workflows.TopicPaymentCheck}

// embedded is the broker, and the name server, the worker runs in-process
// with worker.embeddedBroker.
type embedded struct {
	ns     *namesrv.Server // nil unless namesrv.embedded
	broker *broker.Broker
	// nsAddrs are the name servers the broker registered with: the
	// embedded one's real address (its port may have been 0), else
	// broker.namesrvAddr.
	nsAddrs []string
	// stopMirror stops the Kafka mirror; nil unless mirror.kafka.enabled.
	stopMirror func() error
}

// startBroker opens the broker of the store and broker sections, with the
// name server of the namesrv section when namesrv.embedded, as `halfback
// broker` does.
func startBroker(ctx context.Context, cfg *config.Config, log *slog.Logger) (*embedded, error) {
	opts, err := cfg.BrokerOptions()
	if err != nil {
		return nil, err
	}
	opts.Logger = log
	if abs, err := filepath.Abs(opts.Store.Dir); err == nil {
		opts.Store.Dir = abs
		opts.Delay.Dir = filepath.Join(abs, "delay")
		opts.Txn.Dir = filepath.Join(abs, "txn")
	}
	e := &embedded{}
	if cfg.Namesrv.Embedded {
		e.ns, err = namesrv.Open(namesrv.Options{ListenAddr: cfg.Namesrv.ListenAddr, Logger: log,
			DisableAutoCreateTopic: !cfg.Broker.AutoCreateTopicEnable, DefaultQueueNums: cfg.Broker.DefaultTopicQueueNums})
		if err != nil {
			return nil, fmt.Errorf("embedded name server: %w", err)
		}
		opts.NamesrvAddrs = []string{e.ns.Addr()}
	}
	e.nsAddrs = opts.NamesrvAddrs
	if e.broker, err = broker.Open(opts); err != nil {
		e.Close()
		return nil, fmt.Errorf("open embedded broker in %s: %w", opts.Store.Dir, err)
	}
	if err := ensureTopics(ctx, e.broker.Addr(), cfg.Broker.DefaultTopicQueueNums); err != nil {
		e.Close()
		return nil, err
	}
	if cfg.Mirror.Kafka.Enabled {
		if e.stopMirror, err = app.StartMirror(ctx, cfg, e.nsAddrs, log); err != nil {
			e.Close()
			return nil, err
		}
	}
	log.Info("embedded broker ready", "addr", e.broker.Addr(), "namesrv", strings.Join(e.nsAddrs, ";"),
		"dataDir", opts.Store.Dir, "delayLevels", cfg.Broker.DelayLevels)
	return e, nil
}

// Close stops the Kafka mirror, closes the broker, writing its
// checkpoints, then the name server.
func (e *embedded) Close() error {
	var err error
	if e.stopMirror != nil {
		err = e.stopMirror()
	}
	if e.broker != nil {
		err = errors.Join(err, e.broker.Close())
	}
	if e.ns != nil {
		e.ns.Close()
	}
	return err
}

// ensureTopics creates those of [topics] the broker at addr lacks, with
// queues queues each; it leaves existing ones as they are.
func ensureTopics(ctx context.Context, addr string, queues int) error {
	ac, err := admin.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer ac.Close()
	have, err := ac.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics of the embedded broker: %w", err)
	}
	for _, t := range topics {
		if slices.ContainsFunc(have, func(h admin.Topic) bool { return h.Name == t }) {
			continue
		}
		if err := ac.CreateTopic(ctx, t, queues); err != nil {
			return fmt.Errorf("create topic %s on the embedded broker: %w", t, err)
		}
	}
	return nil
}
