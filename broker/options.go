package broker

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/broker/txn"
	"github.com/halfbackmq/halfback/delay"
)

// Defaults, RocketMQ's where it has one.
const (
	DefaultListenAddr        = "127.0.0.1:10911"
	DefaultBrokerName        = "broker-a"
	DefaultClusterName       = "DefaultCluster"
	DefaultQueueNums         = 4
	DefaultLongPollTimeout   = 15 * time.Second
	DefaultRegisterInterval  = 30 * time.Second
	DefaultMaxReconsumeTimes = 16
	// DefaultAccessMessageInMemoryMaxRatio is RocketMQ's
	// accessMessageInMemoryMaxRatio, 40 (percent of physical memory).
	DefaultAccessMessageInMemoryMaxRatio = 0.4
)

// MaxMessageSizeLimit is the largest Store.MaxMessageSize a broker takes:
// a message, its properties and the request's header must fit in one
// remoting frame of remoting.DefaultMaxFrameSize (16 MiB), the limit the
// official clients read frames with too.
const MaxMessageSizeLimit = remoting.DefaultMaxFrameSize - 1<<20

// Options configure a [Broker].
type Options struct {
	// Store configures the message store the broker opens. Store.Dir is
	// required; Store.OnDispatch is set by the broker.
	Store store.Options
	// Delay configures the delay scheduler. Delay.Dir defaults to
	// Store.Dir/delay.
	Delay delay.Options
	// Txn configures transactions (check-back timing, max checks).
	// Txn.Dir defaults to Store.Dir/txn; Txn.Checker is set by the broker.
	Txn txn.Options
	// ListenAddr is where the broker serves remoting. Default 127.0.0.1:10911.
	ListenAddr string
	// AdvertiseAddr is the host:port clients are told to connect to (the
	// name server's route data) and the store host in message ids (a host
	// name resolved to its first IPv4 address for those): RocketMQ's
	// brokerIP1 and listenPort. Default: the address listened on; when that
	// is every interface (":10911", "0.0.0.0:10911"), the machine's first
	// non-loopback IPv4 address (like RocketMQ's brokerIP1 default), with
	// the port listened on.
	AdvertiseAddr string
	// NamesrvAddrs are the name servers the broker registers with. Empty
	// means no registration (a broker used directly by address).
	NamesrvAddrs []string
	// BrokerName and ClusterName identify the broker in route data; two
	// brokers registering with one name server need different names.
	// Letters, digits, '.', '_' and '-', at most 127 characters. Defaults
	// broker-a and DefaultCluster.
	BrokerName, ClusterName string
	// AutoCreateTopic creates an unknown topic on its first send with
	// DefaultQueueNums queues. RocketMQ's autoCreateTopicEnable; default on
	// (set DisableAutoCreateTopic to turn it off).
	DisableAutoCreateTopic bool
	// DisableAutoCreateSubscriptionGroup stops the broker giving a consumer
	// group default settings (subgroups.go) on its first heartbeat or
	// pull: a group then consumes only once an administrator created it
	// (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, `halfback group update`), and
	// its pulls are refused with SUBSCRIPTION_GROUP_NOT_EXIST until then.
	// RocketMQ's autoCreateSubscriptionGroup; default on.
	DisableAutoCreateSubscriptionGroup bool
	// EnablePropertyFilter lets consumers subscribe with SQL92
	// expressions over message properties (a user property, TAGS, KEYS):
	// a pull then returns only the messages whose properties the
	// expression matches (broker/filter). RocketMQ's enablePropertyFilter;
	// default off, as there: such a subscription's pulls, and a Java
	// client's CHECK_CLIENT_CONFIG, are answered SYSTEM_ERROR.
	EnablePropertyFilter bool
	// DefaultQueueNums is the queue count of auto-created topics. Default 4.
	DefaultQueueNums int
	// LongPollTimeout caps how long a pull waits for a message when the
	// consumer does not ask for less. Default 15 s.
	LongPollTimeout time.Duration
	// RegisterInterval is how often the broker registers with the name
	// servers. Default 30 s.
	RegisterInterval time.Duration
	// MaxReconsumeTimes is how often a message is retried before it goes to
	// the group's dead-letter queue, unless the group says otherwise.
	// Default 16.
	MaxReconsumeTimes int
	// AccessMessageInMemoryMaxRatio is the fraction (0..1) of the
	// machine's physical memory that counts as the commit log's recent,
	// in-memory tail (RocketMQ's accessMessageInMemoryMaxRatio).
	// QUERY_CONSUMER_OFFSET for a group with no committed offset on a
	// queue answers 0, so that a new group reads the queue from its first
	// message, only while that first message is still there (retention
	// removed none) and no further than this from the end of the commit
	// log, as RocketMQ's ConsumerManageProcessor does; otherwise it
	// answers QUERY_NOT_FOUND, and the consumer starts where its
	// consumeFromWhere says (CONSUME_FROM_LAST_OFFSET: the queue's end).
	// An empty queue answers 0. Default 0.4 (0 means the default).
	AccessMessageInMemoryMaxRatio float64
	// ClientSideResetOffset makes an offset reset
	// (INVOKE_BROKER_TO_RESET_OFFSET: mqadmin resetOffsetByTime, `halfback
	// group reset`) work as RocketMQ 4's does, RocketMQ's
	// useServerSideResetOffset=false: the broker commits nothing, and
	// sends the new offsets to the group's online consumers
	// (RESET_CONSUMER_CLIENT_OFFSET), which commit them; with no consumer
	// online the reset is refused (CONSUMER_NOT_ONLINE), and without
	// isForce no queue moves forward. Default false: RocketMQ 5's
	// server-side reset (reset.go), which also moves offline groups.
	ClientSideResetOffset bool
	// MaxInFlightBytes bounds the request frames, in bytes, that the
	// broker holds in handlers at once over all its connections (sends
	// waiting for their flush, mostly): past it the broker stops reading
	// from a connection until calls return, and TCP slows the sender
	// down. Default remoting.DefaultMaxInFlightBytes (512 MiB); at least
	// remoting.DefaultMaxFrameSize (16 MiB).
	MaxInFlightBytes int64
	// LifecycleRetention is how long the message lifecycle record
	// (Store.Dir/lifecycle, `halfback trace`) keeps events. Default
	// Store.FileReserved (72 h): as long as the messages themselves.
	LifecycleRetention time.Duration
	// DisableLifecycle turns the lifecycle record off.
	DisableLifecycle bool
	// Version is the broker's version as GET_BROKER_RUNTIME_INFO reports it
	// ("halfback <Version>"). Default "(devel)".
	Version string
	// Logger receives broker events. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the broker's metrics (broker/metrics.go).
	// Default otel.GetMeterProvider(); the no-op provider turns them off.
	MeterProvider metric.MeterProvider
}

func (o Options) withDefaults() Options {
	if o.ListenAddr == "" {
		o.ListenAddr = DefaultListenAddr
	}
	if o.BrokerName == "" {
		o.BrokerName = DefaultBrokerName
	}
	if o.ClusterName == "" {
		o.ClusterName = DefaultClusterName
	}
	if o.DefaultQueueNums == 0 {
		o.DefaultQueueNums = DefaultQueueNums
	}
	if o.LongPollTimeout == 0 {
		o.LongPollTimeout = DefaultLongPollTimeout
	}
	if o.RegisterInterval == 0 {
		o.RegisterInterval = DefaultRegisterInterval
	}
	if o.MaxReconsumeTimes == 0 {
		o.MaxReconsumeTimes = DefaultMaxReconsumeTimes
	}
	if o.AccessMessageInMemoryMaxRatio == 0 {
		o.AccessMessageInMemoryMaxRatio = DefaultAccessMessageInMemoryMaxRatio
	}
	if o.MaxInFlightBytes == 0 {
		o.MaxInFlightBytes = remoting.DefaultMaxInFlightBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LifecycleRetention == 0 {
		o.LifecycleRetention = o.Store.FileReserved
		if o.LifecycleRetention == 0 {
			o.LifecycleRetention = store.DefaultFileReserved
		}
	}
	if o.Delay.Dir == "" && o.Store.Dir != "" {
		o.Delay.Dir = o.Store.Dir + "/delay"
	}
	if o.Txn.Dir == "" && o.Store.Dir != "" {
		o.Txn.Dir = o.Store.Dir + "/txn"
	}
	if o.Txn.Logger == nil {
		o.Txn.Logger = o.Logger
	}
	if o.Store.Logger == nil {
		o.Store.Logger = o.Logger
	}
	if o.Delay.Logger == nil {
		o.Delay.Logger = o.Logger
	}
	return o
}

// Validate reports the first option out of range, naming it.
func (o Options) Validate() error {
	o = o.withDefaults()
	if _, _, err := net.SplitHostPort(o.ListenAddr); err != nil {
		return fmt.Errorf("%w: ListenAddr %q: %v", ErrInvalidOptions, o.ListenAddr, err)
	}
	if o.AdvertiseAddr != "" {
		if err := CheckAdvertiseAddr(o.AdvertiseAddr); err != nil {
			return fmt.Errorf("%w: AdvertiseAddr %q: %v", ErrInvalidOptions, o.AdvertiseAddr, err)
		}
	}
	for _, n := range []struct{ field, v string }{{"BrokerName", o.BrokerName}, {"ClusterName", o.ClusterName}} {
		if err := CheckName(n.v); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrInvalidOptions, n.field, n.v, err)
		}
	}
	switch {
	case o.Store.MaxMessageSize > MaxMessageSizeLimit:
		return fmt.Errorf("%w: Store.MaxMessageSize %d is above %d: a message that large does not fit in a remoting frame",
			ErrInvalidOptions, o.Store.MaxMessageSize, MaxMessageSizeLimit)
	case o.DefaultQueueNums < 1 || o.DefaultQueueNums > 1024:
		return fmt.Errorf("%w: DefaultQueueNums %d (want 1..1024)", ErrInvalidOptions, o.DefaultQueueNums)
	case o.LongPollTimeout < 0:
		return fmt.Errorf("%w: LongPollTimeout %v is negative", ErrInvalidOptions, o.LongPollTimeout)
	case o.RegisterInterval < 0:
		return fmt.Errorf("%w: RegisterInterval %v is negative", ErrInvalidOptions, o.RegisterInterval)
	case o.LifecycleRetention < 0:
		return fmt.Errorf("%w: LifecycleRetention %v is negative", ErrInvalidOptions, o.LifecycleRetention)
	case o.MaxReconsumeTimes < 0:
		return fmt.Errorf("%w: MaxReconsumeTimes %d is negative", ErrInvalidOptions, o.MaxReconsumeTimes)
	case o.MaxInFlightBytes < remoting.DefaultMaxFrameSize:
		return fmt.Errorf("%w: MaxInFlightBytes %d is below %d, the largest request frame", ErrInvalidOptions, o.MaxInFlightBytes, remoting.DefaultMaxFrameSize)
	case !(o.AccessMessageInMemoryMaxRatio > 0 && o.AccessMessageInMemoryMaxRatio <= 1): // also NaN
		return fmt.Errorf("%w: AccessMessageInMemoryMaxRatio %v is not a fraction from 0 to 1 (RocketMQ's 40 percent is 0.4)",
			ErrInvalidOptions, o.AccessMessageInMemoryMaxRatio)
	}
	if err := o.Store.Validate(); err != nil {
		return err
	}
	if err := o.Txn.Validate(); err != nil {
		return err
	}
	return o.Delay.Validate()
}
