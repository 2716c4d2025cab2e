package config

import (
	"strings"

	"github.com/halfbackmq/halfback/broker"
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
	return broker.Options{Store: so, Delay: do, ListenAddr: c.Broker.ListenAddr, NamesrvAddrs: ns,
		DisableAutoCreateTopic: !c.Broker.AutoCreateTopicEnable, DefaultQueueNums: c.Broker.DefaultTopicQueueNums}, nil
}
