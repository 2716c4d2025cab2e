package store

import "errors"

// Errors returned by the store. They are wrapped with detail; test them
// with errors.Is.
var (
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("store: invalid options")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrLocked means another store, in this process or another, has the
	// directory open.
	ErrLocked = errors.New("store: directory in use by another store")
	// ErrWriteFailed means a write or fsync of the commit log, or an fsync
	// of a consume queue or the index, failed. The append that saw it was
	// not stored durably, and the store refuses every later append, fsync
	// and checkpoint with an error wrapping ErrWriteFailed and the cause
	// (disk full, I/O error): after a failed fsync Linux may have dropped
	// the dirty pages, so a retry that succeeds proves nothing. Readers
	// keep working; the next Open recovers from the last good checkpoint.
	ErrWriteFailed = errors.New("store: write failed; store is read-only")
	// ErrSegmentNotReady means an append would start the next commit-log
	// segment and that segment's file could not be made (a full disk, an
	// I/O error; the cause is wrapped). The append was refused before it
	// took an offset: nothing of it was written and the store is not
	// failed. The store tries again to make the segment (0.1 s after the
	// first failure, then at doubling intervals up to 5 s), and appends
	// into it go on once an attempt succeeds (retention or an operator
	// freed space).
	ErrSegmentNotReady = errors.New("store: next commit-log segment cannot be made")
	// ErrFlushTimeout means a SyncFlush append was not fsynced within
	// SyncFlushTimeout. The record may still become durable later.
	ErrFlushTimeout = errors.New("store: sync flush timed out")
	// ErrMessageTooLarge means a body exceeds MaxMessageSize.
	ErrMessageTooLarge = errors.New("store: message too large")
	// ErrBadMessage means a message cannot be encoded (topic or properties too long, empty topic).
	ErrBadMessage = errors.New("store: malformed message")
	// ErrOffsetNotFound means a physical offset holds no record (deleted by
	// retention, past the end, or not a record boundary).
	ErrOffsetNotFound = errors.New("store: no record at offset")
	// ErrCorrupt means the store's files are inconsistent in a way recovery
	// cannot repair (for example a missing segment in the middle of the log).
	ErrCorrupt = errors.New("store: corrupt")
	// ErrSegmentSizeChanged means the commit log's files were written with
	// another Options.SegmentSize (Open refuses them; ErrCorrupt too).
	ErrSegmentSizeChanged = errors.New("store: commit log written with another segment size")
	// ErrQueueEntriesChanged means the consume queues' files were written
	// with another Options.QueueEntriesPerFile (Open refuses them;
	// ErrCorrupt too).
	ErrQueueEntriesChanged = errors.New("store: consume queues written with another number of entries a file")
)
