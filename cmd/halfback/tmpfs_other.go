//go:build !linux

package main

// onTmpfs reports whether dir is on tmpfs, which only Linux benchmarks
// are warned about: other systems answer false.
func onTmpfs(string) bool { return false }
