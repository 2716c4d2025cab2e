package config

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
)

// Validate reports the first value that is out of range as a [*KeyError]
// naming its key, then checks the result against broker/store's own
// validation (for example that a segment holds a message of maxMessageSize).
func (c *Config) Validate() error {
	s := c.Store
	for _, err := range []error{
		required("store.dataDir", s.DataDir),
		flushType(s.FlushType),
		nonNegative("store.segmentSize", s.SegmentSize),
		nonNegative("store.syncFlushTimeout", s.SyncFlushTimeout),
		nonNegative("store.flushIntervalMs", s.FlushIntervalMs),
		atMost("store.flushIntervalMs", s.FlushIntervalMs, maxMillis, durationLimit),
		nonNegative("store.checkpointIntervalMs", s.CheckpointIntervalMs),
		atMost("store.checkpointIntervalMs", s.CheckpointIntervalMs, maxMillis, durationLimit),
		nonNegative("store.queueEntriesPerFile", s.QueueEntriesPerFile),
		nonNegative("store.fileReservedHours", s.FileReservedHours),
		atMost("store.fileReservedHours", s.FileReservedHours, maxHours, durationLimit),
		ratio("store.diskMaxUsedRatio", s.DiskMaxUsedRatio),
		ratio("store.diskFullRatio", s.DiskFullRatio),
		nonNegative("store.maxMessageSize", s.MaxMessageSize),
		atMost("store.maxMessageSize", s.MaxMessageSize, broker.MaxMessageSizeLimit,
			"a larger message does not fit in the remoting protocol's 16 MiB frame"),
		hostPort("broker.listenAddr", c.Broker.ListenAddr, false),
		advertiseAddr(c.Broker.AdvertiseAddr),
		brokerName("broker.brokerName", c.Broker.BrokerName),
		brokerName("broker.clusterName", c.Broker.ClusterName),
		hostPorts("broker.namesrvAddr", c.Broker.NamesrvAddr),
		delayLevels(c.Broker.DelayLevels),
		positive("broker.timerMaxDelay", c.Broker.TimerMaxDelay),
		queueNums("broker.defaultTopicQueueNums", c.Broker.DefaultTopicQueueNums),
		ratio("broker.accessMessageInMemoryMaxRatio", c.Broker.AccessMessageInMemoryMaxRatio),
		zeroOrAtLeast("broker.maxInFlightBytes", c.Broker.MaxInFlightBytes, remoting.DefaultMaxFrameSize,
			"the broker must be able to hold one request frame of up to 16 MiB"),
		positive("broker.transactionTimeout", c.Broker.TransactionTimeout),
		positive("broker.transactionCheckInterval", c.Broker.TransactionCheckInterval),
		positive("broker.transactionCheckMax", c.Broker.TransactionCheckMax),
		hostPort("namesrv.listenAddr", c.Namesrv.ListenAddr, false),
		logLevel(c.Log.Level),
		c.validateWorker(),
		c.validateTelemetry(),
		c.validateMirror(),
	} {
		if err != nil {
			return err
		}
	}
	_, err := c.StoreOptions()
	return err
}

// The largest whole milliseconds and hours a time.Duration holds: a larger
// count would wrap around to a short (or negative) interval.
const (
	maxMillis     = int(math.MaxInt64 / int64(time.Millisecond))
	maxHours      = int(math.MaxInt64 / int64(time.Hour))
	durationLimit = "a longer time does not fit in a duration (it would wrap around to a short one)"
)

func queueNums(key string, n int) error {
	if n < 1 || n > 1024 {
		return invalid(key, fmt.Sprintf("must be from 1 to 1024 (got %d)", n))
	}
	return nil
}

func delayLevels(v string) error {
	if _, err := delay.ParseLevels(v); err != nil {
		return invalid("broker.delayLevels", strings.TrimPrefix(err.Error(), "delay: invalid options: "))
	}
	return nil
}

func required(key, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(key, "must not be empty")
	}
	return nil
}

func flushType(v string) error {
	if _, err := store.ParseFlushType(v); err != nil {
		return invalid("store.flushType", fmt.Sprintf("unknown flush type %q (want SYNC_FLUSH or ASYNC_FLUSH, or sync or async)", v))
	}
	return nil
}

func nonNegative[T int | int64 | time.Duration](key string, v T) error {
	if v < 0 {
		return invalid(key, fmt.Sprintf("must not be negative (got %v)", v))
	}
	return nil
}

func atMost(key string, v, limit int, why string) error {
	if v > limit {
		return invalid(key, fmt.Sprintf("must be at most %d (got %d): %s", limit, v, why))
	}
	return nil
}

// zeroOrAtLeast accepts 0 (the default) or limit and above.
func zeroOrAtLeast(key string, v, limit int64, why string) error {
	if v != 0 && v < limit {
		return invalid(key, fmt.Sprintf("must be at least %d, or 0 for the default (got %d): %s", limit, v, why))
	}
	return nil
}

func positive[T int | time.Duration](key string, v T) error {
	if v <= 0 {
		return invalid(key, fmt.Sprintf("must be greater than zero (got %v)", v))
	}
	return nil
}

func ratio(key string, v float64) error {
	if !(v >= 0 && v <= 1) { // also rejects NaN
		return invalid(key, fmt.Sprintf("must be between 0 and 1 (got %v)", v))
	}
	return nil
}

// hostPort checks addr is host:port with a numeric port. A listen address
// may leave the host empty (":10911", all interfaces) and use port 0 (any
// free port); a peer's address may not.
func hostPort(key, addr string, peer bool) error {
	// Not trimmed: the address is used as written, and " 127.0.0.1:0"
	// fails only when dialled or listened on, naming no key.
	host, port, err := net.SplitHostPort(addr)
	if err != nil || strings.ContainsAny(addr, " \t\r\n") {
		return invalid(key, fmt.Sprintf("want host:port, got %q", addr))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil:
		return invalid(key, fmt.Sprintf("port %q in %q is not a number from 0 to 65535", port, addr))
	case peer && host == "":
		return invalid(key, fmt.Sprintf("want host:port, got %q (no host)", addr))
	case peer && n == 0:
		return invalid(key, fmt.Sprintf("port 0 in %q: want a real port", addr))
	}
	return nil
}

// advertiseAddr checks broker.advertiseAddr when it is set.
func advertiseAddr(v string) error {
	if v == "" {
		return nil
	}
	if err := broker.CheckAdvertiseAddr(v); err != nil {
		return invalid("broker.advertiseAddr", fmt.Sprintf("%q: %v", v, err))
	}
	return nil
}

// brokerName checks a broker or cluster name.
func brokerName(key, v string) error {
	if err := broker.CheckName(v); err != nil {
		return invalid(key, fmt.Sprintf("%q: %v", v, err))
	}
	return nil
}

// hostPorts checks a ';'-separated list of peer addresses, RocketMQ's form
// for several name servers.
func hostPorts(key, list string) error {
	for addr := range strings.SplitSeq(list, ";") {
		if err := hostPort(key, strings.TrimSpace(addr), true); err != nil { // trimmed on use too
			return err
		}
	}
	return nil
}

func logLevel(v string) error {
	if _, ok := parseLevel(v); !ok {
		return invalid("log.level", fmt.Sprintf("unknown level %q (want debug, info, warn or error)", v))
	}
	return nil
}
