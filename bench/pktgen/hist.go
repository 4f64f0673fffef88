package pktgen

import (
	"math"
	"math/bits"
)

// histogram is a log-linear histogram of non-negative values (HDR style):
// values below 2^subBits have a bucket each, above that every power of two
// is split into 2^subBits buckets, so a bucket's width is at most 1/64 of
// its lower bound. Recording is a few instructions and never allocates.
type histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	subBits  = 6
	subCount = 1 << subBits
	nBuckets = (64-subBits)*subCount + subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>uint(shift)) - subCount
}

// bucketRange returns the smallest and largest value of bucket b.
func bucketRange(b int) (lo, hi uint64) {
	if b < subCount {
		return uint64(b), uint64(b)
	}
	shift := uint(b>>subBits - 1)
	m := uint64(b&(subCount-1) + subCount)
	lo = m << shift
	return lo, lo + (1 << shift) - 1
}

func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

func (h *histogram) reset() { *h = histogram{} }

// merge adds o into h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at quantile q (0..1): the middle of the
// bucket holding the ceil(q*n)-th smallest value, clamped to [min, max].
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(b)
			v := int64(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Latency summarizes one-way latencies in nanoseconds.
type Latency struct {
	Samples uint64  `json:"samples"`
	Min     int64   `json:"min_ns"`
	Mean    float64 `json:"mean_ns"`
	P50     int64   `json:"p50_ns"`
	P99     int64   `json:"p99_ns"`
	P999    int64   `json:"p999_ns"`
	Max     int64   `json:"max_ns"`
}

func (h *histogram) latency() *Latency {
	if h.n == 0 {
		return nil
	}
	return &Latency{
		Samples: h.n,
		Min:     h.min,
		Mean:    h.sum / float64(h.n),
		P50:     h.quantile(0.50),
		P99:     h.quantile(0.99),
		P999:    h.quantile(0.999),
		Max:     h.max,
	}
}
