package config

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/txn"
)

// BrokerOptions returns the network broker's options: the store and the
// delay scheduler as StoreOptions and DelayOptions say, the listen address,
// and the name servers to register with (broker.namesrvAddr, split on ';').
// Logger is left for the caller.
func (c *Config) BrokerOptions() (broker.Options, error) {
	so, err := c.StoreOptions()
	if err != nil {
		return broker.Options{}, err
	}
	do, err := c.DelayOptions()
	if err != nil {
		return broker.Options{}, err
	}
	var ns []string
	for _, a := range strings.Split(c.Broker.NamesrvAddr, ";") {
		if a = strings.TrimSpace(a); a != "" {
			ns = append(ns, a)
		}
	}
	return broker.Options{Store: so, Delay: do, Txn: c.TxnOptions(), ListenAddr: c.Broker.ListenAddr, AdvertiseAddr: c.Broker.AdvertiseAddr,
		BrokerName: c.Broker.BrokerName, ClusterName: c.Broker.ClusterName, NamesrvAddrs: ns,
		DisableAutoCreateTopic: !c.Broker.AutoCreateTopicEnable, DefaultQueueNums: c.Broker.DefaultTopicQueueNums,
		DisableAutoCreateSubscriptionGroup: !c.Broker.AutoCreateSubscriptionGroup,
		EnablePropertyFilter:               c.Broker.EnablePropertyFilter,
		AccessMessageInMemoryMaxRatio:      c.Broker.AccessMessageInMemoryMaxRatio,
		MaxInFlightBytes:                   c.Broker.MaxInFlightBytes,
		ClientSideResetOffset:              !c.Broker.UseServerSideResetOffset}, nil
}

// TxnOptions returns the transaction service's options: its state lives in
// the data directory's "txn" folder, and it checkpoints as often as the
// store does.
func (c *Config) TxnOptions() txn.Options {
	return txn.Options{
		Dir:                filepath.Join(c.Store.DataDir, "txn"),
		Timeout:            c.Broker.TransactionTimeout,
		CheckInterval:      c.Broker.TransactionCheckInterval,
		CheckMax:           c.Broker.TransactionCheckMax,
		CheckpointInterval: time.Duration(c.Store.CheckpointIntervalMs) * time.Millisecond,
	}
}
