package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram: values below 2^subBits ns
// have a bucket each; above that every power of two is split into
// 2^subBits equal buckets, so a quantile is within 1/2^(subBits+1) (1.6%)
// of the true value. Recording is one array increment, so each writer keeps
// its own histogram and they are merged at the end.
type histogram struct {
	counts [(64 - subBits + 1) << subBits]uint64
	total  uint64
}

const subBits = 5

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the value at quantile q (0..1): the middle of the bucket
// holding the ceil(q×total)-th smallest value, or 0 if h is empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := min(max(uint64(math.Ceil(q*float64(h.total))), 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, width := bucketRange(i)
			return time.Duration(lo + width/2)
		}
	}
	panic("bench: histogram total does not match its counts")
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1))
	sub := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits | int(sub)
}

// bucketRange returns the smallest value in bucket i and the bucket's width.
func bucketRange(i int) (lo, width uint64) {
	if i < 1<<subBits {
		return uint64(i), 1
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return (1<<subBits | sub) << (e - subBits), 1 << (e - subBits)
}
