package bench

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, time.Microsecond}, {0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff < -0.02 || diff > 0.02 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
}

func TestHistogramMergeAndEdges(t *testing.T) {
	var a, b histogram
	if a.quantile(0.5) != 0 {
		t.Errorf("empty histogram: quantile %v, want 0", a.quantile(0.5))
	}
	a.record(-time.Second) // a clock step back counts as zero
	b.record(3)
	b.record(time.Duration(1<<63 - 1))
	a.merge(&b)
	if a.total != 3 {
		t.Fatalf("total %d after merge, want 3", a.total)
	}
	if got := a.quantile(0); got != 0 {
		t.Errorf("min %v, want 0", got)
	}
	if got := a.quantile(0.5); got != 3 {
		t.Errorf("median %v, want 3ns (exact below 32ns)", got)
	}
	if got := a.quantile(1); got < time.Duration(1<<62) {
		t.Errorf("max %v, want about 2^63ns", got)
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	for i := 1; i < len(histogram{}.counts); i++ {
		lo, w := bucketRange(i - 1)
		next, _ := bucketRange(i)
		if lo+w != next {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i-1, lo+w, i, next)
		}
		if bucketOf(next) != i || bucketOf(next-1) != i-1 {
			t.Fatalf("bucketOf disagrees with bucketRange at %d", i)
		}
	}
}
