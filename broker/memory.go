package broker

import "math"

// inMemoryBytes is opts.AccessMessageInMemoryMaxRatio of physicalMemory.
// When the memory is unknown every message counts as in memory, so that a
// new group still reads a queue that lost nothing from its start rather
// than skip it.
func inMemoryBytes(opts Options) int64 {
	mem := physicalMemory()
	if mem <= 0 {
		opts.Logger.Warn("broker: physical memory unknown; accessMessageInMemoryMaxRatio has no effect")
		return math.MaxInt64
	}
	return int64(float64(mem) * opts.AccessMessageInMemoryMaxRatio)
}
