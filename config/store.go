package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/delay"
)

// StoreOptions converts the store section into broker/store's Options and
// validates them with store.Options.Validate. Zero numbers stay zero, which
// the store reads as its defaults.
//
// StoreHost (written into every record and message id) is
// broker.advertiseAddr, else broker.listenAddr, when that is a literal,
// specific IP address and port; otherwise the broker sets it from the
// address it advertises.
// Logger is left nil for the caller to set.
func (c *Config) StoreOptions() (store.Options, error) {
	s := c.Store
	ft, err := store.ParseFlushType(s.FlushType)
	if err != nil {
		return store.Options{}, &KeyError{Key: "store.flushType", Err: ErrInvalid, Cause: err,
			Detail: "unknown flush type " + describe(s.FlushType) + " (want SYNC_FLUSH or ASYNC_FLUSH, or sync or async)"}
	}
	opts := store.Options{
		Dir:                 s.DataDir,
		FlushType:           ft,
		SegmentSize:         s.SegmentSize,
		SyncFlushTimeout:    s.SyncFlushTimeout,
		FlushInterval:       time.Duration(s.FlushIntervalMs) * time.Millisecond,
		CheckpointInterval:  time.Duration(s.CheckpointIntervalMs) * time.Millisecond,
		QueueEntriesPerFile: s.QueueEntriesPerFile,
		FileReserved:        time.Duration(s.FileReservedHours) * time.Hour,
		DiskMaxUsedRatio:    s.DiskMaxUsedRatio,
		DiskFullRatio:       s.DiskFullRatio,
		MaxMessageSize:      s.MaxMessageSize,
	}
	host := c.Broker.ListenAddr
	if c.Broker.AdvertiseAddr != "" {
		host = c.Broker.AdvertiseAddr
	}
	if ap, err := netip.ParseAddrPort(host); err == nil && !ap.Addr().IsUnspecified() && ap.Port() != 0 {
		opts.StoreHost = ap
	}
	if err := opts.Validate(); err != nil {
		return store.Options{}, storeKeyError(err)
	}
	return opts, nil
}

// storeFieldKeys names the config key of each field of store.Options that
// the store section sets.
var storeFieldKeys = fieldKeys{
	"Dir":                 "store.dataDir",
	"FlushType":           "store.flushType",
	"SegmentSize":         "store.segmentSize",
	"SyncFlushTimeout":    "store.syncFlushTimeout",
	"FlushInterval":       "store.flushIntervalMs",
	"CheckpointInterval":  "store.checkpointIntervalMs",
	"QueueEntriesPerFile": "store.queueEntriesPerFile",
	"FileReserved":        "store.fileReservedHours",
	"DiskMaxUsedRatio":    "store.diskMaxUsedRatio",
	"DiskFullRatio":       "store.diskFullRatio",
	"MaxMessageSize":      "store.maxMessageSize",
}

// storeKeyError turns an error of store.Options.Validate, which reads
// "store: invalid options: <Field> <what is wrong>", into a *KeyError
// naming the field's key, with any other field it names written as a key
// too: "config: store.segmentSize: 100 cannot hold a message of
// store.maxMessageSize 4194304".
func storeKeyError(err error) error {
	msg := strings.TrimPrefix(err.Error(), store.ErrInvalidOptions.Error()+": ")
	field, rest, _ := strings.Cut(msg, " ")
	if _, ok := storeFieldKeys[field]; !ok {
		rest = msg
	}
	return storeFieldKeys.keyError(field, "store", storeFieldKeys.rename(rest), err)
}

// DelayOptions returns the delay scheduler's options: its state lives in
// the data directory's "delay" folder, and it checkpoints as often as the
// store does.
func (c *Config) DelayOptions() (delay.Options, error) {
	levels, err := delay.ParseLevels(c.Broker.DelayLevels)
	if err != nil {
		return delay.Options{}, &KeyError{Key: "broker.delayLevels", Err: ErrInvalid, Cause: err,
			Detail: strings.TrimPrefix(err.Error(), "delay: invalid options: ")}
	}
	return delay.Options{
		Dir:                filepath.Join(c.Store.DataDir, "delay"),
		Levels:             levels,
		MaxDelay:           c.Broker.TimerMaxDelay,
		CheckpointInterval: time.Duration(c.Store.CheckpointIntervalMs) * time.Millisecond,
	}, nil
}
