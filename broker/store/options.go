package store

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/message"
)

// FlushType says when an append is acknowledged.
type FlushType int

const (
	// AsyncFlush acknowledges an append once it is written to the operating
	// system; a background flush fsyncs every FlushInterval. RocketMQ's default.
	AsyncFlush FlushType = iota
	// SyncFlush acknowledges an append only after its bytes are fsynced.
	// Concurrent appends share one fsync (group commit).
	SyncFlush
)

// String returns RocketMQ's name for the flush type.
func (f FlushType) String() string {
	if f == SyncFlush {
		return "SYNC_FLUSH"
	}
	return "ASYNC_FLUSH"
}

// ParseFlushType accepts SYNC_FLUSH / ASYNC_FLUSH (RocketMQ's names) and the
// short forms sync / async, in any case.
func ParseFlushType(s string) (FlushType, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "SYNC_FLUSH", "SYNC":
		return SyncFlush, nil
	case "ASYNC_FLUSH", "ASYNC":
		return AsyncFlush, nil
	}
	return 0, fmt.Errorf("%w: unknown flush type %q (want SYNC_FLUSH or ASYNC_FLUSH)", ErrInvalidOptions, s)
}

// Defaults, matching RocketMQ's where RocketMQ has one.
const (
	DefaultSegmentSize          = 1 << 30 // 1 GiB commit-log segments
	DefaultSyncFlushTimeout     = 5 * time.Second
	DefaultFlushInterval        = 500 * time.Millisecond
	DefaultCheckpointInterval   = time.Second
	DefaultQueueEntriesPerFile  = 300_000 // 6 MB consume-queue files
	DefaultFileReserved         = 72 * time.Hour
	DefaultDiskMaxUsedRatio     = 0.85
	DefaultDiskFullRatio        = 0.90
	DefaultMaxMessageSize       = 4 << 20 // 4 MiB, RocketMQ's maxMessageSize
	DefaultRetentionCheckPeriod = 10 * time.Second
)

// MaxQueueEntriesPerFile is the largest Options.QueueEntriesPerFile: a
// consume-queue file of at most 2 GiB, as RocketMQ's int-sized
// mappedFileSizeConsumeQueue allows. A larger count could wrap the file
// size (QueueEntriesPerFile*QueueEntrySize) around.
const MaxQueueEntriesPerFile = math.MaxInt32 / QueueEntrySize

// Options configure a [Store]. The zero value of every field but Dir means
// "use the default"; [Options.Validate] reports what is out of range.
type Options struct {
	// Dir holds the commit log, consume queues, index and checkpoint. Required.
	Dir string
	// FlushType is SyncFlush or AsyncFlush. Default AsyncFlush (as RocketMQ);
	// halfback's shipped config.yaml chooses SyncFlush.
	FlushType FlushType
	// SegmentSize is the size of one commit-log file in bytes. Default 1 GiB.
	// It must hold at least one message of MaxMessageSize. Open refuses
	// (ErrCorrupt) segment files that do not fit it (written with
	// another size): longer than it, or not at a multiple of it.
	SegmentSize int64
	// SyncFlushTimeout bounds how long a SyncFlush append waits for its
	// fsync before it fails with ErrFlushTimeout. Default 5 s.
	SyncFlushTimeout time.Duration
	// FlushInterval is how often AsyncFlush fsyncs the commit log. Default 500 ms.
	FlushInterval time.Duration
	// CheckpointInterval is how often consume queues and the index are
	// fsynced and the checkpoint rewritten; it bounds how much of the log
	// recovery re-dispatches after a crash. Default 1 s.
	CheckpointInterval time.Duration
	// QueueEntriesPerFile is the number of 20-byte entries in one
	// consume-queue file. Default 300,000. Open refuses (ErrCorrupt)
	// queue files that do not fit it (written with another number):
	// longer than it, or not at a multiple of it. At most
	// MaxQueueEntriesPerFile.
	QueueEntriesPerFile int
	// FileReserved is how long a full commit-log segment is kept. Default 72 h.
	FileReserved time.Duration
	// DiskMaxUsedRatio is the disk-use fraction (0..1) above which the oldest
	// segments are deleted early, even before FileReserved. Default 0.85.
	DiskMaxUsedRatio float64
	// DiskFullRatio is the disk-use fraction (0..1) above which the disk
	// counts as full (RocketMQ's diskSpaceWarningLevelRatio): the store
	// checks it every second and reports it through [Store.DiskFull],
	// which the broker uses to refuse producers' sends until the disk is
	// no longer full. The store's own appends go on, so that delayed
	// messages, transactions and retention can still free space. Keep it
	// above DiskMaxUsedRatio so that retention frees space first (above
	// DiskFullRatio it removes segments early whatever DiskMaxUsedRatio
	// says); 1 turns the check off. Default 0.90.
	DiskFullRatio float64
	// RetentionCheckPeriod is how often retention runs. Default 10 s.
	RetentionCheckPeriod time.Duration
	// DeferRetention keeps retention stopped until [Store.StartRetention],
	// so that the Holders of what is still needed (Store.Hold) are there
	// before it first runs. Default: retention starts with Open.
	DeferRetention bool
	// MaxMessageSize is the largest body accepted, in bytes. Default 4 MiB.
	MaxMessageSize int
	// StoreHost is written into every record and into message ids; it is the
	// broker's advertised address. Default 127.0.0.1:10911.
	StoreHost netip.AddrPort
	// Logger receives recovery and retention events. Default slog.Default().
	Logger *slog.Logger
	// OnDispatch, if set, is called from the dispatcher after records become
	// visible in their consume queues (for long polling). It must not block.
	OnDispatch func(topic string, queueID int32, maxOffset int64)
	// OnFlush, if set, is called after each fsync of the commit log (a
	// SyncFlush group commit, an AsyncFlush interval flush) with how long
	// it took (for a flush-latency histogram). It must not block.
	OnFlush func(time.Duration)

	// Now is the clock that stamps records (store timestamps). Default
	// time.Now; tests of time-driven code (delays, retention) replace it.
	Now func() time.Time
	// fs opens and syncs files; tests inject faults through it.
	fs fileSystem
	// diskUsage, if set, replaces the file-system query (tests).
	diskUsage func() (float64, error)
	// diskCheckPeriod, if set, replaces diskCheckPeriod (tests whose
	// diskUsage counts its calls).
	diskCheckPeriod time.Duration
	// timeouts times SyncFlush timeouts. Default the real clock; tests
	// replace it.
	timeouts flushClock
}

// withDefaults returns a copy of o with every unset field defaulted.
func (o Options) withDefaults() Options {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SyncFlushTimeout == 0 {
		o.SyncFlushTimeout = DefaultSyncFlushTimeout
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.QueueEntriesPerFile == 0 {
		o.QueueEntriesPerFile = DefaultQueueEntriesPerFile
	}
	if o.FileReserved == 0 {
		o.FileReserved = DefaultFileReserved
	}
	if o.DiskMaxUsedRatio == 0 {
		o.DiskMaxUsedRatio = DefaultDiskMaxUsedRatio
	}
	if o.DiskFullRatio == 0 {
		o.DiskFullRatio = DefaultDiskFullRatio
	}
	if o.RetentionCheckPeriod == 0 {
		o.RetentionCheckPeriod = DefaultRetentionCheckPeriod
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if !o.StoreHost.IsValid() {
		o.StoreHost = netip.MustParseAddrPort("127.0.0.1:10911")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.fs == nil {
		o.fs = osFS{}
	}
	if o.timeouts == nil {
		o.timeouts = realClock{}
	}
	return o
}

// maxRecordOverhead bounds everything in a record but the body: fixed
// fields with IPv6 hosts, a 127-byte topic and 32 KiB of properties.
const maxRecordOverhead = 128 + 128 + 2 + 32767

// Validate reports the first option that is out of range, naming it.
// It validates o after defaults are applied.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case o.FlushType != SyncFlush && o.FlushType != AsyncFlush:
		return fmt.Errorf("%w: FlushType %d", ErrInvalidOptions, o.FlushType)
	case o.MaxMessageSize < 0:
		return fmt.Errorf("%w: MaxMessageSize %d is negative", ErrInvalidOptions, o.MaxMessageSize)
	case o.SegmentSize < 0:
		return fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidOptions, o.SegmentSize)
	case o.SegmentSize < int64(o.MaxMessageSize)+maxRecordOverhead+message.BlankHeaderSize:
		return fmt.Errorf("%w: SegmentSize %d cannot hold a message of MaxMessageSize %d", ErrInvalidOptions, o.SegmentSize, o.MaxMessageSize)
	case o.SyncFlushTimeout < 0:
		return fmt.Errorf("%w: SyncFlushTimeout %v is negative", ErrInvalidOptions, o.SyncFlushTimeout)
	case o.FlushInterval < 0:
		return fmt.Errorf("%w: FlushInterval %v is negative", ErrInvalidOptions, o.FlushInterval)
	case o.CheckpointInterval < 0:
		return fmt.Errorf("%w: CheckpointInterval %v is negative", ErrInvalidOptions, o.CheckpointInterval)
	case o.QueueEntriesPerFile < 0:
		return fmt.Errorf("%w: QueueEntriesPerFile %d is negative", ErrInvalidOptions, o.QueueEntriesPerFile)
	case o.QueueEntriesPerFile > MaxQueueEntriesPerFile:
		return fmt.Errorf("%w: QueueEntriesPerFile %d is above %d (a 2 GiB consume-queue file)", ErrInvalidOptions, o.QueueEntriesPerFile, MaxQueueEntriesPerFile)
	case o.FileReserved < 0:
		return fmt.Errorf("%w: FileReserved %v is negative", ErrInvalidOptions, o.FileReserved)
	case o.DiskMaxUsedRatio < 0 || o.DiskMaxUsedRatio > 1:
		return fmt.Errorf("%w: DiskMaxUsedRatio %v is outside 0..1", ErrInvalidOptions, o.DiskMaxUsedRatio)
	case o.DiskFullRatio < 0 || o.DiskFullRatio > 1:
		return fmt.Errorf("%w: DiskFullRatio %v is outside 0..1", ErrInvalidOptions, o.DiskFullRatio)
	case o.RetentionCheckPeriod < 0:
		return fmt.Errorf("%w: RetentionCheckPeriod %v is negative", ErrInvalidOptions, o.RetentionCheckPeriod)
	}
	return nil
}
