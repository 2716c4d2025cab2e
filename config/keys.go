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

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
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
	{"store.maxMessageSize", store.DefaultMaxMessageSize, "a whole number of bytes",
		func(c *Config) any { return &c.Store.MaxMessageSize }},
	{"broker.listenAddr", "127.0.0.1:10911", "host:port",
		func(c *Config) any { return &c.Broker.ListenAddr }},
	{"broker.namesrvAddr", "127.0.0.1:9876", "host:port, or several joined by ';'",
		func(c *Config) any { return &c.Broker.NamesrvAddr }},
	{"broker.delayLevels", delay.DefaultLevels, "space-separated positive durations such as \"1s 5s 1m\"",
		func(c *Config) any { return &c.Broker.DelayLevels }},
	{"broker.timerMaxDelay", delay.DefaultMaxDelay, "a duration such as 72h",
		func(c *Config) any { return &c.Broker.TimerMaxDelay }},
	{"broker.autoCreateTopicEnable", true, "true or false",
		func(c *Config) any { return &c.Broker.AutoCreateTopicEnable }},
	{"broker.defaultTopicQueueNums", 4, "a whole number of queues from 1 to 1024",
		func(c *Config) any { return &c.Broker.DefaultTopicQueueNums }},
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
	{"payment.maxChecks", DefaultPaymentMaxChecks, "a whole number of checks, at least 1",
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
}

// sections maps a lower-case section name to its keys: lower-case key name
// to the key's path as config.yaml spells it.
var sections = func() map[string]map[string]string {
	m := map[string]map[string]string{}
	for _, k := range keys {
		sec, name, _ := strings.Cut(k.path, ".")
		sec, lname := strings.ToLower(sec), strings.ToLower(name)
		if m[sec] == nil {
			m[sec] = map[string]string{}
		}
		m[sec][lname] = k.path
	}
	return m
}()

// checkKeys rejects sections and keys of the parsed file raw that halfback
// does not know, and keys given twice in different case, naming them as the
// file spells them.
func checkKeys(raw map[string]any, file string) error {
	seenSec := map[string]string{}
	for _, sec := range slices.Sorted(maps.Keys(raw)) {
		known, ok := sections[strings.ToLower(sec)]
		if !ok {
			return &KeyError{Key: sec, Err: ErrUnknownKey, Detail: fmt.Sprintf(
				"unknown section in %s (known sections: %s)", file, strings.Join(slices.Sorted(maps.Keys(sections)), ", "))}
		}
		if prev, dup := seenSec[strings.ToLower(sec)]; dup {
			return invalid(sec, fmt.Sprintf("given twice in %s (also as %q; keys are case-insensitive)", file, prev))
		}
		seenSec[strings.ToLower(sec)] = sec
		if raw[sec] == nil {
			continue // an empty section
		}
		body, ok := raw[sec].(map[string]any)
		if !ok {
			return invalid(sec, fmt.Sprintf("must be a mapping of keys, got %s", describe(raw[sec])))
		}
		seen := map[string]string{}
		for _, name := range slices.Sorted(maps.Keys(body)) {
			lname := strings.ToLower(name)
			if _, ok := known[lname]; !ok {
				return &KeyError{Key: sec + "." + name, Err: ErrUnknownKey, Detail: fmt.Sprintf(
					"unknown key in %s (%s has: %s)", file, sec, knownNames(known))}
			}
			if prev, dup := seen[lname]; dup {
				return invalid(sec+"."+name, fmt.Sprintf("given twice in %s (also as %q; keys are case-insensitive)", file, prev))
			}
			seen[lname] = name
		}
	}
	return nil
}

// knownNames lists a section's keys as config.yaml spells them.
func knownNames(known map[string]string) string {
	names := make([]string, 0, len(known))
	for _, path := range known {
		_, name, _ := strings.Cut(path, ".")
		names = append(names, name)
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
