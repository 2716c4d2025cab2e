package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/filter"
	"github.com/halfbackmq/halfback/message"
)

// Consumer defaults, RocketMQ's where it has one.
const (
	// DefaultMaxReconsumeTimes is how often a failed message is retried
	// before it goes to the group's dead-letter queue (16). Orderly
	// consumers default to no limit (math.MaxInt32), as RocketMQ's.
	DefaultMaxReconsumeTimes = 16
	// DefaultPullBatchSize is pullBatchSize, the messages one pull asks
	// for (32, the broker's cap as well).
	DefaultPullBatchSize = 32
	// DefaultConsumeConcurrency is consumeThreadMin (20): handler calls
	// running at once, over all queues.
	DefaultConsumeConcurrency = 20
	// DefaultPullThresholdForQueue is like pullThresholdForQueue (RocketMQ's
	// is 1000): a queue stops pulling while this many of its messages are
	// unacknowledged.
	DefaultPullThresholdForQueue = 1024
	// DefaultPullThresholdSizeForQueue is pullThresholdSizeForQueue
	// (100 MiB): a queue stops pulling while its unacknowledged messages'
	// bodies take more.
	DefaultPullThresholdSizeForQueue = 100
	// DefaultConsumeConcurrentlyMaxSpan is consumeConcurrentlyMaxSpan
	// (2000): a concurrent consumer's queue stops pulling while its
	// unacknowledged messages span more offsets.
	DefaultConsumeConcurrentlyMaxSpan = 2000
	// DefaultConsumeTimeout is consumeTimeout (15 min): the deadline of a
	// handler call's context.
	DefaultConsumeTimeout = 15 * time.Minute
	// DefaultSuspendInterval is suspendCurrentQueueTimeMillis (1 s).
	DefaultSuspendInterval = time.Second
	// DefaultLongPollTimeout is how long the broker holds a pull that
	// finds nothing (brokerSuspendMaxTimeMillis, 15 s).
	DefaultLongPollTimeout = 15 * time.Second
	// DefaultRebalanceInterval is how often queues are reassigned without
	// a notification (20 s).
	DefaultRebalanceInterval = 20 * time.Second
	// DefaultPersistInterval is persistConsumerOffsetInterval (5 s).
	DefaultPersistInterval = 5 * time.Second
	// DefaultLockRenewInterval is how often an orderly consumer renews its
	// queue locks (20 s); it stops consuming a queue whose lock it has not
	// renewed for 30 s (the broker frees it after 60 s).
	DefaultLockRenewInterval = 20 * time.Second
	// DefaultConsumeTimestampAge is how far back ConsumeFromTimestamp
	// starts when ConsumeTimestamp is zero (30 min, as RocketMQ).
	DefaultConsumeTimestampAge = 30 * time.Minute
)

// Consumer errors, next to the package's other sentinels (errors.go).
var (
	// ErrInvalidSubscription means Subscribe (or Start) was refused: an
	// illegal topic, a malformed tag expression, a nil handler, a topic
	// subscribed twice, or Start with no subscription.
	ErrInvalidSubscription = errors.New("client: invalid subscription")
	// ErrConsumerStarted means Subscribe or Start was called on a consumer
	// that was started already.
	ErrConsumerStarted = errors.New("client: consumer already started")
	// ErrOffsetFileInUse means Start found a broadcasting consumer's
	// offsets file (ConsumerOptions.OffsetFile) in use by another
	// consumer, of this process or another: they would overwrite each
	// other's offsets. Give each its own Options.InstanceName or
	// OffsetFile.
	ErrOffsetFileInUse = errors.New("client: broadcasting offsets file in use by another consumer")
)

// MessageModel says how a consumer group shares messages.
type MessageModel int

const (
	// Clustering shares a topic's queues among the group's online members:
	// each message goes to one of them. Offsets are kept by the broker.
	Clustering MessageModel = iota
	// Broadcasting gives every member every message. Each member keeps
	// its own offsets (see ConsumerOptions.OffsetFile).
	Broadcasting
)

func (m MessageModel) String() string {
	if m == Broadcasting {
		return "BROADCASTING"
	}
	return "CLUSTERING"
}

// ConsumeFromWhere says where a queue with no committed offset starts.
type ConsumeFromWhere int

const (
	// ConsumeFromLast starts after the last message. As in RocketMQ, the
	// broker answers offset 0 for a clustering group's queue that has
	// never lost a message to retention and whose first message is still
	// in memory (a halfback broker: within
	// broker.Options.AccessMessageInMemoryMaxRatio of the end of its
	// commit log), so a new group still reads a young queue from its
	// start, but not a long one; retry queues always start at 0.
	ConsumeFromLast ConsumeFromWhere = iota
	// ConsumeFromFirst starts at the oldest message the broker holds.
	ConsumeFromFirst
	// ConsumeFromTimestamp starts at the first message stored at or after
	// ConsumerOptions.ConsumeTimestamp.
	ConsumeFromTimestamp
)

func (w ConsumeFromWhere) String() string {
	switch w {
	case ConsumeFromFirst:
		return "CONSUME_FROM_FIRST_OFFSET"
	case ConsumeFromTimestamp:
		return "CONSUME_FROM_TIMESTAMP"
	}
	return "CONSUME_FROM_LAST_OFFSET"
}

// ConsumeResult is a handler's verdict on the messages it was given.
type ConsumeResult int

const (
	// ConsumeSuccess acknowledges the messages: the offset may move past them.
	ConsumeSuccess ConsumeResult = iota
	// ConsumeRetryLater asks for the messages again later: through the
	// group's retry topic (concurrent clustering consumers), or after
	// ConsumerOptions.SuspendInterval on the same queue (orderly ones, and
	// broadcasting ones, which drop a message after MaxReconsumeTimes
	// retries, with a warning, unless Orderly: an orderly member sends it
	// to the dead-letter queue, as RocketMQ's clients do).
	ConsumeRetryLater
)

// MessageHandler consumes messages of one subscription: one at a time
// unless ConsumerOptions.ConsumeBatchSize is larger; the messages of one
// call are of one queue, in queue order. The messages count as consumed only when it returns
// ConsumeSuccess and a nil error; a non-nil error, ConsumeRetryLater or a
// panic means "retry later". ctx ends after ConsumerOptions.ConsumeTimeout,
// or when a rebalance gives the messages' queue to another member (which
// consumes them again); closing the consumer does not cancel it, Close
// waits for the call. A concurrent consumer's call still running
// ConsumeTimeout past its ctx's deadline counts as failed (see
// ConsumerOptions.ConsumeTimeout). Each call gets its own copies of the
// messages, bodies, keys and property maps included: what a call changes
// no other call sees.
// Concurrent consumers call a handler from several goroutines at once.
// Messages retried through %RETRY%<group> arrive with their original
// topic and ReconsumeTimes counting the earlier failures (a group that
// subscribes one dead-letter topic gets its retries under that topic).
type MessageHandler func(ctx context.Context, msgs []*MessageExt) (ConsumeResult, error)

// ConsumerOptions configure a [PushConsumer]. Group is required; the zero
// value of every other field means "use the default".
type ConsumerOptions struct {
	// Group is the consumer group: 1 to 255 characters from
	// [%|a-zA-Z0-9_-], short enough that %RETRY%<group> is a legal topic.
	Group string
	// Model is Clustering (the default) or Broadcasting.
	Model MessageModel
	// Orderly consumes each queue one handler call at a time, in queue
	// order. In clustering mode the queues are locked on the broker
	// (LOCK_BATCH_MQ) so that one member at a time consumes each. A failed
	// message is retried on the spot, after SuspendInterval, until its
	// ReconsumeTimes (which counts the reconsumes it came with, from the
	// retry topic say) reaches MaxReconsumeTimes (by default without
	// limit), and then moved to %DLQ%<group>.
	Orderly bool
	// FromWhere is where a queue with no committed offset starts.
	// Default ConsumeFromLast.
	FromWhere ConsumeFromWhere
	// ConsumeTimestamp is where ConsumeFromTimestamp starts. Default:
	// 30 minutes before Start.
	ConsumeTimestamp time.Time
	// MaxReconsumeTimes is how often a failed message is consumed again
	// before it goes to the dead-letter queue %DLQ%<group> (broadcasting,
	// not Orderly: before it is dropped, with a warning; each orderly
	// broadcasting member sends its own copy to the dead-letter queue). Default 16; for an Orderly
	// consumer no limit (math.MaxInt32), as RocketMQ's: the failed message
	// holds its queue until it succeeds, and the messages behind it never
	// overtake it.
	MaxReconsumeTimes int
	// PullBatchSize is how many messages one pull asks for. Default 32
	// (the broker's limit).
	PullBatchSize int
	// ConsumeBatchSize is how many messages of a queue one handler call
	// gets at most. Default 1.
	ConsumeBatchSize int
	// Concurrency bounds the handler calls running at once, over all
	// queues. Default 20.
	Concurrency int
	// PullThresholdForQueue pauses a queue's pulls while this many of its
	// messages are unacknowledged. Default 1024.
	PullThresholdForQueue int
	// PullThresholdSizeForQueue pauses a queue's pulls while the bodies
	// of its unacknowledged messages take more than this many MiB.
	// Default 100.
	PullThresholdSizeForQueue int
	// ConsumeConcurrentlyMaxSpan pauses a concurrent consumer's pulls of
	// a queue while its unacknowledged messages span more than this many
	// offsets (from the oldest to the newest): one message held in a
	// handler, or waiting to be retried, holds the queue's committed
	// offset, and a crash meanwhile delivers every message behind it
	// again. Ignored when Orderly. Default 2000.
	ConsumeConcurrentlyMaxSpan int
	// ConsumeTimeout is the deadline of a handler call's context. A
	// concurrent consumer's call that has not returned ConsumeTimeout
	// later still (it ignores ctx) counts as failed: its messages are sent
	// back (or, broadcasting, retried), so that the queue's offset is not
	// held for ever, while the call keeps its Concurrency slot until it
	// returns; what it returns then is ignored. Default 15 minutes.
	ConsumeTimeout time.Duration
	// SuspendInterval is the pause before a message is retried locally:
	// an orderly consumer's failed message, or a concurrent consumer's
	// message the broker could not take back. Default 1 s.
	SuspendInterval time.Duration
	// LongPollTimeout is how long the broker holds a pull that finds no
	// new message (suspendTimeoutMillis). Default 15 s.
	LongPollTimeout time.Duration
	// RebalanceInterval is how often queues are reassigned besides when
	// the broker reports a change of members. Default 20 s.
	RebalanceInterval time.Duration
	// PersistInterval is how often acknowledged offsets are committed
	// (UPDATE_CONSUMER_OFFSET, or the broadcasting offset file). Offsets
	// are committed as well when a queue is given up and on Close.
	// Default 5 s.
	PersistInterval time.Duration
	// LockRenewInterval is how often an orderly clustering consumer renews
	// its queue locks. Default 20 s.
	LockRenewInterval time.Duration
	// OffsetFile is where a broadcasting consumer keeps its offsets
	// between runs (JSON, rewritten atomically). Default
	// <user cache dir, else the temp dir>/halfback/broadcast-offsets/
	// <group>/<ClientIP>_at_<instance>.json, where instance is
	// Options.InstanceName, or DEFAULT when that is unset (as RocketMQ's
	// LocalFileOffsetStore path keeps ClientIP@DEFAULT for broadcasting),
	// so that a restart finds the file again. The consumer holds a lock
	// (flock on the file's name plus ".lock") from Start to Close: another
	// consumer of the file, in this process or another on the host (two
	// members of the group that leave InstanceName unset, say), fails to
	// Start with ErrOffsetFileInUse rather than overwrite its offsets.
	// Ignored in clustering mode.
	OffsetFile string
	// MemoryOffsets keeps a broadcasting consumer's offsets in memory
	// only: a restart starts again from FromWhere.
	MemoryOffsets bool
	// SyncCommit commits a queue's offset to the broker right after each
	// handler call that moves it (a success, or messages the broker took
	// back), before that queue's next call when Orderly, and asks a
	// halfback broker to write it to disk before answering (ext
	// halfbackSyncCommit; other brokers ignore it and persist offsets on
	// their own schedule). The consumer's other commits (PersistInterval,
	// hand-over, Close) ask for the same, and its pulls carry no offset
	// (one read when the pull was built could reach the broker after a
	// later commit and take it back). A crash of either side then
	// delivers again at most the calls that were in flight (Orderly, or
	// Concurrency 1); with more, also the calls that ended after the
	// oldest one in flight of their queue began, since a committed offset
	// never passes a message still in a handler. It costs a round trip,
	// and on a halfback broker an fsync shared by concurrent commits, per
	// call, during which a concurrent consumer's call keeps its
	// Concurrency slot; the commits of different queues run at once. A
	// failed commit is logged and retried every SuspendInterval (without
	// the slot) before the queue goes on. An orderly queue a rebalance
	// took away is not committed (its new owner's offset wins).
	// Clustering only: Validate refuses it with Broadcasting, whose
	// offsets are kept by the member (see OffsetFile).
	SyncCommit bool
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Orderly && o.MaxReconsumeTimes == 0 {
		o.MaxReconsumeTimes = math.MaxInt32 // RocketMQ: -1 means no limit when orderly
	}
	def(&o.MaxReconsumeTimes, DefaultMaxReconsumeTimes)
	def(&o.PullBatchSize, DefaultPullBatchSize)
	def(&o.ConsumeBatchSize, 1)
	def(&o.Concurrency, DefaultConsumeConcurrency)
	def(&o.PullThresholdForQueue, DefaultPullThresholdForQueue)
	def(&o.PullThresholdSizeForQueue, DefaultPullThresholdSizeForQueue)
	def(&o.ConsumeConcurrentlyMaxSpan, DefaultConsumeConcurrentlyMaxSpan)
	defDur(&o.ConsumeTimeout, DefaultConsumeTimeout)
	defDur(&o.SuspendInterval, DefaultSuspendInterval)
	defDur(&o.LongPollTimeout, DefaultLongPollTimeout)
	defDur(&o.RebalanceInterval, DefaultRebalanceInterval)
	defDur(&o.PersistInterval, DefaultPersistInterval)
	defDur(&o.LockRenewInterval, DefaultLockRenewInterval)
	return o
}

// Validate reports the first option out of range, naming it.
func (o ConsumerOptions) Validate() error {
	if err := validateGroup(o.Group); err != nil {
		return fmt.Errorf("%w: Group: %v", ErrInvalidOptions, err)
	}
	if err := message.ValidateTopic(retryTopic(o.Group)); err != nil {
		return fmt.Errorf("%w: Group %q is too long for its retry topic", ErrInvalidOptions, o.Group)
	}
	switch {
	case o.Model != Clustering && o.Model != Broadcasting:
		return fmt.Errorf("%w: Model %d is unknown", ErrInvalidOptions, o.Model)
	case o.FromWhere < ConsumeFromLast || o.FromWhere > ConsumeFromTimestamp:
		return fmt.Errorf("%w: FromWhere %d is unknown", ErrInvalidOptions, o.FromWhere)
	}
	ints := []struct {
		name string
		v    int
	}{{"MaxReconsumeTimes", o.MaxReconsumeTimes}, {"PullBatchSize", o.PullBatchSize},
		{"ConsumeBatchSize", o.ConsumeBatchSize}, {"Concurrency", o.Concurrency},
		{"PullThresholdForQueue", o.PullThresholdForQueue}, {"PullThresholdSizeForQueue", o.PullThresholdSizeForQueue},
		{"ConsumeConcurrentlyMaxSpan", o.ConsumeConcurrentlyMaxSpan}}
	for _, f := range ints {
		if f.v < 0 {
			return fmt.Errorf("%w: %s %d is negative", ErrInvalidOptions, f.name, f.v)
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{{"ConsumeTimeout", o.ConsumeTimeout}, {"SuspendInterval", o.SuspendInterval},
		{"LongPollTimeout", o.LongPollTimeout}, {"RebalanceInterval", o.RebalanceInterval},
		{"PersistInterval", o.PersistInterval}, {"LockRenewInterval", o.LockRenewInterval}}
	for _, f := range durs {
		if f.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrInvalidOptions, f.name, f.v)
		}
	}
	if o.SyncCommit && o.Model == Broadcasting {
		return fmt.Errorf("%w: SyncCommit needs Clustering: broadcasting offsets are kept by the member", ErrInvalidOptions)
	}
	if o.LockRenewInterval >= lockExpiry {
		return fmt.Errorf("%w: LockRenewInterval %v is not below the lock expiry %v", ErrInvalidOptions, o.LockRenewInterval, lockExpiry)
	}
	if o.PullBatchSize > DefaultPullBatchSize {
		return fmt.Errorf("%w: PullBatchSize %d is above the broker's limit %d", ErrInvalidOptions, o.PullBatchSize, DefaultPullBatchSize)
	}
	return nil
}

// defaultOffsetFile is a broadcasting consumer's default offset file.
func defaultOffsetFile(group, clientID string) string {
	dir, err := os.UserCacheDir()
	if err != nil || dir == "" {
		dir = os.TempDir()
	}
	name := strings.NewReplacer("/", "_", "\\", "_", ":", "_", "@", "_at_").Replace(clientID)
	return filepath.Join(dir, "halfback", "broadcast-offsets", group, name+".json")
}

// Group topic prefixes (RocketMQ's MixAll).
const (
	retryTopicPrefix = "%RETRY%"
	dlqTopicPrefix   = "%DLQ%"
)

func retryTopic(group string) string { return retryTopicPrefix + group }

// DLQTopic returns a consumer group's dead-letter topic, %DLQ%<group>,
// where messages go after MaxReconsumeTimes failures.
func DLQTopic(group string) string { return dlqTopicPrefix + group }

// subscription is one subscribed topic: its tag expression and handler.
type subscription struct {
	topic   string
	expr    string           // "*" or "a || b", trimmed
	tags    map[string]bool  // nil: every tag
	codes   []int64          // hash codes of tags, in tagList order
	tagList []string         // tags in expression order
	version int64            // ms timestamp, RocketMQ's subVersion
	handler MessageHandler   // nil for the retry topic: messages go to their origin topic's handler
	retry   bool             // the group's retry topic
	data    subscriptionData // as heartbeats carry it
}

// newSubscription parses a tag expression: "" or "*" for every tag, or
// tags separated by "||".
func newSubscription(topic, expr string, h MessageHandler) (*subscription, error) {
	s := &subscription{topic: topic, expr: "*", handler: h, version: time.Now().UnixMilli()}
	if e := strings.TrimSpace(expr); e != "" && e != "*" {
		s.tags = map[string]bool{}
		for _, tag := range strings.Split(e, "||") {
			tag = strings.TrimSpace(tag)
			if tag == "" {
				continue
			}
			if hasSeparator(tag) || tag == "*" {
				return nil, fmt.Errorf("%w: tag %q in expression %q", ErrInvalidSubscription, tag, expr)
			}
			if !s.tags[tag] {
				s.tags[tag] = true
				s.tagList = append(s.tagList, tag)
				s.codes = append(s.codes, message.TagsCode(tag))
			}
		}
		if len(s.tagList) == 0 {
			return nil, fmt.Errorf("%w: tag expression %q names no tag", ErrInvalidSubscription, expr)
		}
		s.expr = strings.Join(s.tagList, " || ")
	}
	s.data = subscriptionData{Topic: topic, SubString: s.expr, TagsSet: append([]string{}, s.tagList...),
		CodeSet: append([]int64{}, s.codes...), SubVersion: s.version, ExpressionType: "TAG"}
	return s, nil
}

// newSQL92Subscription is a SQL92 subscription: expr must compile; the
// broker filters by it.
func newSQL92Subscription(topic, expr string, h MessageHandler) (*subscription, error) {
	if _, err := filter.Compile(expr); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSubscription, err)
	}
	s := &subscription{topic: topic, expr: expr, handler: h, version: time.Now().UnixMilli()}
	s.data = subscriptionData{Topic: topic, SubString: expr, TagsSet: []string{}, CodeSet: []int64{},
		SubVersion: s.version, ExpressionType: expressionSQL92}
	return s, nil
}

// expressionSQL92 is RocketMQ's ExpressionType.SQL92.
const expressionSQL92 = "SQL92"

// matches reports whether a message with tag passes the subscription (the
// broker filters by hash code; this is the exact check). A SQL92
// subscription has no tags: the broker's filter is exact.
func (s *subscription) matches(tag string) bool { return s.tags == nil || s.tags[tag] }
