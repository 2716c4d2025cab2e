// Package fsutil holds the durable-file primitives the store, the
// scheduler and the client share, and hides the operating system behind
// them: fsyncing a file's data (fdatasync on Linux, F_FULLFSYNC on macOS,
// FlushFileBuffers on Windows) or a directory, replacing a file
// atomically, extending a file with reserved blocks, taking an exclusive
// lock on a file, and the disk's use. Direct I/O is Linux's O_DIRECT
// ([DirectIO] is 0 elsewhere).
//
// The broker's durability rests on these, and it is tested on Linux; the
// macOS and Windows versions are compiled by make test's cross build.
package fsutil
