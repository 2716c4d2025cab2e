package mirror

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// saramaConfig turns validated KafkaOptions into a producer config: the
// idempotent producer with acks=all (unless AcksLeader), one request in
// flight per broker (which idempotence needs, and which keeps a partition's
// records in order across retries), the murmur2 partitioner (as Kafka's
// Java client: sarama.NewMurmur2Partitioner) and sarama's own short retries; the
// mirror retries a failed batch itself, with back-off.
func saramaConfig(k KafkaOptions) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.ClientID = k.ClientID
	v, err := sarama.ParseKafkaVersion(k.Version)
	if err != nil {
		return nil, err
	}
	cfg.Version = v
	acks, err := parseAcks(k.RequiredAcks)
	if err != nil {
		return nil, err
	}
	codec, err := parseCompression(k.Compression)
	if err != nil {
		return nil, err
	}
	cfg.Net.DialTimeout = k.DialTimeout
	cfg.Net.ReadTimeout = k.ProduceTimeout + k.DialTimeout
	cfg.Net.WriteTimeout = k.ProduceTimeout
	cfg.Net.MaxOpenRequests = 1
	// sarama's own retries ride out a leader moving (about 2.5 s in all);
	// beyond that the mirror retries the batch with its back-off.
	cfg.Metadata.Retry.Max = 3
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	cfg.Producer.RequiredAcks = acks
	cfg.Producer.Idempotent = acks == sarama.WaitForAll
	cfg.Producer.Timeout = k.ProduceTimeout
	cfg.Producer.Compression = codec
	cfg.Producer.MaxMessageBytes = k.MaxMessageBytes
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		return min(100*time.Millisecond<<retries, time.Second)
	}
	if s := k.SASL; s.Mechanism != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User = s.User
		cfg.Net.SASL.Password = s.Password
		switch strings.ToUpper(s.Mechanism) {
		case SASLPlain:
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case SASLScramSHA256:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha256.New} }
		case SASLScramSHA512:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha512.New} }
		}
	}
	if k.TLS.Enabled {
		tc, err := tlsConfig(k.TLS)
		if err != nil {
			return nil, err
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mirror: sarama config: %w", err)
	}
	return cfg, nil
}

// errClientCert wraps a client certificate or key that cannot be loaded.
var errClientCert = errors.New("mirror: TLS client certificate")

// tlsConfig loads the CA and client certificate files.
func tlsConfig(t TLSOptions) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when asked, for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mirror: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mirror: TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errClientCert, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scramClient is sarama's SCRAMClient on github.com/xdg-go/scram.
type scramClient struct {
	hash func() hash.Hash
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := scram.HashGeneratorFcn(c.hash).NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// rejected reports whether err means Kafka will never take the record,
// however often it is sent: the mirror skips it rather than stall.
// RECORD_LIST_TOO_LARGE (ErrMessageSetSizeTooLarge) refuses a record
// batch larger than the topic's segment.bytes: the records of a batch
// refused so are sent again one at a time, and one refused alone is
// rejected.
func rejected(err error) bool {
	return errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrMessageSetSizeTooLarge) ||
		errors.Is(err, sarama.ErrInvalidRecord) || errors.Is(err, sarama.ErrInvalidTimestamp)
}

// fatal reports whether err leaves the producer unusable, so that the
// next attempt needs a new one. Other errors (Kafka down, a leader moving)
// are retried on the same producer, which reconnects by itself (its
// idempotence drops a copy it stored before only within sarama's own
// retries: once sarama gives up it bumps the epoch).
func fatal(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{sarama.ErrOutOfOrderSequenceNumber, sarama.ErrInvalidProducerEpoch,
		sarama.ErrUnknownProducerID, sarama.ErrProducerFenced, sarama.ErrClosedClient, sarama.ErrShuttingDown} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
