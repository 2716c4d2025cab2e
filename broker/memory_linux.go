package broker

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// physicalMemory returns the memory the broker's machine has, in bytes,
// or 0 if it cannot tell: the RAM the kernel reports, or the memory limit
// of the process's cgroup (v2 memory.max, v1 memory.limit_in_bytes) when
// that is lower, as the JVM reports RocketMQ's TOTAL_PHYSICAL_MEMORY_SIZE
// in a container.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	total := int64(si.Totalram) * int64(si.Unit)
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && limit > 0 && limit < total {
			total = limit
		}
		break
	}
	return total
}
