package delay

import (
	"sync"
	"time"
)

// LatenessBuckets are the upper bounds of the lateness histogram.
var LatenessBuckets = []time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Stats is a snapshot of the scheduler's counters, kept for export.
type Stats struct {
	// Scheduled counts messages accepted for scheduling: index 0 is
	// arbitrary delivery times, index n is delay level n.
	Scheduled []uint64
	// Delivered counts messages written to their real topic.
	Delivered uint64
	// Lateness counts deliveries by how late they were: Lateness[i] counts
	// those at most LatenessBuckets[i] late, the last element the rest.
	Lateness []uint64
	// MaxLateness is the latest delivery seen.
	MaxLateness time.Duration
}

type stats struct {
	mu sync.Mutex
	s  Stats
}

func newStats(levels int) *stats {
	return &stats{s: Stats{Scheduled: make([]uint64, levels+1), Lateness: make([]uint64, len(LatenessBuckets)+1)}}
}

func (st *stats) scheduled(level int) {
	st.mu.Lock()
	st.s.Scheduled[level]++
	st.mu.Unlock()
}

func (st *stats) delivered(late time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Delivered++
	st.s.MaxLateness = max(st.s.MaxLateness, late)
	for i, b := range LatenessBuckets {
		if late <= b {
			st.s.Lateness[i]++
			return
		}
	}
	st.s.Lateness[len(LatenessBuckets)]++
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.s
	out.Scheduled = append([]uint64(nil), st.s.Scheduled...)
	out.Lateness = append([]uint64(nil), st.s.Lateness...)
	return out
}
