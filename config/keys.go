package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/mirror"
)

// key describes one config key. keys is the single list of known keys: Load
// registers each default with viper (so an environment override works for a
// key the file leaves out), rejects any key not listed, and names the key
// whose value cannot be decoded.
type key struct {
	path  string            // as written in config.yaml, e.g. "store.segmentSize"
	def   any               // built-in default; config.yaml ships the same values
	want  string            // what a valid value looks like, for error messages
	field func(*Config) any // pointer to the field the key decodes into
}

var keys = []key{
	{"store.dataDir", "./data", "a directory path",
		func(c *Config) any { return &c.Store.DataDir }},
	{"store.flushType", "SYNC_FLUSH", "SYNC_FLUSH or ASYNC_FLUSH",
		func(c *Config) any { return &c.Store.FlushType }},
	{"store.segmentSize", int64(store.DefaultSegmentSize), "a whole number of bytes",
		func(c *Config) any { return &c.Store.SegmentSize }},
	{"store.syncFlushTimeout", store.DefaultSyncFlushTimeout, "a duration such as 5s or 500ms",
		func(c *Config) any { return &c.Store.SyncFlushTimeout }},
	{"store.flushIntervalMs", int(store.DefaultFlushInterval / time.Millisecond), "a whole number of milliseconds",
		func(c *Config) any { return &c.Store.FlushIntervalMs }},
	{"store.checkpointIntervalMs", int(store.DefaultCheckpointInterval / time.Millisecond), "a whole number of milliseconds",
		func(c *Config) any { return &c.Store.CheckpointIntervalMs }},
	{"store.queueEntriesPerFile", store.DefaultQueueEntriesPerFile, "a whole number of entries",
		func(c *Config) any { return &c.Store.QueueEntriesPerFile }},
	{"store.fileReservedHours", int(store.DefaultFileReserved / time.Hour), "a whole number of hours",
		func(c *Config) any { return &c.Store.FileReservedHours }},
	{"store.diskMaxUsedRatio", store.DefaultDiskMaxUsedRatio, "a number from 0 to 1",
		func(c *Config) any { return &c.Store.DiskMaxUsedRatio }},
	{"store.diskFullRatio", store.DefaultDiskFullRatio, "a number from 0 to 1",
		func(c *Config) any { return &c.Store.DiskFullRatio }},
	{"store.maxMessageSize", store.DefaultMaxMessageSize, "a whole number of bytes",
		func(c *Config) any { return &c.Store.MaxMessageSize }},
	{"broker.listenAddr", "127.0.0.1:10911", "host:port",
		func(c *Config) any { return &c.Broker.ListenAddr }},
	{"broker.advertiseAddr", "", "empty, or host:port that clients can dial",
		func(c *Config) any { return &c.Broker.AdvertiseAddr }},
	{"broker.brokerName", broker.DefaultBrokerName, "letters, digits, '.', '_' and '-'",
		func(c *Config) any { return &c.Broker.BrokerName }},
	{"broker.clusterName", broker.DefaultClusterName, "letters, digits, '.', '_' and '-'",
		func(c *Config) any { return &c.Broker.ClusterName }},
	{"broker.namesrvAddr", "127.0.0.1:9876", "host:port, or several joined by ';'",
		func(c *Config) any { return &c.Broker.NamesrvAddr }},
	{"broker.delayLevels", delay.DefaultLevels, "space-separated positive durations such as \"1s 5s 1m\"",
		func(c *Config) any { return &c.Broker.DelayLevels }},
	{"broker.timerMaxDelay", delay.DefaultMaxDelay, "a positive duration such as 72h",
		func(c *Config) any { return &c.Broker.TimerMaxDelay }},
	{"broker.autoCreateTopicEnable", true, "true or false",
		func(c *Config) any { return &c.Broker.AutoCreateTopicEnable }},
	{"broker.autoCreateSubscriptionGroup", true, "true or false",
		func(c *Config) any { return &c.Broker.AutoCreateSubscriptionGroup }},
	{"broker.enablePropertyFilter", true, "true or false",
		func(c *Config) any { return &c.Broker.EnablePropertyFilter }},
	{"broker.defaultTopicQueueNums", 4, "a whole number of queues from 1 to 1024",
		func(c *Config) any { return &c.Broker.DefaultTopicQueueNums }},
	{"broker.accessMessageInMemoryMaxRatio", broker.DefaultAccessMessageInMemoryMaxRatio, "a number from 0 to 1",
		func(c *Config) any { return &c.Broker.AccessMessageInMemoryMaxRatio }},
	{"broker.maxInFlightBytes", int64(remoting.DefaultMaxInFlightBytes), "a whole number of bytes",
		func(c *Config) any { return &c.Broker.MaxInFlightBytes }},
	{"broker.useServerSideResetOffset", true, "true or false",
		func(c *Config) any { return &c.Broker.UseServerSideResetOffset }},
	{"broker.transactionTimeout", txn.DefaultTimeout, "a positive duration such as 6s",
		func(c *Config) any { return &c.Broker.TransactionTimeout }},
	{"broker.transactionCheckInterval", txn.DefaultCheckInterval, "a positive duration such as 30s",
		func(c *Config) any { return &c.Broker.TransactionCheckInterval }},
	{"broker.transactionCheckMax", txn.DefaultCheckMax, "a whole number of checks, at least 1",
		func(c *Config) any { return &c.Broker.TransactionCheckMax }},
	{"namesrv.listenAddr", "127.0.0.1:9876", "host:port",
		func(c *Config) any { return &c.Namesrv.ListenAddr }},
	{"namesrv.embedded", true, "true or false",
		func(c *Config) any { return &c.Namesrv.Embedded }},
	{"log.level", "info", "debug, info, warn or error",
		func(c *Config) any { return &c.Log.Level }},
	{"temporal.hostPort", DefaultTemporalHostPort, "host:port",
		func(c *Config) any { return &c.Temporal.HostPort }},
	{"temporal.namespace", DefaultTemporalNamespace, "a namespace name",
		func(c *Config) any { return &c.Temporal.Namespace }},
	{"temporal.taskQueue", DefaultTaskQueue, "a task queue name",
		func(c *Config) any { return &c.Temporal.TaskQueue }},
	{"payment.checkLevel", DefaultPaymentCheckLevel, "a whole number: a delay level of broker.delayLevels",
		func(c *Config) any { return &c.Payment.CheckLevel }},
	{"payment.maxChecks", DefaultPaymentMaxChecks, "a whole number of checks, from 1 to 500",
		func(c *Config) any { return &c.Payment.MaxChecks }},
	{"orders.driver", DefaultOrdersDriver, "sqlite",
		func(c *Config) any { return &c.Orders.Driver }},
	{"orders.dsn", "", "a data source name, or empty for orders.db in store.dataDir",
		func(c *Config) any { return &c.Orders.DSN }},
	{"worker.embeddedBroker", true, "true or false",
		func(c *Config) any { return &c.Worker.EmbeddedBroker }},
	{"telemetry.exporter", DefaultTelemetryExporter, "otlp, stdout, file or none",
		func(c *Config) any { return &c.Telemetry.Exporter }},
	{"telemetry.endpoint", "", "host:port or an http(s) URL, or empty for the exporter's default",
		func(c *Config) any { return &c.Telemetry.Endpoint }},
	{"telemetry.protocol", DefaultTelemetryProtocol, "grpc or http",
		func(c *Config) any { return &c.Telemetry.Protocol }},
	{"telemetry.file", "", "a file path",
		func(c *Config) any { return &c.Telemetry.File }},
	{"telemetry.serviceName", "", "a service name, or empty for the process's own",
		func(c *Config) any { return &c.Telemetry.ServiceName }},
	{"telemetry.resourceAttributes", "", "key=value pairs joined by ','",
		func(c *Config) any { return &c.Telemetry.ResourceAttributes }},
	{"telemetry.sampleRatio", DefaultTelemetrySampleRatio, "a number from 0 to 1",
		func(c *Config) any { return &c.Telemetry.SampleRatio }},
	{"telemetry.metricsAddr", "", "host:port, or empty for no metrics endpoint",
		func(c *Config) any { return &c.Telemetry.MetricsAddr }},
	{"mirror.kafka.enabled", false, "true or false",
		func(c *Config) any { return &c.Mirror.Kafka.Enabled }},
	{"mirror.kafka.brokers", "", "host:port of Kafka brokers joined by ','",
		func(c *Config) any { return &c.Mirror.Kafka.Brokers }},
	{"mirror.kafka.topics", "", "rocketmq-topic=kafka-topic pairs joined by ','",
		func(c *Config) any { return &c.Mirror.Kafka.Topics }},
	{"mirror.kafka.group", mirror.DefaultGroup, "a consumer group name",
		func(c *Config) any { return &c.Mirror.Kafka.Group }},
	{"mirror.kafka.clientId", mirror.DefaultClientID, "a Kafka client.id",
		func(c *Config) any { return &c.Mirror.Kafka.ClientID }},
	{"mirror.kafka.version", mirror.DefaultKafkaVersion, "a Kafka version such as 2.8.0 (at least 0.11.0.0)",
		func(c *Config) any { return &c.Mirror.Kafka.Version }},
	{"mirror.kafka.requiredAcks", mirror.AcksAll, "all or leader",
		func(c *Config) any { return &c.Mirror.Kafka.RequiredAcks }},
	{"mirror.kafka.compression", mirror.CompressionNone, "none, gzip, snappy, lz4 or zstd",
		func(c *Config) any { return &c.Mirror.Kafka.Compression }},
	{"mirror.kafka.startFrom", mirror.StartLast, "last or first",
		func(c *Config) any { return &c.Mirror.Kafka.StartFrom }},
	{"mirror.kafka.batchSize", mirror.DefaultBatchSize, "a whole number of messages from 1 to 1024",
		func(c *Config) any { return &c.Mirror.Kafka.BatchSize }},
	{"mirror.kafka.minBackoff", mirror.DefaultMinBackoff, "a positive duration such as 100ms",
		func(c *Config) any { return &c.Mirror.Kafka.MinBackoff }},
	{"mirror.kafka.maxBackoff", mirror.DefaultMaxBackoff, "a positive duration such as 10s",
		func(c *Config) any { return &c.Mirror.Kafka.MaxBackoff }},
	{"mirror.kafka.dialTimeout", mirror.DefaultDialTimeout, "a positive duration such as 5s",
		func(c *Config) any { return &c.Mirror.Kafka.DialTimeout }},
	{"mirror.kafka.produceTimeout", mirror.DefaultProduceTimeout, "a positive duration such as 10s",
		func(c *Config) any { return &c.Mirror.Kafka.ProduceTimeout }},
	{"mirror.kafka.maxMessageBytes", mirror.DefaultMaxMessageBytes, "a whole number of bytes",
		func(c *Config) any { return &c.Mirror.Kafka.MaxMessageBytes }},
	{"mirror.kafka.sasl.mechanism", "", "empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
		func(c *Config) any { return &c.Mirror.Kafka.SASL.Mechanism }},
	{"mirror.kafka.sasl.user", "", "a user name",
		func(c *Config) any { return &c.Mirror.Kafka.SASL.User }},
	{"mirror.kafka.sasl.password", "", "a password",
		func(c *Config) any { return &c.Mirror.Kafka.SASL.Password }},
	{"mirror.kafka.tls.enabled", false, "true or false",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.Enabled }},
	{"mirror.kafka.tls.caFile", "", "a PEM file path, or empty for the system's CAs",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.CAFile }},
	{"mirror.kafka.tls.certFile", "", "a PEM file path",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.CertFile }},
	{"mirror.kafka.tls.keyFile", "", "a PEM file path",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.KeyFile }},
	{"mirror.kafka.tls.serverName", "", "a host name, or empty",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.ServerName }},
	{"mirror.kafka.tls.insecureSkipVerify", false, "true or false",
		func(c *Config) any { return &c.Mirror.Kafka.TLS.InsecureSkipVerify }},
}

// keyNode is a section, a subsection (mirror.kafka, mirror.kafka.sasl) or
// a key of the tree that checkKeys walks.
type keyNode struct {
	path     string              // as config.yaml spells it, e.g. "mirror.kafka"
	children map[string]*keyNode // by lower-case name; nil for a key
}

// tree holds every known key under its sections, built from keys.
var tree = func() *keyNode {
	root := &keyNode{children: map[string]*keyNode{}}
	for _, k := range keys {
		n := root
		parts := strings.Split(k.path, ".")
		for i, part := range parts {
			lname := strings.ToLower(part)
			c := n.children[lname]
			if c == nil {
				c = &keyNode{path: strings.Join(parts[:i+1], ".")}
				if i < len(parts)-1 {
					c.children = map[string]*keyNode{}
				}
				n.children[lname] = c
			}
			n = c
		}
	}
	return root
}()

// checkKeys rejects sections and keys of the parsed file raw that halfback
// does not know, and keys given twice in different case, naming them as the
// file spells them.
func checkKeys(raw map[string]any, file string) error {
	return checkNode(tree, "", raw, file)
}

// checkNode checks the mapping body found at prefix ("" for the file's top
// level) against the known node n.
func checkNode(n *keyNode, prefix string, body map[string]any, file string) error {
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(body)) {
		lname := strings.ToLower(name)
		full := name
		if prefix != "" {
			full = prefix + "." + name
		}
		c, ok := n.children[lname]
		switch {
		case !ok && prefix == "":
			return &KeyError{Key: name, Err: ErrUnknownKey, Detail: fmt.Sprintf(
				"unknown section in %s (known sections: %s)", file, knownNames(n))}
		case !ok:
			return &KeyError{Key: full, Err: ErrUnknownKey, Detail: fmt.Sprintf(
				"unknown key in %s (%s has: %s)", file, prefix, knownNames(n))}
		}
		if prev, dup := seen[lname]; dup {
			return invalid(full, fmt.Sprintf("given twice in %s (also as %q; keys are case-insensitive)", file, prev))
		}
		seen[lname] = name
		if c.children == nil && body[name] == nil {
			return invalid(full, fmt.Sprintf("has no value in %s (delete the line for the default, or write \"\" for an empty string)", file))
		}
		if c.children == nil || body[name] == nil {
			continue // a key, or an empty section
		}
		sub, ok := body[name].(map[string]any)
		if !ok {
			return invalid(full, fmt.Sprintf("must be a mapping of keys, got %s", describe(body[name])))
		}
		if err := checkNode(c, full, sub, file); err != nil {
			return err
		}
	}
	return nil
}

// knownNames lists a node's children as config.yaml spells them.
func knownNames(n *keyNode) string {
	names := make([]string, 0, len(n.children))
	for _, c := range n.children {
		names = append(names, c.path[strings.LastIndex(c.path, ".")+1:])
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// describe formats a raw value for an error message.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}

var durationType = reflect.TypeFor[time.Duration]()

// decodeHook converts a value from YAML, the environment (always a string)
// or a default into its field's type, strictly: no silent truncation of
// 1.5 to 1, no bare number read as nanoseconds, no bool read as 1.
func decodeHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to == durationType {
		switch d := data.(type) {
		case time.Duration:
			return d, nil
		case string:
			return time.ParseDuration(strings.TrimSpace(d))
		}
		return nil, fmt.Errorf("want a duration string, got %T", data)
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		switch d := data.(type) {
		case string:
			return strconv.ParseInt(strings.TrimSpace(d), 10, 64)
		case float64:
			if d != math.Trunc(d) || math.Abs(d) >= math.MaxInt64 {
				return nil, fmt.Errorf("%v is not a whole number", d)
			}
			return int64(d), nil
		}
	case reflect.Float64:
		if s, ok := data.(string); ok {
			return strconv.ParseFloat(strings.TrimSpace(s), 64)
		}
	case reflect.Bool:
		if s, ok := data.(string); ok { // the environment: true, false, 1, 0, ...
			return strconv.ParseBool(strings.TrimSpace(s))
		}
	}
	return data, nil
}

// checkEnv rejects an environment variable that looks like an override of
// a section's key (HALFBACK_<SECTION>_..., in any case) but would not be
// read, so that it stops startup instead of leaving the file's value in
// force: one naming no key (HALFBACK_STORE_FLUSHTYP), and one naming a key
// in other than upper case (HALFBACK_store_flushtype), since variable
// names are case-sensitive and only HALFBACK_STORE_FLUSHTYPE is read.
// Variables whose second word is no section (HALFBACK_TEST_LOG) are not
// overrides and are left alone.
func checkEnv(environ []string) error {
	known := map[string]string{} // variable name -> key path
	sections := map[string]string{}
	for _, k := range keys {
		known[envName(k.path)] = k.path
		sec, _, _ := strings.Cut(k.path, ".")
		sections[envName(sec)+"_"] = sec
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if _, ok := known[name]; ok {
			continue
		}
		// HALFBACK_<SECTION> alone: viper's AutomaticEnv would read it as
		// shadowing the whole section, every key of which then reads as
		// unset (the file's values and the defaults dropped).
		if sec, ok := sections[upper+"_"]; ok {
			return &KeyError{Key: name, Err: ErrUnknownKey, Detail: fmt.Sprintf(
				"environment variable names section %s, not a key (an override is %s_<KEY>)", sec, upper)}
		}
		if path, ok := known[upper]; ok {
			return &KeyError{Key: name, Err: ErrUnknownKey, Detail: fmt.Sprintf(
				"environment variable is not read: names are case-sensitive and the override of %s is %s", path, upper)}
		}
		for prefix, sec := range sections {
			if strings.HasPrefix(upper, prefix) {
				return &KeyError{Key: name, Err: ErrUnknownKey, Detail: fmt.Sprintf(
					"environment variable names no key of section %s (an override is %s<KEY>, "+
						"the key's path in config.yaml in upper case with '_' for '.')", sec, prefix)}
			}
		}
	}
	return nil
}

// envName is the environment variable that overrides the key at path.
func envName(path string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}
