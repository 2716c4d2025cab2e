package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/message"
)

// Errors of the package.
var (
	// ErrInvalidOptions means New was refused: an *OptionError says which
	// field is wrong and why.
	ErrInvalidOptions = errors.New("mirror: invalid options")
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("mirror: already started")
	// ErrClosed means the mirror was closed.
	ErrClosed = errors.New("mirror: closed")
	// ErrUnknownTopic means Start found a mapped RocketMQ topic that the
	// name servers do not know (with topic auto-creation off: with it on,
	// they answer for any topic).
	ErrUnknownTopic = errors.New("mirror: unknown RocketMQ topic")
)

// Defaults.
const (
	// DefaultGroup is the consumer group the mirror reads as.
	DefaultGroup = "halfback-mirror-kafka"
	// DefaultClientID is the Kafka client.id.
	DefaultClientID = "halfback-mirror"
	// DefaultKafkaVersion is the Kafka protocol version spoken (idempotent
	// production needs at least 0.11).
	DefaultKafkaVersion = "2.8.0"
	// DefaultBatchSize is the most messages of one queue produced together.
	DefaultBatchSize = 32
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between two
	// attempts at a batch Kafka did not take.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// DefaultDialTimeout bounds connecting to a Kafka broker.
	DefaultDialTimeout = 5 * time.Second
	// DefaultProduceTimeout bounds one produce request (acks=all waits for
	// the in-sync replicas).
	DefaultProduceTimeout = 10 * time.Second
	// DefaultMaxMessageBytes is the largest record produced (Kafka's
	// message.max.bytes default).
	DefaultMaxMessageBytes = 1_000_000
)

// Values of KafkaOptions.RequiredAcks and Compression.
const (
	AcksAll    = "all"    // every in-sync replica (and the idempotent producer)
	AcksLeader = "leader" // the partition leader only

	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"
)

// SASL mechanisms of SASLOptions.Mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Where a queue the group has never committed an offset for starts.
const (
	StartLast  = "last"  // RocketMQ's CONSUME_FROM_LAST_OFFSET (a young queue, its first message still in memory, from its start)
	StartFirst = "first" // the oldest message the broker holds
)

// TopicMapping mirrors one RocketMQ topic to one Kafka topic.
type TopicMapping struct {
	// RocketMQ is the topic read; Kafka the topic written.
	RocketMQ, Kafka string
}

// Options configure a [Mirror].
type Options struct {
	// Client is the halfback client the mirror consumes through: it knows
	// the name servers. Required; the mirror does not close it.
	Client *client.Client
	// Group is the consumer group. Default DefaultGroup.
	Group string
	// Topics are the topics mirrored, each RocketMQ topic at most once.
	// Required.
	Topics []TopicMapping
	// StartFrom is where a queue without a committed offset starts:
	// StartLast (default) or StartFirst.
	StartFrom string
	// BatchSize is the most messages of one queue produced in one
	// request, and so the most a crash can send twice per queue. Default
	// DefaultBatchSize; at most 1024.
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait before a batch Kafka did
	// not take is tried again; it doubles from MinBackoff after each
	// failure. Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Kafka says where and how to produce.
	Kafka KafkaOptions
	// Logger receives the mirror's logs. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the publish spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// MeterProvider reports the mirror's metrics; nil means the global one.
	MeterProvider metric.MeterProvider
}

// KafkaOptions say how to reach Kafka; they become a sarama.Config.
type KafkaOptions struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// ClientID is the Kafka client.id; before Kafka 1.0.0 only
	// [A-Za-z0-9._-]. Default DefaultClientID.
	ClientID string
	// Version is the Kafka protocol version, such as "2.8.0"; at least
	// 0.11.0.0. Default DefaultKafkaVersion.
	Version string
	// RequiredAcks is AcksAll (default; with the idempotent producer) or
	// AcksLeader (no idempotence: a retried request may write twice).
	// "none" is refused: the mirror must know a record is stored before it
	// moves on.
	RequiredAcks string
	// Compression is none (default), gzip, snappy, lz4 or zstd (Version
	// 2.1.0 or later).
	Compression string
	// MaxMessageBytes is the largest record produced; a larger message is
	// rejected (logged and skipped). At least 1024. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// DialTimeout bounds connecting to a broker; ProduceTimeout one
	// produce request. Defaults DefaultDialTimeout and
	// DefaultProduceTimeout.
	DialTimeout, ProduceTimeout time.Duration
	// SASL authenticates the connections; the zero value means none.
	SASL SASLOptions
	// TLS encrypts the connections; the zero value means plaintext.
	TLS TLSOptions
}

// SASLOptions configure SASL authentication.
type SASLOptions struct {
	// Mechanism is "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// User and Password are the credentials; required with a mechanism.
	User, Password string
}

// TLSOptions configure TLS.
type TLSOptions struct {
	// Enabled turns TLS on; the other fields need it.
	Enabled bool
	// CAFile is a PEM file of the CAs to trust; empty means the system's.
	CAFile string
	// CertFile and KeyFile are the client's PEM certificate and key, for
	// brokers that ask for one; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the broker's certificate.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate (tests only).
	InsecureSkipVerify bool
}

// OptionError reports one invalid field of Options. It wraps
// ErrInvalidOptions.
type OptionError struct {
	// Field is the field's path in Options, such as "Kafka.Brokers".
	Field string
	// Detail says what is wrong.
	Detail string
}

func (e *OptionError) Error() string { return "mirror: invalid options: " + e.Field + ": " + e.Detail }

// Unwrap returns ErrInvalidOptions.
func (e *OptionError) Unwrap() error { return ErrInvalidOptions }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// systemTopics are the broker's topics (besides the rmq_sys_ and %
// ones) that hold messages no consumer is meant to see: delayed messages
// before they are due, half messages whose check-backs ran out, and
// RocketMQ's internal ones.
var systemTopics = map[string]bool{
	"SCHEDULE_TOPIC_XXXX": true, "SCHEDULE_TOPIC_XXXX_V2": true, "TRANS_CHECK_MAX_TIME_TOPIC": true,
	"TBW102": true, "SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

// kafkaTopicRE is Kafka's legal topic name (at most 249 characters).
var kafkaTopicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (o Options) withDefaults() Options {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.StartFrom == "" {
		o.StartFrom = StartLast
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	k := &o.Kafka
	if k.ClientID == "" {
		k.ClientID = DefaultClientID
	}
	if k.Version == "" {
		k.Version = DefaultKafkaVersion
	}
	if k.RequiredAcks == "" {
		k.RequiredAcks = AcksAll
	}
	if k.Compression == "" {
		k.Compression = CompressionNone
	}
	if k.MaxMessageBytes == 0 {
		k.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if k.DialTimeout == 0 {
		k.DialTimeout = DefaultDialTimeout
	}
	if k.ProduceTimeout == 0 {
		k.ProduceTimeout = DefaultProduceTimeout
	}
	return o
}

// Validate reports the first invalid field as an *OptionError. Zero
// values mean the defaults, and are valid except for Client, Topics and
// Kafka.Brokers. It does not need the client to validate the rest, so a
// configuration can be checked before anything is started.
func (o Options) Validate() error {
	o = o.withDefaults()
	if err := o.validateTopics(); err != nil {
		return err
	}
	switch {
	case o.StartFrom != StartLast && o.StartFrom != StartFirst:
		return optErr("StartFrom", "%q is neither %s nor %s", o.StartFrom, StartLast, StartFirst)
	case o.BatchSize < 1 || o.BatchSize > 1024:
		return optErr("BatchSize", "must be from 1 to 1024 (got %d)", o.BatchSize)
	case o.MinBackoff <= 0:
		return optErr("MinBackoff", "must be positive (got %v)", o.MinBackoff)
	case o.MaxBackoff < o.MinBackoff:
		return optErr("MaxBackoff", "must be at least the minimum back-off, %v (got %v)", o.MinBackoff, o.MaxBackoff)
	}
	if err := (client.ConsumerOptions{Group: o.Group}).Validate(); err != nil {
		return optErr("Group", "%v", err)
	}
	return o.Kafka.validate()
}

func (o Options) validateTopics() error {
	if len(o.Topics) == 0 {
		return optErr("Topics", "no topic to mirror: map at least one RocketMQ topic to a Kafka topic")
	}
	seen := map[string]bool{}
	for _, t := range o.Topics {
		if err := message.ValidateTopic(t.RocketMQ); err != nil {
			return optErr("Topics", "RocketMQ topic %q: %v", t.RocketMQ, err)
		}
		if strings.HasPrefix(t.RocketMQ, "%") || strings.HasPrefix(strings.ToLower(t.RocketMQ), "rmq_sys_") || systemTopics[t.RocketMQ] {
			return optErr("Topics", "RocketMQ topic %q is a system, retry or dead-letter topic, which is not mirrored", t.RocketMQ)
		}
		if !kafkaTopicRE.MatchString(t.Kafka) || t.Kafka == "." || t.Kafka == ".." {
			return optErr("Topics", "Kafka topic %q (for %s) is not a legal Kafka topic name: 1 to 249 of [a-zA-Z0-9._-], not . or ..", t.Kafka, t.RocketMQ)
		}
		if seen[t.RocketMQ] {
			return optErr("Topics", "RocketMQ topic %q is mapped twice", t.RocketMQ)
		}
		seen[t.RocketMQ] = true
	}
	return nil
}

func (k KafkaOptions) validate() error {
	if len(k.Brokers) == 0 {
		return optErr("Kafka.Brokers", "no Kafka broker: give at least one host:port")
	}
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return optErr("Kafka.Brokers", "%q is not host:port", b)
		}
	}
	v, err := sarama.ParseKafkaVersion(k.Version)
	if err != nil {
		return optErr("Kafka.Version", "%q: %v", k.Version, err)
	}
	if !v.IsAtLeast(sarama.V0_11_0_0) {
		return optErr("Kafka.Version", "%s is older than 0.11.0.0, which the idempotent producer needs", k.Version)
	}
	if _, err := parseAcks(k.RequiredAcks); err != nil {
		return optErr("Kafka.RequiredAcks", "%v", err)
	}
	codec, err := parseCompression(k.Compression)
	if err != nil {
		return optErr("Kafka.Compression", "%v", err)
	}
	if codec == sarama.CompressionZSTD && !v.IsAtLeast(sarama.V2_1_0_0) {
		return optErr("Kafka.Compression", "%s needs Kafka 2.1.0 or later (the version is %s)", k.Compression, k.Version)
	}
	if !v.IsAtLeast(sarama.V1_0_0_0) && !legacyClientIDRE.MatchString(k.ClientID) {
		return optErr("Kafka.ClientID", "%q: before Kafka 1.0.0 a client id is 1 or more of [A-Za-z0-9._-]", k.ClientID)
	}
	switch {
	case k.MaxMessageBytes < MinMaxMessageBytes:
		return optErr("Kafka.MaxMessageBytes", "must be at least %d, or 0 for the default (got %d): every larger record would be skipped", MinMaxMessageBytes, k.MaxMessageBytes)
	case k.DialTimeout < 0:
		return optErr("Kafka.DialTimeout", "must not be negative (got %v)", k.DialTimeout)
	case k.ProduceTimeout < 0:
		return optErr("Kafka.ProduceTimeout", "must not be negative (got %v)", k.ProduceTimeout)
	}
	if err := k.SASL.validate(); err != nil {
		return err
	}
	if err := k.TLS.validate(); err != nil {
		return err
	}
	// Whatever else sarama refuses, refused now, not when Kafka is first
	// dialled.
	if _, err := saramaConfig(k); err != nil {
		return optErr("Kafka", "%v", err)
	}
	return nil
}

// MinMaxMessageBytes is the smallest Kafka.MaxMessageBytes accepted (0
// aside, which means the default).
const MinMaxMessageBytes = 1024

// legacyClientIDRE is what a client id may hold before Kafka 1.0.0.
var legacyClientIDRE = regexp.MustCompile(`\A[A-Za-z0-9._-]+\z`)

func (s SASLOptions) validate() error {
	switch strings.ToUpper(s.Mechanism) {
	case "":
		if s.User != "" || s.Password != "" {
			return optErr("Kafka.SASL.Mechanism", "a user or password is set but no mechanism (want %s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return optErr("Kafka.SASL.Mechanism", "%q is not %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if s.User == "" {
		return optErr("Kafka.SASL.User", "required with mechanism %s", s.Mechanism)
	}
	if s.Password == "" {
		return optErr("Kafka.SASL.Password", "required with mechanism %s", s.Mechanism)
	}
	return nil
}

func (t TLSOptions) validate() error {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			return optErr("Kafka.TLS.Enabled", "TLS settings are given but TLS is not enabled")
		}
		return nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return optErr("Kafka.TLS.CertFile", "a client certificate needs both CertFile and KeyFile")
	}
	for _, f := range []struct{ field, path string }{{"Kafka.TLS.CAFile", t.CAFile}, {"Kafka.TLS.CertFile", t.CertFile}, {"Kafka.TLS.KeyFile", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return optErr(f.field, "%v", err)
		}
	}
	if _, err := tlsConfig(t); err != nil { // the files are PEM and the key matches
		field := "Kafka.TLS.CAFile"
		if errors.Is(err, errClientCert) {
			field = "Kafka.TLS.CertFile"
		}
		return optErr(field, "%v", err)
	}
	return nil
}

func parseAcks(s string) (sarama.RequiredAcks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case AcksAll, "-1":
		return sarama.WaitForAll, nil
	case AcksLeader, "1":
		return sarama.WaitForLocal, nil
	case "none", "0":
		return 0, fmt.Errorf("%q would not wait for Kafka to store a record before the mirror moves on (want %s or %s)", s, AcksAll, AcksLeader)
	}
	return 0, fmt.Errorf("%q is not %s or %s", s, AcksAll, AcksLeader)
}

func parseCompression(s string) (sarama.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case CompressionNone:
		return sarama.CompressionNone, nil
	case CompressionGzip:
		return sarama.CompressionGZIP, nil
	case CompressionSnappy:
		return sarama.CompressionSnappy, nil
	case CompressionLZ4:
		return sarama.CompressionLZ4, nil
	case CompressionZstd:
		return sarama.CompressionZSTD, nil
	}
	return 0, fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", s)
}

// ParseTopics reads a topic mapping written "rocketmq=kafka,rocketmq=kafka"
// (config.yaml's mirror.kafka.topics); a bare "topic" maps a topic to the
// Kafka topic of the same name. Names are checked by Validate.
func ParseTopics(s string) ([]TopicMapping, error) {
	var out []TopicMapping
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, ok := strings.Cut(part, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok {
			to = from
		}
		if from == "" || to == "" {
			return nil, fmt.Errorf("%q: want rocketmq-topic=kafka-topic", part)
		}
		out = append(out, TopicMapping{RocketMQ: from, Kafka: to})
	}
	return out, nil
}
