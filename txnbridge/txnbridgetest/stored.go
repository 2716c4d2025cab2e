package txnbridgetest

import (
	"strings"
	"testing"

	temporalclient "go.temporal.io/sdk/client"
	temporallog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/message"
)

// Stored is a message as the broker's store holds it.
type Stored struct {
	MsgID string // UNIQ_KEY
	Tags  string
	Keys  []string
	Body  []byte
	// Traceparent is the message's W3C trace context property, "" if
	// none.
	Traceparent string
}

// Stored returns every message the broker's store holds for topic (the
// visible ones: committed transactional messages, delivered delayed
// ones), by queue then offset.
func (s *Stack) Stored(t testing.TB, topic string) []Stored {
	t.Helper()
	var out []Stored
	st := s.Broker.Store()
	for _, q := range st.Queues() {
		if q.Topic != topic {
			continue
		}
		res, err := st.GetMessages(topic, q.QueueID, q.MinOffset, store.GetOptions{MaxMessages: 10000, MaxBytes: 64 << 20})
		if err != nil {
			t.Fatalf("GetMessages %s/%d: %v", topic, q.QueueID, err)
		}
		exts, err := message.DecodeAll(res.Records)
		if err != nil {
			t.Fatalf("decode %s/%d: %v", topic, q.QueueID, err)
		}
		for _, e := range exts {
			p := message.ParseProperties(e.Properties)
			out = append(out, Stored{MsgID: p[message.PropertyUniqKey], Tags: p[message.PropertyTags],
				Keys: strings.Fields(p[message.PropertyKeys]), Body: e.Body,
				Traceparent: p[message.PropertyTraceparent]})
		}
	}
	return out
}

// TemporalLogger is Logger(t) for Temporal's SDK (a client's or worker's
// Options.Logger; without one the SDK logs to stdout).
func TemporalLogger(t testing.TB) temporallog.Logger {
	return temporallog.NewStructuredLogger(Logger(t))
}

// DialTemporal returns a client of srv that logs through Logger, closed
// when the test ends.
func DialTemporal(t testing.TB, srv *testsuite.DevServer) temporalclient.Client {
	t.Helper()
	c, err := temporalclient.Dial(temporalclient.Options{HostPort: srv.FrontendHostPort(),
		Logger: TemporalLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
