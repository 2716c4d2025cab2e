package main

import (
	"path/filepath"
	"syscall"
)

// tmpfsMagic is the f_type statfs(2) reports for tmpfs.
const tmpfsMagic = 0x01021994

// onTmpfs reports whether dir, or its nearest existing parent, is on tmpfs.
func onTmpfs(dir string) bool {
	for p := dir; ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil {
			return int64(st.Type) == tmpfsMagic
		}
		if filepath.Dir(p) == p {
			return false
		}
	}
}
