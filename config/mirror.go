package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/mirror"
)

// MirrorConfig is the "mirror" section.
type MirrorConfig struct {
	// Kafka configures the Kafka mirror (subsection "mirror.kafka").
	Kafka KafkaMirrorConfig `mapstructure:"kafka"`
}

// KafkaMirrorConfig is the "mirror.kafka" subsection: which topics are
// copied to which Kafka, and how. [Config.MirrorOptions] turns it into
// mirror's Options.
type KafkaMirrorConfig struct {
	// Enabled (mirror.kafka.enabled) runs the mirror inside `halfback
	// broker` and the worker's embedded broker. `halfback mirror` runs it
	// alone whatever this says.
	Enabled bool `mapstructure:"enabled"`
	// Brokers (mirror.kafka.brokers) are Kafka's bootstrap brokers,
	// host:port joined by ','.
	Brokers string `mapstructure:"brokers"`
	// Topics (mirror.kafka.topics) maps RocketMQ topics to Kafka topics:
	// "rocketmq=kafka" joined by ','; a bare name keeps it.
	Topics string `mapstructure:"topics"`
	// Group (mirror.kafka.group) is the consumer group the mirror reads
	// as; empty means the default.
	Group string `mapstructure:"group"`
	// ClientID (mirror.kafka.clientId) is the Kafka client.id; empty means
	// the default.
	ClientID string `mapstructure:"clientId"`
	// Version (mirror.kafka.version) is the Kafka protocol version, at
	// least 0.11.0.0.
	Version string `mapstructure:"version"`
	// RequiredAcks (mirror.kafka.requiredAcks) is all (idempotent
	// producer) or leader.
	RequiredAcks string `mapstructure:"requiredAcks"`
	// Compression (mirror.kafka.compression) is none, gzip, snappy, lz4 or
	// zstd.
	Compression string `mapstructure:"compression"`
	// StartFrom (mirror.kafka.startFrom) is where a queue the group never
	// committed starts: last or first.
	StartFrom string `mapstructure:"startFrom"`
	// BatchSize (mirror.kafka.batchSize) is the most messages of one queue
	// produced together.
	BatchSize int `mapstructure:"batchSize"`
	// MinBackoff and MaxBackoff (mirror.kafka.minBackoff, maxBackoff)
	// bound the wait before a batch Kafka did not take is retried.
	MinBackoff time.Duration `mapstructure:"minBackoff"`
	MaxBackoff time.Duration `mapstructure:"maxBackoff"`
	// DialTimeout (mirror.kafka.dialTimeout) bounds connecting to Kafka;
	// ProduceTimeout (mirror.kafka.produceTimeout) one produce request.
	DialTimeout    time.Duration `mapstructure:"dialTimeout"`
	ProduceTimeout time.Duration `mapstructure:"produceTimeout"`
	// MaxMessageBytes (mirror.kafka.maxMessageBytes) is the largest record
	// produced; a larger message is logged and skipped.
	MaxMessageBytes int `mapstructure:"maxMessageBytes"`
	// SASL (mirror.kafka.sasl) authenticates to Kafka.
	SASL KafkaSASLConfig `mapstructure:"sasl"`
	// TLS (mirror.kafka.tls) encrypts the connections to Kafka.
	TLS KafkaTLSConfig `mapstructure:"tls"`
}

// KafkaSASLConfig is "mirror.kafka.sasl".
type KafkaSASLConfig struct {
	// Mechanism (mirror.kafka.sasl.mechanism) is empty (none), PLAIN,
	// SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `mapstructure:"mechanism"`
	// User and Password (mirror.kafka.sasl.user, password) are the
	// credentials; set the password through
	// HALFBACK_MIRROR_KAFKA_SASL_PASSWORD rather than in the file.
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`
}

// KafkaTLSConfig is "mirror.kafka.tls".
type KafkaTLSConfig struct {
	// Enabled (mirror.kafka.tls.enabled) turns TLS on.
	Enabled bool `mapstructure:"enabled"`
	// CAFile (mirror.kafka.tls.caFile) is a PEM file of CAs to trust;
	// empty means the system's.
	CAFile string `mapstructure:"caFile"`
	// CertFile and KeyFile (mirror.kafka.tls.certFile, keyFile) are a
	// client certificate and key, PEM.
	CertFile string `mapstructure:"certFile"`
	KeyFile  string `mapstructure:"keyFile"`
	// ServerName (mirror.kafka.tls.serverName) overrides the name checked
	// in the brokers' certificates.
	ServerName string `mapstructure:"serverName"`
	// InsecureSkipVerify (mirror.kafka.tls.insecureSkipVerify) accepts any
	// certificate: for tests only.
	InsecureSkipVerify bool `mapstructure:"insecureSkipVerify"`
}

// mirrorFieldKeys names the config key of each field of mirror.Options
// that an *mirror.OptionError can name.
var mirrorFieldKeys = fieldKeys{
	"Topics":                       "mirror.kafka.topics",
	"Group":                        "mirror.kafka.group",
	"StartFrom":                    "mirror.kafka.startFrom",
	"BatchSize":                    "mirror.kafka.batchSize",
	"MinBackoff":                   "mirror.kafka.minBackoff",
	"MaxBackoff":                   "mirror.kafka.maxBackoff",
	"Kafka":                        "mirror.kafka",
	"Kafka.Brokers":                "mirror.kafka.brokers",
	"Kafka.ClientID":               "mirror.kafka.clientId",
	"Kafka.Version":                "mirror.kafka.version",
	"Kafka.RequiredAcks":           "mirror.kafka.requiredAcks",
	"Kafka.Compression":            "mirror.kafka.compression",
	"Kafka.MaxMessageBytes":        "mirror.kafka.maxMessageBytes",
	"Kafka.DialTimeout":            "mirror.kafka.dialTimeout",
	"Kafka.ProduceTimeout":         "mirror.kafka.produceTimeout",
	"Kafka.SASL.Mechanism":         "mirror.kafka.sasl.mechanism",
	"Kafka.SASL.User":              "mirror.kafka.sasl.user",
	"Kafka.SASL.Password":          "mirror.kafka.sasl.password",
	"Kafka.TLS.Enabled":            "mirror.kafka.tls.enabled",
	"Kafka.TLS.CAFile":             "mirror.kafka.tls.caFile",
	"Kafka.TLS.CertFile":           "mirror.kafka.tls.certFile",
	"Kafka.TLS.KeyFile":            "mirror.kafka.tls.keyFile",
	"Kafka.TLS.ServerName":         "mirror.kafka.tls.serverName",
	"Kafka.TLS.InsecureSkipVerify": "mirror.kafka.tls.insecureSkipVerify",
}

// MirrorOptions turns the mirror.kafka section into mirror's Options and
// validates them, whether or not mirror.kafka.enabled: an error is a
// [*KeyError] naming the key. The caller sets Client, Logger and the
// telemetry providers.
func (c *Config) MirrorOptions() (mirror.Options, error) {
	k := c.Mirror.Kafka
	topics, err := mirror.ParseTopics(k.Topics)
	if err != nil {
		return mirror.Options{}, invalid("mirror.kafka.topics", err.Error())
	}
	var brokers []string
	for _, b := range strings.Split(k.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	o := mirror.Options{
		Group:      strings.TrimSpace(k.Group),
		Topics:     topics,
		StartFrom:  strings.ToLower(strings.TrimSpace(k.StartFrom)),
		BatchSize:  k.BatchSize,
		MinBackoff: k.MinBackoff,
		MaxBackoff: k.MaxBackoff,
		Kafka: mirror.KafkaOptions{
			Brokers:         brokers,
			ClientID:        strings.TrimSpace(k.ClientID),
			Version:         strings.TrimSpace(k.Version),
			RequiredAcks:    strings.TrimSpace(k.RequiredAcks),
			Compression:     strings.TrimSpace(k.Compression),
			MaxMessageBytes: k.MaxMessageBytes,
			DialTimeout:     k.DialTimeout,
			ProduceTimeout:  k.ProduceTimeout,
			SASL:            mirror.SASLOptions{Mechanism: strings.TrimSpace(k.SASL.Mechanism), User: k.SASL.User, Password: k.SASL.Password},
			TLS: mirror.TLSOptions{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile,
				KeyFile: k.TLS.KeyFile, ServerName: k.TLS.ServerName, InsecureSkipVerify: k.TLS.InsecureSkipVerify},
		},
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"mirror.kafka.minBackoff", k.MinBackoff}, {"mirror.kafka.maxBackoff", k.MaxBackoff},
		{"mirror.kafka.dialTimeout", k.DialTimeout}, {"mirror.kafka.produceTimeout", k.ProduceTimeout}} {
		if err := positive(d.key, d.v); err != nil {
			return mirror.Options{}, err
		}
	}
	// Checked here, not by mirror's Validate: its message offers 0 for the
	// default, and a zero is no default here (see config.yaml).
	if k.MaxMessageBytes < mirror.MinMaxMessageBytes {
		return mirror.Options{}, invalid("mirror.kafka.maxMessageBytes", fmt.Sprintf(
			"must be at least %d (got %d): every larger record would be skipped", mirror.MinMaxMessageBytes, k.MaxMessageBytes))
	}
	if err := o.Validate(); err != nil {
		var oe *mirror.OptionError
		if errors.As(err, &oe) {
			return mirror.Options{}, mirrorFieldKeys.keyError(oe.Field, "mirror.kafka", oe.Detail, err)
		}
		return mirror.Options{}, fmt.Errorf("config: mirror.kafka: %w", err)
	}
	return o, nil
}

// validateMirror checks the mirror section when the mirror is enabled;
// `halfback mirror` checks it through MirrorOptions in any case.
func (c *Config) validateMirror() error {
	if !c.Mirror.Kafka.Enabled {
		return nil
	}
	_, err := c.MirrorOptions()
	return err
}
