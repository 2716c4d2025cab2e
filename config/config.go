package config

import (
	"log/slog"
	"strings"
	"time"
)

// EnvPrefix starts every environment override: HALFBACK_<SECTION>_<KEY>.
const EnvPrefix = "HALFBACK"

// Config is the whole of config.yaml. Each field's comment gives its key;
// config.yaml documents units and defaults.
type Config struct {
	// Store configures the storage engine (section "store").
	Store StoreConfig `mapstructure:"store"`
	// Broker configures the network broker (section "broker").
	Broker BrokerConfig `mapstructure:"broker"`
	// Namesrv configures the name server (section "namesrv").
	Namesrv NamesrvConfig `mapstructure:"namesrv"`
	// Log configures logging (section "log").
	Log LogConfig `mapstructure:"log"`
	// Temporal says where Temporal is (section "temporal").
	Temporal TemporalConfig `mapstructure:"temporal"`
	// Payment configures payment time-outs (section "payment").
	Payment PaymentConfig `mapstructure:"payment"`
	// Orders configures the order database (section "orders").
	Orders OrdersConfig `mapstructure:"orders"`
	// Worker configures `go run ./worker` (section "worker").
	Worker WorkerConfig `mapstructure:"worker"`
	// Telemetry says where traces and metrics go (section "telemetry").
	Telemetry TelemetryConfig `mapstructure:"telemetry"`
	// Mirror configures the Kafka mirror (section "mirror").
	Mirror MirrorConfig `mapstructure:"mirror"`
}

// StoreConfig is the "store" section. [Config.StoreOptions] turns it into
// broker/store's Options.
type StoreConfig struct {
	// DataDir (store.dataDir) holds the commit log, consume queues, index and
	// checkpoint.
	DataDir string `mapstructure:"dataDir"`
	// FlushType (store.flushType) is SYNC_FLUSH or ASYNC_FLUSH; sync and
	// async are accepted too, in any case.
	FlushType string `mapstructure:"flushType"`
	// SegmentSize (store.segmentSize) is one commit-log file, in bytes.
	SegmentSize int64 `mapstructure:"segmentSize"`
	// SyncFlushTimeout (store.syncFlushTimeout) bounds a SYNC_FLUSH append's
	// wait for its fsync; written as a duration such as "5s".
	SyncFlushTimeout time.Duration `mapstructure:"syncFlushTimeout"`
	// FlushIntervalMs (store.flushIntervalMs) is how often ASYNC_FLUSH
	// fsyncs, in milliseconds.
	FlushIntervalMs int `mapstructure:"flushIntervalMs"`
	// CheckpointIntervalMs (store.checkpointIntervalMs) is how often consume
	// queues and the checkpoint are flushed, in milliseconds.
	CheckpointIntervalMs int `mapstructure:"checkpointIntervalMs"`
	// QueueEntriesPerFile (store.queueEntriesPerFile) is the number of
	// 20-byte entries in one consume-queue file, at most 107374182 (a
	// 2 GiB file).
	QueueEntriesPerFile int `mapstructure:"queueEntriesPerFile"`
	// FileReservedHours (store.fileReservedHours) is how long a full
	// commit-log segment is kept, in hours.
	FileReservedHours int `mapstructure:"fileReservedHours"`
	// DiskMaxUsedRatio (store.diskMaxUsedRatio) is the disk-use fraction,
	// 0..1, above which the oldest segments are deleted early.
	DiskMaxUsedRatio float64 `mapstructure:"diskMaxUsedRatio"`
	// DiskFullRatio (store.diskFullRatio) is the disk-use fraction, 0..1,
	// above which producers' sends are refused; 1 never refuses.
	DiskFullRatio float64 `mapstructure:"diskFullRatio"`
	// MaxMessageSize (store.maxMessageSize) is the largest body accepted, in
	// bytes.
	MaxMessageSize int `mapstructure:"maxMessageSize"`
}

// BrokerConfig is the "broker" section: the network broker, its delay
// levels and its transactions.
type BrokerConfig struct {
	// ListenAddr (broker.listenAddr) is the host:port the broker serves
	// RocketMQ remoting on.
	ListenAddr string `mapstructure:"listenAddr"`
	// AdvertiseAddr (broker.advertiseAddr) is the host:port clients are
	// told to connect to; empty means the listen address, or the machine's
	// first non-loopback IPv4 address when listening on every interface.
	AdvertiseAddr string `mapstructure:"advertiseAddr"`
	// BrokerName (broker.brokerName) and ClusterName (broker.clusterName)
	// name the broker in the name server's route data.
	BrokerName  string `mapstructure:"brokerName"`
	ClusterName string `mapstructure:"clusterName"`
	// NamesrvAddr (broker.namesrvAddr) is the name server, host:port; several
	// are separated by ';' as in RocketMQ.
	NamesrvAddr string `mapstructure:"namesrvAddr"`
	// DelayLevels (broker.delayLevels) are the delays of levels 1..n,
	// space-separated durations ("1s 5s ... 2h"), as RocketMQ's
	// messageDelayLevel.
	DelayLevels string `mapstructure:"delayLevels"`
	// TimerMaxDelay (broker.timerMaxDelay) is the longest arbitrary delivery
	// delay (TIMER_DELIVER_MS / TIMER_DELAY_MS / TIMER_DELAY_SEC) accepted.
	TimerMaxDelay time.Duration `mapstructure:"timerMaxDelay"`
	// AutoCreateTopicEnable (broker.autoCreateTopicEnable) creates an
	// unknown topic on its first send, as RocketMQ's autoCreateTopicEnable.
	AutoCreateTopicEnable bool `mapstructure:"autoCreateTopicEnable"`
	// AutoCreateSubscriptionGroup (broker.autoCreateSubscriptionGroup)
	// gives a consumer group default settings on its first heartbeat or
	// pull, as RocketMQ's autoCreateSubscriptionGroup; with false a group
	// consumes only once `halfback group update` created it.
	AutoCreateSubscriptionGroup bool `mapstructure:"autoCreateSubscriptionGroup"`
	// EnablePropertyFilter (broker.enablePropertyFilter) lets consumers
	// subscribe with SQL92 expressions over message properties, as
	// RocketMQ's enablePropertyFilter (broker.Options.EnablePropertyFilter).
	EnablePropertyFilter bool `mapstructure:"enablePropertyFilter"`
	// DefaultTopicQueueNums (broker.defaultTopicQueueNums) is the queue
	// count of an auto-created topic.
	DefaultTopicQueueNums int `mapstructure:"defaultTopicQueueNums"`
	// AccessMessageInMemoryMaxRatio
	// (broker.accessMessageInMemoryMaxRatio) is the fraction of physical
	// memory that counts as the commit log's in-memory tail: a new
	// consumer group starts at a queue's first message only while that
	// message is within it (RocketMQ's accessMessageInMemoryMaxRatio).
	// 0 means the default.
	AccessMessageInMemoryMaxRatio float64 `mapstructure:"accessMessageInMemoryMaxRatio"`
	// MaxInFlightBytes (broker.maxInFlightBytes) bounds the request
	// frames the broker holds in handlers at once over all connections;
	// past it the broker stops reading from a connection until calls
	// return (broker.Options.MaxInFlightBytes).
	MaxInFlightBytes int64 `mapstructure:"maxInFlightBytes"`
	// UseServerSideResetOffset (broker.useServerSideResetOffset): an
	// offset reset is committed by the broker and reaches online
	// consumers through their pulls (RocketMQ 5); false sends it to the
	// online consumers to commit, as RocketMQ 4 (broker.Options.
	// ClientSideResetOffset).
	UseServerSideResetOffset bool `mapstructure:"useServerSideResetOffset"`
	// TransactionTimeout (broker.transactionTimeout) is how old a half
	// message gets before its first check-back (RocketMQ's transactionTimeOut).
	TransactionTimeout time.Duration `mapstructure:"transactionTimeout"`
	// TransactionCheckInterval (broker.transactionCheckInterval) is the
	// time between check-backs of one half message.
	TransactionCheckInterval time.Duration `mapstructure:"transactionCheckInterval"`
	// TransactionCheckMax (broker.transactionCheckMax) is how many
	// check-backs that reached a producer a half message gets before it is
	// parked in TRANS_CHECK_MAX_TIME_TOPIC.
	TransactionCheckMax int `mapstructure:"transactionCheckMax"`
}

// NamesrvConfig is the "namesrv" section, read by `halfback namesrv`.
type NamesrvConfig struct {
	// ListenAddr (namesrv.listenAddr) is the host:port the name server
	// serves RocketMQ remoting on.
	ListenAddr string `mapstructure:"listenAddr"`
	// Embedded (namesrv.embedded) runs the name server inside
	// `halfback broker`, on ListenAddr, so one process is a whole cluster.
	Embedded bool `mapstructure:"embedded"`
}

// LogConfig is the "log" section.
type LogConfig struct {
	// Level (log.level) is debug, info, warn or error.
	Level string `mapstructure:"level"`
}

// SlogLevel returns Level as a slog.Level. An unknown level (which
// [Config.Validate] rejects) yields slog.LevelInfo.
func (l LogConfig) SlogLevel() slog.Level {
	lvl, _ := parseLevel(l.Level)
	return lvl
}

// parseLevel accepts debug, info, warn and error in any case.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}
