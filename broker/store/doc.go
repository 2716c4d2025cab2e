// Package store is the broker's message store: an append-only commit log,
// per-topic/queue consume queues built from it, and a key index. It knows
// nothing of the network.
//
// # Commit log
//
// Records are appended in RocketMQ's stored-message format (package
// [github.com/halfbackmq/halfback/message]) to segment files of
// Options.SegmentSize bytes named by their first offset. A record never
// crosses a segment end: when one does not fit, a blank record (size +
// blank magic code) closes the segment and the record starts the next one.
// Each record is sealed with a checksum property over everything the body
// CRC does not cover, so recovery also rejects a torn or corrupted header,
// topic or property block.
//
// # Appends and flushing
//
// Appenders encode their records under one short lock, which assigns
// physical and queue offsets, into the batch being collected. A single
// writer goroutine takes the whole batch, writes it with one pwrite per
// segment and, under [SyncFlush], one fdatasync, then acknowledges every
// append in the batch: appends that arrive while an fsync is in flight share
// the next one (group commit). Under [AsyncFlush] appends are acknowledged
// after the write and a background fsync runs every Options.FlushInterval.
// A write or fsync error fails the appends of that batch and turns the store
// read-only ([ErrWriteFailed]); a SyncFlush append whose fsync takes longer
// than Options.SyncFlushTimeout fails with [ErrFlushTimeout].
//
// # Consume queues and index
//
// A dispatcher reads the commit log behind the writer, never past what is
// durable under SyncFlush (so a consumer never sees a record that recovery
// could truncate), and writes each record's 20-byte entry (physical offset,
// size, tag hash) at its queue offset in the queue's files. Because an entry
// is written at a fixed position, re-dispatching after a crash rewrites the
// same bytes. [Store.GetMessages] returns records byte for byte as stored:
// a pull response body is a copy of log slices, never a re-encoding.
//
// The key index (UNIQ_KEY and each KEYS entry, per topic) lives in Pebble,
// an LSM key-value store, rather than in a hand-written hash file: index
// writes are small and random, which an LSM absorbs as sequential writes;
// a batch carries the entries and the dispatch position atomically; keys
// are grouped by segment, so retention drops a segment's keys with one range
// delete; and lookups by key and time range are prefix scans. Index writes
// are not fsynced one by one: the checkpoint syncs Pebble's WAL.
//
// # Checkpoint and recovery
//
// Every Options.CheckpointInterval (default 1 s) the store fsyncs the
// commit log up to the dispatch position, then the consume queues, then
// the index, and records that position in the checkpoint file. Open
// creates an abort marker that a clean Close removes after a final
// checkpoint. After a clean shutdown nothing is scanned. After a crash the
// log is scanned from the checkpoint position, verifying each record's magic
// code, lengths, body CRC, seal and physical offset; the first record that
// fails and everything after it are truncated, consume-queue entries past
// the new end are dropped, and queues and index are rebuilt from the
// checkpoint on. Recovery therefore re-reads at most one checkpoint interval
// of appends.
//
// # Retention
//
// A full segment older than Options.FileReserved, or any but the active
// segment while the disk is fuller than Options.DiskMaxUsedRatio, is
// deleted oldest first; consume-queue entries and index keys that point into
// it are dropped, and pulls below the new minimum get [OffsetTooSmall].
//
// # Usage
//
//	s, err := store.Open(store.Options{Dir: dir, FlushType: store.SyncFlush})
//	res, err := s.Append(ctx, &message.Message{Topic: "orders", Body: body})
//	got, err := s.GetMessages("orders", 0, 0, store.GetOptions{MaxMessages: 32})
//	err = s.Close()
package store
