package config

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/mirror"
)

func TestMirrorSectionFromFileAndEnv(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, `
mirror:
  kafka:
    enabled: true
    brokers: "127.0.0.1:9092, 127.0.0.1:9093"
    topics: "order-events=orders.v1,PaymentEvents"
    compression: zstd
    batchSize: 8
    sasl:
      mechanism: SCRAM-SHA-512
      user: mirror
`)
	t.Setenv(envName("mirror.kafka.sasl.password"), "from-env")
	t.Setenv(envName("mirror.kafka.maxBackoff"), "3s")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.MirrorOptions()
	if err != nil {
		t.Fatal(err)
	}
	wantTopics := []mirror.TopicMapping{{RocketMQ: "order-events", Kafka: "orders.v1"}, {RocketMQ: "PaymentEvents", Kafka: "PaymentEvents"}}
	if !slices.Equal(o.Topics, wantTopics) {
		t.Errorf("Topics %v, want %v (case kept)", o.Topics, wantTopics)
	}
	if !slices.Equal(o.Kafka.Brokers, []string{"127.0.0.1:9092", "127.0.0.1:9093"}) {
		t.Errorf("Brokers %v", o.Kafka.Brokers)
	}
	if o.Kafka.Compression != "zstd" || o.BatchSize != 8 || o.MaxBackoff != 3*time.Second ||
		o.Kafka.SASL != (mirror.SASLOptions{Mechanism: "SCRAM-SHA-512", User: "mirror", Password: "from-env"}) ||
		o.Group != mirror.DefaultGroup || o.Kafka.RequiredAcks != mirror.AcksAll {
		t.Errorf("options %+v", o)
	}
}

func TestMirrorBadConfig(t *testing.T) {
	const base = "mirror:\n  kafka:\n    enabled: true\n"
	for _, c := range []struct {
		name, body, key string
		unknown         bool
	}{
		{"no brokers", base + "    topics: order-events\n", "mirror.kafka.brokers", false},
		{"no topics", base + "    brokers: 127.0.0.1:9092\n", "mirror.kafka.topics", false},
		{"empty mapping side", base + "    brokers: 127.0.0.1:9092\n    topics: \"order-events=\"\n", "mirror.kafka.topics", false},
		{"illegal kafka topic", base + "    brokers: 127.0.0.1:9092\n    topics: \"order-events=orders/v1\"\n", "mirror.kafka.topics", false},
		{"system topic", base + "    brokers: 127.0.0.1:9092\n    topics: \"RMQ_SYS_TRANS_HALF_TOPIC=x\"\n", "mirror.kafka.topics", false},
		{"broker without port", base + "    brokers: kafka\n    topics: a\n", "mirror.kafka.brokers", false},
		{"acks none", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    requiredAcks: none\n", "mirror.kafka.requiredAcks", false},
		{"unknown compression", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    compression: brotli\n", "mirror.kafka.compression", false},
		{"old version", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    version: 0.10.2.0\n", "mirror.kafka.version", false},
		{"batch too big", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    batchSize: 5000\n", "mirror.kafka.batchSize", false},
		{"zero backoff", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    minBackoff: 0s\n", "mirror.kafka.minBackoff", false},
		{"max backoff below min", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    maxBackoff: 1ms\n", "mirror.kafka.maxBackoff", false},
		{"zero maxMessageBytes", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    maxMessageBytes: 0\n", "mirror.kafka.maxMessageBytes", false},
		{"tiny maxMessageBytes", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    maxMessageBytes: 10\n", "mirror.kafka.maxMessageBytes", false},
		{"zstd on old Kafka", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    version: 2.0.0\n    compression: zstd\n", "mirror.kafka.compression", false},
		{"sasl without password", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    sasl:\n      mechanism: PLAIN\n      user: u\n", "mirror.kafka.sasl.password", false},
		{"tls file missing", base + "    brokers: 127.0.0.1:9092\n    topics: a\n    tls:\n      enabled: true\n      caFile: /nonexistent/ca.pem\n", "mirror.kafka.tls.caFile", false},
		{"unknown nested key", "mirror:\n  kafka:\n    brokerz: x\n", "mirror.kafka.brokerz", true},
		{"unknown subsection", "mirror:\n  rabbit:\n    enabled: true\n", "mirror.rabbit", true},
		{"section not a mapping", "mirror:\n  kafka: 5\n", "mirror.kafka", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			_, err := Load(writeConfig(t, c.body))
			want := ErrInvalid
			if c.unknown {
				want = ErrUnknownKey
			}
			var ke *KeyError
			if !errors.Is(err, want) || !errors.As(err, &ke) || ke.Key != c.key {
				t.Fatalf("err %v; want a %v naming %s", err, want, c.key)
			}
			if !strings.HasPrefix(err.Error(), "config: "+c.key+": ") {
				t.Errorf("message %q does not start with the key", err)
			}
			if goName := regexp.MustCompile(`\b(Min|Max)Backoff\b|Kafka\.`); goName.MatchString(err.Error()) {
				t.Errorf("message %q names a Go field, not a config key", err)
			}
		})
	}
}

// A disabled mirror's section is not checked at start-up, but `halfback
// mirror` (MirrorOptions) checks it whatever enabled says.
func TestMirrorDisabledIsCheckedOnlyWhenRun(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(writeConfig(t, "mirror:\n  kafka:\n    topics: a\n"))
	if err != nil {
		t.Fatalf("disabled mirror without brokers: %v", err)
	}
	if _, err := cfg.MirrorOptions(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "mirror.kafka.brokers") {
		t.Errorf("MirrorOptions: %v; want mirror.kafka.brokers invalid", err)
	}
}

// A maxMessageBytes below the minimum must not advise 0 "for the default":
// config.yaml gives 0 no default meaning here, and Load refuses it.
func TestMirrorTinyMaxMessageBytesDoesNotOfferZero(t *testing.T) {
	clearEnv(t)
	body := "mirror:\n  kafka:\n    enabled: true\n    brokers: 127.0.0.1:9092\n    topics: a\n    maxMessageBytes: 10\n"
	_, err := Load(writeConfig(t, body))
	if err == nil || !strings.Contains(err.Error(), "mirror.kafka.maxMessageBytes") {
		t.Fatalf("err %v; want one naming mirror.kafka.maxMessageBytes", err)
	}
	if strings.Contains(err.Error(), "0 for the default") {
		t.Fatalf("message %q offers 0 for the default, which the config refuses", err)
	}
}
