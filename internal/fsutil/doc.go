// Package fsutil holds the two durable-file primitives the store and the
// scheduler share: fsyncing a directory and replacing a file atomically.
package fsutil
