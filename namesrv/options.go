package namesrv

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults, RocketMQ's where it has one.
const (
	// DefaultListenAddr is RocketMQ's name server port, on loopback.
	DefaultListenAddr = "127.0.0.1:9876"
	// DefaultBrokerExpiry is BROKER_CHANNEL_EXPIRED_TIME: 120 s.
	DefaultBrokerExpiry = 120 * time.Second
	// DefaultQueueNums is the queue count of an auto-created topic's route
	// on each broker, the Go client's defaultTopicQueueNums.
	DefaultQueueNums = 4
	// maxQueueNums bounds DefaultQueueNums, as the broker bounds topics.
	maxQueueNums = 1024
	// maxRegisteredQueueNums bounds a registered topic's queue counts:
	// clients expand a route into one entry per queue. Generous for Java
	// brokers, far below what would exhaust a client's memory.
	maxRegisteredQueueNums = 1 << 16
	// maxSweepInterval bounds how often expired brokers are removed
	// (RocketMQ scans every 5 to 10 s). Routes never include an expired
	// broker, swept or not.
	maxSweepInterval = 10 * time.Second
	// maxHeartbeatTimeout bounds the heartbeatTimeoutMillis a broker may
	// register with (a year: past it, a duration would overflow).
	maxHeartbeatTimeout = 365 * 24 * time.Hour
)

// Options configure a [Server]. The zero value of every field means "use
// the default".
type Options struct {
	// ListenAddr is the TCP address to serve on. Default 127.0.0.1:9876;
	// port 0 picks a free port (see Server.Addr).
	ListenAddr string
	// BrokerExpiry is how long a broker stays routed after its last
	// registration. Brokers re-register every 30 s by default. Default
	// 120 s.
	BrokerExpiry time.Duration
	// DisableAutoCreateTopic turns off routes for unknown topics: they get
	// TOPIC_NOT_EXIST. By default (AutoCreateTopic on) an unknown topic is
	// routed to every live master broker with DefaultQueueNums queues.
	DisableAutoCreateTopic bool
	// DefaultQueueNums is the per-broker queue count of an auto-created
	// topic's route, lowered to the count a broker registers TBW102 with.
	// Default 4; at most 1024.
	DefaultQueueNums int
	// Logger receives registrations, expiries and protocol errors. Default
	// slog.Default().
	Logger *slog.Logger

	// now is the clock; tests replace it. Default time.Now.
	now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ListenAddr == "" {
		o.ListenAddr = DefaultListenAddr
	}
	if o.BrokerExpiry == 0 {
		o.BrokerExpiry = DefaultBrokerExpiry
	}
	if o.DefaultQueueNums == 0 {
		o.DefaultQueueNums = DefaultQueueNums
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Validate reports the first option out of range, naming it.
func (o Options) Validate() error {
	o = o.withDefaults()
	if _, _, err := net.SplitHostPort(o.ListenAddr); err != nil {
		return fmt.Errorf("%w: ListenAddr %q: %v", ErrInvalidOptions, o.ListenAddr, err)
	}
	switch {
	case o.BrokerExpiry < 0:
		return fmt.Errorf("%w: BrokerExpiry %v is negative", ErrInvalidOptions, o.BrokerExpiry)
	case o.DefaultQueueNums < 1 || o.DefaultQueueNums > maxQueueNums:
		return fmt.Errorf("%w: DefaultQueueNums %d (want 1..%d)", ErrInvalidOptions, o.DefaultQueueNums, maxQueueNums)
	}
	return nil
}

// sweepInterval is how often expired brokers are removed.
func (o Options) sweepInterval() time.Duration {
	return min(max(o.BrokerExpiry/4, time.Millisecond), maxSweepInterval)
}
