package client

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults, RocketMQ's where it has one.
const (
	// DefaultRequestTimeout bounds one request when the caller's context
	// allows longer (RocketMQ's sendMsgTimeout, 3 s).
	DefaultRequestTimeout = 3 * time.Second
	// DefaultHeartbeatInterval is heartbeatBrokerInterval (30 s).
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultRouteRefreshInterval is pollNameServerInterval (30 s).
	DefaultRouteRefreshInterval = 30 * time.Second
	// DefaultMaxMessageSize is RocketMQ's maxMessageSize (4 MiB).
	DefaultMaxMessageSize = 4 << 20
	// DefaultRetryTimes is retryTimesWhenSendFailed (2).
	DefaultRetryTimes = 2
	// DefaultCheckTimeout bounds one check listener call.
	DefaultCheckTimeout = 10 * time.Second
)

// Options configure a [Client]. The zero value of every field but
// NamesrvAddrs means "use the default".
type Options struct {
	// NamesrvAddrs are the name servers (host:port, one per element, the
	// port from 1 to 65535) routes are asked of, tried in turn. Required.
	NamesrvAddrs []string
	// ClientIP is the address this client reports in its client id and
	// message ids. Default: the first non-loopback IPv4 address of the
	// host, else 127.0.0.1.
	ClientIP string
	// InstanceName tells this Client from others in the same process; the
	// client id is ClientIP@InstanceName. Default "<pid>#<n>", unique per
	// Client in the process. A broadcasting consumer's default offsets
	// file is named by ClientIP@InstanceName too, but with "DEFAULT" when
	// InstanceName is left unset, as RocketMQ's clients keep the instance
	// name DEFAULT for broadcasting consumers: a restarted process finds
	// its file again (see ConsumerOptions.OffsetFile).
	InstanceName string
	// RequestTimeout bounds each request (one send attempt, one route
	// lookup, one heartbeat) when the caller's context allows longer.
	// Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// HeartbeatInterval is how often the registered producer and consumer
	// groups are heartbeated to every known broker. Default 30 s.
	HeartbeatInterval time.Duration
	// RouteRefreshInterval is how often the routes of topics in use are
	// fetched again. Default 30 s. A route that no started consumer
	// subscribes to and that nothing used for 4 intervals is forgotten
	// (and looked up again by its next use).
	RouteRefreshInterval time.Duration
	// MaxMessageSize bounds a message body, or a batch's encoded body,
	// before it is sent. Default 4 MiB, the broker's default limit.
	MaxMessageSize int
	// Logger receives connection, heartbeat and check-back events. Default
	// slog.Default().
	Logger *slog.Logger
}

// instanceSeq numbers the Clients of this process for default instance names.
var instanceSeq atomic.Int64

// defaultInstanceName stands for an unset InstanceName in the name of a
// broadcasting consumer's offsets file (RocketMQ's ClientConfig default).
const defaultInstanceName = "DEFAULT"

func (o Options) withDefaults() Options {
	if o.ClientIP == "" {
		o.ClientIP = localIPv4()
	}
	if o.InstanceName == "" {
		o.InstanceName = strconv.Itoa(os.Getpid()) + "#" + strconv.FormatInt(instanceSeq.Add(1), 10)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.RouteRefreshInterval == 0 {
		o.RouteRefreshInterval = DefaultRouteRefreshInterval
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first option out of range, naming it.
func (o Options) Validate() error {
	o = o.withDefaults()
	if len(o.NamesrvAddrs) == 0 {
		return fmt.Errorf("%w: NamesrvAddrs is empty", ErrInvalidOptions)
	}
	for _, a := range o.NamesrvAddrs {
		if err := checkNamesrvAddr(a); err != nil {
			return fmt.Errorf("%w: name server address %q: %v", ErrInvalidOptions, a, err)
		}
	}
	switch {
	case strings.ContainsAny(o.InstanceName, "@ \x01\x02"):
		return fmt.Errorf("%w: InstanceName %q contains '@', a space or a control separator", ErrInvalidOptions, o.InstanceName)
	case net.ParseIP(o.ClientIP) == nil:
		return fmt.Errorf("%w: ClientIP %q is not an IP address", ErrInvalidOptions, o.ClientIP)
	case o.RequestTimeout < 0:
		return fmt.Errorf("%w: RequestTimeout %v is negative", ErrInvalidOptions, o.RequestTimeout)
	case o.HeartbeatInterval < 0:
		return fmt.Errorf("%w: HeartbeatInterval %v is negative", ErrInvalidOptions, o.HeartbeatInterval)
	case o.RouteRefreshInterval < 0:
		return fmt.Errorf("%w: RouteRefreshInterval %v is negative", ErrInvalidOptions, o.RouteRefreshInterval)
	case o.MaxMessageSize < 0:
		return fmt.Errorf("%w: MaxMessageSize %d is negative", ErrInvalidOptions, o.MaxMessageSize)
	}
	return nil
}

// checkNamesrvAddr checks one name server address: host:port with a host
// and a port from 1 to 65535, no white space. (The client dialled ":9876",
// "h:abc" or "h:0" for ever, failing each time without naming the option.)
func checkNamesrvAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	switch {
	case err != nil:
		return err
	case strings.ContainsAny(a, " \t\r\n"):
		return fmt.Errorf("white space in the address")
	case host == "":
		return fmt.Errorf("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// localIPv4 returns the host's first non-loopback IPv4 address, or
// 127.0.0.1.
func localIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.To4().String()
			}
		}
	}
	return "127.0.0.1"
}

// ProducerOptions configure a [Producer]. Group is required; the zero
// value of every other field means "use the default".
type ProducerOptions struct {
	// Group is the producer group: 1 to 255 characters from
	// [%|a-zA-Z0-9_-]. Half messages record it; the broker checks
	// unresolved ones with a client that heartbeats it.
	Group string
	// RetryTimes is how often a send that failed with a transport error
	// or a retryable response code is retried, each time on another queue
	// (of another broker when there is one). Default DefaultRetryTimes (2);
	// negative means never.
	RetryTimes int
	// Selector picks the queue of each send. Default: [DefaultSelector]
	// (a hash of Message.ShardingKey when set, else round-robin).
	Selector QueueSelector
	// CheckListener answers the broker's check-backs of this group's
	// unresolved half messages. Setting it registers the group with the
	// Client, whose heartbeats then carry it (only one listener per group
	// per Client). Without it the group is not heartbeated, so the broker
	// never sends this client check-backs it could not answer.
	CheckListener CheckListener
	// CheckTimeout bounds one CheckListener call: its context ends then.
	// Default 10 s.
	CheckTimeout time.Duration
}

func (o ProducerOptions) withDefaults() ProducerOptions {
	if o.RetryTimes == 0 {
		o.RetryTimes = DefaultRetryTimes
	} else if o.RetryTimes < 0 {
		o.RetryTimes = 0
	}
	if o.Selector == nil {
		o.Selector = DefaultSelector()
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	return o
}

// Validate reports the first option out of range, naming it.
func (o ProducerOptions) Validate() error {
	if err := validateGroup(o.Group); err != nil {
		return fmt.Errorf("%w: Group: %v", ErrInvalidOptions, err)
	}
	if o.CheckTimeout < 0 {
		return fmt.Errorf("%w: CheckTimeout %v is negative", ErrInvalidOptions, o.CheckTimeout)
	}
	return nil
}

// maxGroupLength is RocketMQ's CHARACTER_MAX_LENGTH for group names.
const maxGroupLength = 255

// validateGroup checks a group name as RocketMQ's Validators do.
func validateGroup(g string) error {
	if g == "" {
		return fmt.Errorf("empty group name")
	}
	if len(g) > maxGroupLength {
		return fmt.Errorf("group name of %d characters, at most %d", len(g), maxGroupLength)
	}
	for i := 0; i < len(g); i++ {
		if c := g[i]; !legalNameChar(c) {
			return fmt.Errorf("group name %q has illegal character %q", g, c)
		}
	}
	return nil
}

// legalNameChar reports a character RocketMQ allows in topic and group
// names: [%|a-zA-Z0-9_-].
func legalNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '%' || c == '|' || c == '_' || c == '-'
}
