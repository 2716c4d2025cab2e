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
// # Preallocation and the end of the log
//
// A segment file is a whole Options.SegmentSize long from the moment it
// joins the log. Under [SyncFlush] it is also zero-filled: blocks allocated
// (fallocate) and then written with zeros, and synced, before any record
// goes there. An fdatasync after an append is then a data write and a cache
// flush; on a file that grows it must also commit the new size and block
// allocation to the file-system journal, which on ext4 here took about
// 0.6 ms instead of 0.3 ms. (Under [AsyncFlush], which fsyncs twice a
// second, segments are only allocated: zero-filling would double its
// writes for nothing.)
//
// The segment after the last one is prepared in the background under a
// temporary name (its segment name plus ".prealloc"), as RocketMQ's
// AllocateMappedFileService does. The zeros are paced by the appends: they
// go to disk at about 4/3 the rate records fill the active segment, in
// steps of 1 MiB each synced on its own, so the next segment is ready when
// the active one is three quarters full and an append's fsync never waits
// behind more than one step. They are written with direct I/O (O_DIRECT,
// from one shared buffer of zeros) where the file system takes it, else
// through the page cache: copying a gigabyte of zeros into the page cache
// per segment cost a quarter of a core at the append rate and evicted
// cached data. Since a segment's pages are then not cached, every
// commit-log write is padded with zeros to the end of its last page
// (zeros over zeros: past the log's end a segment holds nothing else), so
// the kernel never reads a page from disk to complete a partial one. At the roll the writer renames it into place
// and syncs the directory; if it is not ready the writer waits for it
// (the rest is written unpaced). A preparation that fails (a full disk,
// an I/O error) is tried again, unpaced, 0.1 s later, then at doubling
// intervals up to 5 s, until one succeeds; meanwhile the appends that
// would go into the segment are refused with [ErrSegmentNotReady] before
// they take offsets, so the store stays writable and the log has no hole
// when appends resume. (Appends assigned offsets in the segment before its
// first attempt failed make the writer try once more itself and fail them,
// and the store, if that fails too.) Open zero-fills the active segment itself when it is new
// (a fresh store pays for one whole segment at its first Open: 1 to 3 s
// for the default 1 GiB on the disk the benchmarks ran on), and removes
// any half-prepared file a crash left.
//
// Since the file size no longer says where the log ends, the end is where
// valid records stop: a zero word where the next record's size would be
// (space never written), or a record that fails its checks. The log keeps
// one invariant for that: every byte after the end of the log, in the last
// segment, is zero. Appends only write at the end; new segments are zero;
// and recovery (below) zeroes whatever a crash left after the end it
// finds. Without that, a stale record past a torn one could line up with
// a later append and be taken back as valid by the next recovery.
//
// Segments written before preallocation (each only as long as what was
// written to it) still open: a read past a file's end finds nothing, and
// Open extends the active one to a whole segment, zero-filled, before
// appending to it.
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
// read-only ([ErrWriteFailed]), as does a failed fsync of a consume queue or
// the index at a checkpoint. The failure is sticky: after a failed fsync
// Linux may drop the dirty pages while the page cache still shows them, so
// the store never fsyncs, advances its durable offset or checkpoints again
// until it is reopened, and the reopen recovers from the last good
// checkpoint. A SyncFlush append not fsynced within
// Options.SyncFlushTimeout fails with [ErrFlushTimeout] (one timer per
// group commit wakes its appends; an append that joined late then waits
// out the rest of its own timeout). A timed-out append stays queued and may
// still be stored: [Pending.Outcome] (AppendBatchAsync) waits for the
// writer's answer, which every batch gets, for callers whose own state must
// follow the log. [Store.Flush] fsyncs what AsyncFlush has written, for
// callers that save progress depending on it.
//
// # Consume queues and index
//
// A dispatcher follows the writer, never past what is durable under
// SyncFlush (so a consumer never sees a record that recovery could
// truncate), and writes each record's 20-byte entry (physical offset,
// size, tag hash) at its queue offset in the queue's files. The writer
// hands it what it needs of each record with every batch it has written
// (and, under SyncFlush, fsynced), so the running dispatcher reads nothing
// back; Open's recovery, Close, and a dispatch after a failed one read and
// decode the records from the log instead. A failed dispatch (a queue or
// index write error) is logged and tried again by itself, after 50 ms
// doubling to 5 s, so stored records reach consumers without further
// appends. Because an entry
// is written at a fixed position, re-dispatching after a crash rewrites the
// same bytes. [Store.GetMessages] returns records byte for byte as stored:
// a pull response body is a copy of log slices, never a re-encoding.
//
// The key index (UNIQ_KEY and each KEYS entry, per topic) is a hand-written
// file per commit-log segment in the shape of RocketMQ's IndexFile: a
// table of hash slots heading chains of 24-byte entries (key hash,
// previous entry, physical offset, store timestamp), appended as the
// dispatcher goes; the current segment's slots are kept in memory and
// written when the dispatcher moves on. A lookup walks the chains newest
// first, filters by time, and checks each candidate against its record (a
// hash is not the key). Earlier versions kept the index in Pebble; a
// hand-written file beats it here because the index is written once per
// message on the dispatch path and read rarely: Pebble spent a quarter of
// the store's CPU under SYNC_FLUSH (memtable skiplist inserts, flushes and
// compactions), the file about a twentieth, and on a small machine CPU
// taken from the flush path costs throughput (docs/benchmarks.md).
// Retention removes a segment's file. Entries are not fsynced one by one:
// the checkpoint syncs the current file. A store written by an earlier
// version has its Pebble index removed and rebuilt from the log at Open.
//
// # Checkpoint and recovery
//
// Every Options.CheckpointInterval (default 1 s) the store fsyncs the
// commit log up to the dispatch position, then the consume queues (the
// files written since the last checkpoint, and the directories of files
// created since: the dispatcher that creates one does not wait for that),
// then the index, and records that position in the checkpoint file. A
// queue whose sync fails stays to be synced by the next checkpoint. Open
// first takes an exclusive lock (flock) on <dir>/lock, held until Close
// (a second store on the directory, which would take the first one's
// abort marker for a crash and recover its live files, gets [ErrLocked];
// the kernel drops the lock of a process that dies). It then creates an
// abort marker that a clean Close removes after a final checkpoint,
// which also records the log's end. After a clean shutdown
// nothing is scanned: the recorded end is used if it lies in the last
// segment with a zero word (or an older file's end) after it. After a
// crash the log is scanned from the checkpoint position, verifying each
// record's magic code, lengths, body CRC, seal and physical offset, up to
// the first that fails or a zero word; everything after that point in its
// segment is zeroed (the segment is read to its end and only the chunks
// holding non-zero bytes are rewritten, so recovery reads up to one
// segment), later segments are removed, and the scanned records are
// written back unchanged (read and rewritten a MiB at a time) and fsynced:
// a killed process may have left them only in the page cache, and after a
// failed fsync earlier in the same boot Linux keeps the pages it could not
// write there marked clean, which an fsync alone would not write. Then
// each consume queue is cut at its first entry at or past the checkpoint
// position, or at its first invalid one (size 0) if that comes earlier
// (the next checkpoint fsyncs the cut before it records a later
// position), and queues and index are rebuilt from the checkpoint on.
// A power loss
// may keep some of the entries written since the checkpoint and lose
// others: a file the dispatcher created may survive while the end of the
// file before it is lost (opened, a queue ends at its first short file
// but the last, and the files after it are removed), or a file's unsynced
// end may read as zeros. Cut there, a queue keeps no hole and no entry
// past the log's end. Index entries at or past the checkpoint position
// are cut from their files (so are any that fail their checks: out of
// order, outside their segment, or not linked as the slots rebuilt from
// the entries before them say), and an index file that is missing or
// unreadable is rebuilt from its segment. Recovery
// therefore re-dispatches, writes back and fsyncs everything from the
// checkpoint's dispatch position to the end of the log: about one
// checkpoint interval of appends when the dispatcher kept up, plus
// however far it lagged behind the writer at the crash (the checkpoint
// records where it was), and the whole retained log when the checkpoint
// file is missing or damaged. When that is more than one segment, Open
// logs its size and range at Warn: writing it back reads and writes every
// byte of it.
//
// # Retention
//
// A full segment older than Options.FileReserved, or any but the active
// segment while the disk is fuller than Options.DiskMaxUsedRatio, is
// deleted oldest first, once it is wholly dispatched and fsynced (under
// [AsyncFlush] that can wait for the next interval flush) and a checkpoint
// has passed its end (retention writes one if none has): the consume-queue
// entries of its records are fsynced by a checkpoint, and recovery
// rebuilds lost ones only from the last checkpoint's position, so a
// segment removed before that would take them with it at a power loss,
// and their queue would hand out their offsets again. Consume-queue
// entries and index keys that point into it are dropped, and pulls below
// the new minimum get [OffsetTooSmall].
// [Store.Hold] stops it below the lowest offset a component (a [Holder])
// still needs, unless the component is a [Mover] and moves those records
// to the end of the log when asked: the broker holds the delay scheduler's
// undelivered messages, and the transaction service moves open
// transactions' half messages. Neither age nor a full disk removes them
// (a disk that fills then refuses appends instead, see above). A held segment due for
// removal is logged once. With Options.DeferRetention retention waits for
// [Store.StartRetention], so that the holds are there before it first runs.
//
// Once a second the store also compares the disk's use with
// Options.DiskFullRatio and reports the answer through [Store.DiskFull]
// (changes are logged). It does not refuse appends itself: the broker
// refuses producers' sends while the disk is full, and the appends that
// let retention free space (delayed deliveries, transaction outcomes,
// moved half messages) go on.
//
// Under [SyncFlush] one removed segment file is kept, renamed to
// "recycled", unless the disk is above the watermark (so is the next
// segment at Close, if its preparation had finished), and the next
// preparation takes it instead of writing a segment of zeros: its blocks
// are all written already, so fsyncs over it carry no metadata either, and
// a store past its first retention writes each commit-log byte once
// rather than twice (zeros, then records). Its old records stay until
// overwritten; they are never read as new ones, since a record counts only
// where the physical offset written in it is its position, and theirs
// belong to a lower base; reading a record by offset, dispatching and
// recovery all check it. Old closing blanks carry no offset: should the
// log's end after a crash fall exactly where one starts, recovery takes
// the rest of that segment as blank (the space is skipped, nothing is
// lost: a batch that crosses into the next segment syncs the first
// segment before it writes the next, so no record after the end can have
// survived). A crash recovery that ends in a recycled segment zeroes the
// rest of it, up to a segment of writes; a clean open does not.
//
// # Deleting a topic
//
// [Store.DeleteTopic] removes a topic's consume queues, as RocketMQ's
// deleteTopics does; its records stay in the commit log until retention
// removes their segments (a key query finds them until then). It records
// the deletion and its cut, the commit-log offset of the next append, in
// deleted-topics.json before it removes any file, in the critical section
// that assigns offsets, and there forgets the topic's next queue offsets:
// every later append to the topic lands at or past the cut, at queue
// offset 0 onwards. The dispatcher gives no queue entry to a record of a
// deleted topic below its cut, whether it meets the record after the
// deletion (appended before it, dispatched after) or recovery replays it
// from a checkpoint older than the deletion, so recovery never rebuilds a
// deleted queue. No dispatch or checkpoint runs while the files go, so no
// fsync meets a removed file or directory. The file also says whether
// the queues' directory is gone; Open finishes a removal a crash
// interrupted, moves a cut back to the log's end if a crash lost records
// before it, and forgets a deletion once retention has passed its cut.
// The file also keeps the max offset each queue had at the deletion.
// While it remembers one, a read past the end of a queue the topic has
// again, at an offset no greater than that queue's max then, is moved to
// the queue's min rather than its max: the reader is most likely a
// consumer of the deleted topic, and the max would skip the messages the
// topic created again holds already. A read past both goes to the max, as
// for any topic: it is the topic's own consumer, shown records a crash
// lost under [AsyncFlush], and the min would deliver the whole queue
// again. (A deletion recorded before the file kept the max offsets moves
// every read past the end to the min.)
//
// # Usage
//
//	s, err := store.Open(store.Options{Dir: dir, FlushType: store.SyncFlush})
//	res, err := s.Append(ctx, &message.Message{Topic: "orders", Body: body})
//	got, err := s.GetMessages("orders", 0, 0, store.GetOptions{MaxMessages: 32})
//	err = s.Close()
package store
