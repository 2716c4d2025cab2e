//go:build unix

package store

import (
	"os"
	"syscall"
)

// allocatedBytes is the disk space the file fi describes takes, in bytes,
// where the system tells (its blocks of 512 bytes).
func allocatedBytes(fi os.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks) * 512, true
}
