package mirror_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/mirror"
	"github.com/halfbackmq/halfback/txnbridge/txnbridgetest"
)

// offlineClient is a client of a name server nobody runs: enough for New,
// which connects to nothing.
func offlineClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{NamesrvAddrs: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// validOptions are the least options New takes.
func validOptions(c *client.Client) mirror.Options {
	return mirror.Options{Client: c, Topics: []mirror.TopicMapping{{RocketMQ: "orders", Kafka: "orders.v1"}},
		Kafka: mirror.KafkaOptions{Brokers: []string{"127.0.0.1:9092"}}}
}

// writePEM writes a self-signed certificate and its key to dir and
// returns their paths.
func writePEM(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// New refuses each invalid field with an *OptionError naming it, which
// wraps ErrInvalidOptions.
func TestNewRefusesInvalidOptions(t *testing.T) {
	c := offlineClient(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	topics := func(ts ...mirror.TopicMapping) func(*mirror.Options) {
		return func(o *mirror.Options) { o.Topics = ts }
	}
	for _, tc := range []struct {
		name, field string
		change      func(*mirror.Options)
	}{
		{"no client", "Client", func(o *mirror.Options) { o.Client = nil }},
		{"no topics", "Topics", topics()},
		{"bad RocketMQ topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "no spaces", Kafka: "k"})},
		{"empty RocketMQ topic", "Topics", topics(mirror.TopicMapping{Kafka: "k"})},
		{"half topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "RMQ_SYS_TRANS_HALF_TOPIC", Kafka: "k"})},
		{"retry topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "%RETRY%group", Kafka: "k"})},
		{"dead-letter topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "%DLQ%group", Kafka: "k"})},
		{"timer topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "rmq_sys_wheel_timer", Kafka: "k"})},
		{"half messages out of check-backs", "Topics", topics(mirror.TopicMapping{RocketMQ: "TRANS_CHECK_MAX_TIME_TOPIC", Kafka: "k"})},
		{"Kafka topic with a space", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: "a b"})},
		{"Kafka topic with a slash", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: "a/b"})},
		{"Kafka topic .", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: "."})},
		{"Kafka topic ..", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: ".."})},
		{"empty Kafka topic", "Topics", topics(mirror.TopicMapping{RocketMQ: "a"})},
		{"Kafka topic too long", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: strings.Repeat("k", 250)})},
		{"duplicate mapping", "Topics", topics(mirror.TopicMapping{RocketMQ: "a", Kafka: "k1"}, mirror.TopicMapping{RocketMQ: "a", Kafka: "k2"})},
		{"StartFrom", "StartFrom", func(o *mirror.Options) { o.StartFrom = "middle" }},
		{"BatchSize negative", "BatchSize", func(o *mirror.Options) { o.BatchSize = -1 }},
		{"BatchSize too large", "BatchSize", func(o *mirror.Options) { o.BatchSize = 1025 }},
		{"MinBackoff negative", "MinBackoff", func(o *mirror.Options) { o.MinBackoff = -time.Second }},
		{"MaxBackoff below MinBackoff", "MaxBackoff", func(o *mirror.Options) { o.MinBackoff, o.MaxBackoff = time.Second, time.Millisecond }},
		{"Group", "Group", func(o *mirror.Options) { o.Group = "no spaces" }},
		{"no brokers", "Kafka.Brokers", func(o *mirror.Options) { o.Kafka.Brokers = nil }},
		{"broker without port", "Kafka.Brokers", func(o *mirror.Options) { o.Kafka.Brokers = []string{"localhost"} }},
		{"broker with empty port", "Kafka.Brokers", func(o *mirror.Options) { o.Kafka.Brokers = []string{"127.0.0.1:9092", "kafka:"} }},
		{"broker with a port that is no number", "Kafka.Brokers", func(o *mirror.Options) { o.Kafka.Brokers = []string{"kafka:abc"} }},
		{"broker without host", "Kafka.Brokers", func(o *mirror.Options) { o.Kafka.Brokers = []string{":9092"} }},
		{"version older than 0.11", "Kafka.Version", func(o *mirror.Options) { o.Kafka.Version = "0.10.2.0" }},
		{"version not a version", "Kafka.Version", func(o *mirror.Options) { o.Kafka.Version = "latest" }},
		{"acks none", "Kafka.RequiredAcks", func(o *mirror.Options) { o.Kafka.RequiredAcks = "none" }},
		{"acks 0", "Kafka.RequiredAcks", func(o *mirror.Options) { o.Kafka.RequiredAcks = "0" }},
		{"acks unknown", "Kafka.RequiredAcks", func(o *mirror.Options) { o.Kafka.RequiredAcks = "most" }},
		{"compression unknown", "Kafka.Compression", func(o *mirror.Options) { o.Kafka.Compression = "brotli" }},
		{"MaxMessageBytes negative", "Kafka.MaxMessageBytes", func(o *mirror.Options) { o.Kafka.MaxMessageBytes = -1 }},
		{"MaxMessageBytes tiny", "Kafka.MaxMessageBytes", func(o *mirror.Options) { o.Kafka.MaxMessageBytes = 10 }},
		{"zstd before Kafka 2.1", "Kafka.Compression", func(o *mirror.Options) {
			o.Kafka.Version, o.Kafka.Compression = "2.0.0", mirror.CompressionZstd
		}},
		{"client id illegal before Kafka 1.0", "Kafka.ClientID", func(o *mirror.Options) {
			o.Kafka.Version, o.Kafka.ClientID = "0.11.0.0", "bad id!"
		}},
		{"DialTimeout negative", "Kafka.DialTimeout", func(o *mirror.Options) { o.Kafka.DialTimeout = -time.Second }},
		{"ProduceTimeout negative", "Kafka.ProduceTimeout", func(o *mirror.Options) { o.Kafka.ProduceTimeout = -time.Second }},
		{"SASL mechanism unknown", "Kafka.SASL.Mechanism", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: "GSSAPI", User: "u", Password: "p"}
		}},
		{"SASL credentials without mechanism", "Kafka.SASL.Mechanism", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{User: "u", Password: "p"}
		}},
		{"SASL user missing", "Kafka.SASL.User", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: mirror.SASLPlain, Password: "p"}
		}},
		{"SASL password missing", "Kafka.SASL.Password", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: mirror.SASLScramSHA512, User: "u"}
		}},
		{"TLS settings without TLS", "Kafka.TLS.Enabled", func(o *mirror.Options) { o.Kafka.TLS = mirror.TLSOptions{ServerName: "kafka"} }},
		{"TLS CA file missing", "Kafka.TLS.CAFile", func(o *mirror.Options) { o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CAFile: missing} }},
		{"TLS cert without key", "Kafka.TLS.CertFile", func(o *mirror.Options) {
			o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CertFile: notPEM}
		}},
		{"TLS key file missing", "Kafka.TLS.KeyFile", func(o *mirror.Options) {
			o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CertFile: notPEM, KeyFile: missing}
		}},
		{"TLS CA file not PEM", "Kafka.TLS.CAFile", func(o *mirror.Options) { o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CAFile: notPEM} }},
		{"TLS client certificate not PEM", "Kafka.TLS.CertFile", func(o *mirror.Options) {
			o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CertFile: notPEM, KeyFile: notPEM}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(c)
			tc.change(&o)
			m, err := mirror.New(o)
			var oe *mirror.OptionError
			switch {
			case m != nil:
				t.Fatalf("New returned a mirror (err %v)", err)
			case !errors.Is(err, mirror.ErrInvalidOptions) || !errors.As(err, &oe):
				t.Fatalf("New: %v, want an *OptionError wrapping ErrInvalidOptions", err)
			case oe.Field != tc.field || oe.Detail == "":
				t.Fatalf("New: field %q detail %q, want field %q", oe.Field, oe.Detail, tc.field)
			case !strings.Contains(err.Error(), tc.field):
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
			if tc.field != "Client" && tc.field != "Kafka" { // Validate needs neither the client nor the files' contents
				if verr := o.Validate(); !errors.As(verr, &oe) || oe.Field != tc.field {
					t.Fatalf("Validate: %v, want the same field as New", verr)
				}
			}
		})
	}
}

// New takes every valid combination of settings.
func TestNewTakesValidOptions(t *testing.T) {
	c := offlineClient(t)
	certFile, keyFile := writePEM(t, t.TempDir())
	for _, tc := range []struct {
		name   string
		change func(*mirror.Options)
	}{
		{"defaults", func(*mirror.Options) {}},
		{"several topics", func(o *mirror.Options) {
			o.Topics = append(o.Topics, mirror.TopicMapping{RocketMQ: "payments", Kafka: "payments"},
				mirror.TopicMapping{RocketMQ: "refunds", Kafka: "orders.v1"}) // two RocketMQ topics may share a Kafka topic
		}},
		{"everything set", func(o *mirror.Options) {
			o.Group, o.StartFrom, o.BatchSize = "copy-to-kafka", mirror.StartFirst, 1024
			o.MinBackoff, o.MaxBackoff = time.Second, time.Second
			o.Kafka = mirror.KafkaOptions{Brokers: []string{"kafka-1:9092", "[::1]:9093"}, ClientID: "me", Version: "3.6.0",
				RequiredAcks: mirror.AcksLeader, Compression: mirror.CompressionZstd, MaxMessageBytes: 4 << 20,
				DialTimeout: time.Second, ProduceTimeout: time.Second}
		}},
		{"acks all as -1", func(o *mirror.Options) { o.Kafka.RequiredAcks = "-1" }},
		{"acks leader as 1", func(o *mirror.Options) { o.Kafka.RequiredAcks = "1" }},
		{"gzip", func(o *mirror.Options) { o.Kafka.Compression = mirror.CompressionGzip }},
		{"snappy", func(o *mirror.Options) { o.Kafka.Compression = mirror.CompressionSnappy }},
		{"lz4", func(o *mirror.Options) { o.Kafka.Compression = mirror.CompressionLZ4 }},
		{"version 0.11", func(o *mirror.Options) { o.Kafka.Version = "0.11.0.0" }},
		{"SASL PLAIN", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: mirror.SASLPlain, User: "u", Password: "p"}
		}},
		{"SASL lower case", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: "scram-sha-256", User: "u", Password: "p"}
		}},
		{"SASL SCRAM-SHA-512", func(o *mirror.Options) {
			o.Kafka.SASL = mirror.SASLOptions{Mechanism: mirror.SASLScramSHA512, User: "u", Password: "p"}
		}},
		{"TLS with the system's CAs", func(o *mirror.Options) { o.Kafka.TLS = mirror.TLSOptions{Enabled: true} }},
		{"TLS with CA and client certificate", func(o *mirror.Options) {
			o.Kafka.TLS = mirror.TLSOptions{Enabled: true, CAFile: certFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka"}
		}},
		{"TLS insecure", func(o *mirror.Options) { o.Kafka.TLS = mirror.TLSOptions{Enabled: true, InsecureSkipVerify: true} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(c)
			tc.change(&o)
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			m, err := mirror.New(o)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if s := m.Stats(); s != (mirror.Stats{}) {
				t.Errorf("a new mirror's Stats() = %+v, want zero", s)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close of a mirror never started: %v", err)
			}
		})
	}
}

// Start runs once; Close ends the mirror for good.
func TestStartAndCloseOnce(t *testing.T) {
	st, c := startStack(t)
	topic := uniq("once")
	createTopic(t, st.Broker.Addr(), topic)
	o := validOptions(c)
	o.Topics = []mirror.TopicMapping{{RocketMQ: topic, Kafka: topic}}
	o.Kafka.Brokers = []string{"127.0.0.1:1"} // Kafka need not be up to start
	o.Logger = txnbridgetest.Logger(t)
	m, err := mirror.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := m.Start(ctx); !errors.Is(err, mirror.ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Close(); !errors.Is(err, mirror.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if err := m.Start(ctx); !errors.Is(err, mirror.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}

	closed, err := mirror.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
	if err := closed.Start(ctx); !errors.Is(err, mirror.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestParseTopics(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []mirror.TopicMapping
	}{
		{"", nil},
		{" , ,", nil},
		{"orders=orders.v1", []mirror.TopicMapping{{RocketMQ: "orders", Kafka: "orders.v1"}}},
		{"orders=orders.v1,payments=pay", []mirror.TopicMapping{{RocketMQ: "orders", Kafka: "orders.v1"}, {RocketMQ: "payments", Kafka: "pay"}}},
		{" orders = k1 , , payments ", []mirror.TopicMapping{{RocketMQ: "orders", Kafka: "k1"}, {RocketMQ: "payments", Kafka: "payments"}}},
	} {
		got, err := mirror.ParseTopics(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTopics(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"=kafka", "orders=", "a=b,=c", " = "} {
		if got, err := mirror.ParseTopics(in); err == nil {
			t.Errorf("ParseTopics(%q) = %v, want an error", in, got)
		}
	}
	// Names are checked by Validate, not by ParseTopics.
	ts, err := mirror.ParseTopics("orders=a=b")
	if err != nil {
		t.Fatal(err)
	}
	o := validOptions(nil)
	o.Topics = ts
	var oe *mirror.OptionError
	if err := o.Validate(); !errors.As(err, &oe) || oe.Field != "Topics" {
		t.Errorf("Validate(ParseTopics(orders=a=b)) = %v, want an *OptionError on Topics", err)
	}
}
