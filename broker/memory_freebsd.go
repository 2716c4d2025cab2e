package broker

import "golang.org/x/sys/unix"

// physicalMemory returns the machine's memory (sysctl hw.physmem), or 0
// if it cannot tell.
func physicalMemory() int64 {
	n, err := unix.SysctlUint64("hw.physmem")
	if err != nil {
		return 0
	}
	return int64(n)
}
