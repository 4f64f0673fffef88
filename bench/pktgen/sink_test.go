package pktgen

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSinkSequences(t *testing.T) {
	type flowSeq struct {
		flow uint16
		seq  uint64
	}
	seqs := func(flow uint16, v ...uint64) []flowSeq {
		var r []flowSeq
		for _, s := range v {
			r = append(r, flowSeq{flow, s})
		}
		return r
	}
	rng := func(a, b uint64) []uint64 {
		var r []uint64
		for i := a; i < b; i++ {
			r = append(r, i)
		}
		return r
	}
	for _, tc := range []struct {
		name                   string
		in                     []flowSeq
		lost, dup, reord, gaps uint64
	}{
		{name: "in order", in: seqs(0, rng(0, 1000)...)},
		{name: "starts late", in: seqs(0, rng(500, 600)...)},
		{name: "one lost", in: seqs(0, 0, 1, 3, 4), lost: 1, gaps: 1},
		{name: "burst lost", in: seqs(0, 0, 1, 102, 103), lost: 100, gaps: 100},
		{name: "swap", in: seqs(0, 0, 2, 1, 3), reord: 1, gaps: 1},
		{name: "late by 200", in: append(append(seqs(0, 0), seqs(0, rng(2, 202)...)...), flowSeq{0, 1}), reord: 1, gaps: 1},
		{name: "late beyond window", in: append(append(seqs(0, 0), seqs(0, rng(2, 2000)...)...), flowSeq{0, 1}), reord: 1, gaps: 1},
		{name: "dup", in: seqs(0, 0, 1, 1, 2), dup: 1},
		{name: "dup of old", in: seqs(0, 0, 1, 2, 3, 4, 5, 1), dup: 1},
		{name: "dup of late", in: seqs(0, 0, 2, 1, 1), reord: 1, dup: 1, gaps: 1},
		{name: "dup then lost", in: seqs(0, 0, 0, 5), dup: 1, lost: 4, gaps: 4},
		{name: "before first", in: seqs(0, 5, 6, 4), reord: 1},
		{name: "flows independent",
			in:   append(append(seqs(0, 0, 1, 2), seqs(7, 10, 12)...), seqs(0, 3, 4)...),
			lost: 1, gaps: 1},
		{name: "window word boundary", in: append(seqs(0, rng(0, 64)...), seqs(0, 130, 65, 64, 65, 63, 129)...),
			lost: 63, gaps: 66, reord: 3, dup: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newSink(1)
			for _, s := range tc.in {
				k.add(s.flow, s.seq)
			}
			c := k.c
			if c.lost() != tc.lost || c.duplicates != tc.dup || c.reordered != tc.reord || c.gaps != tc.gaps {
				t.Errorf("lost %d dup %d reordered %d gaps %d, want %d %d %d %d",
					c.lost(), c.duplicates, c.reordered, c.gaps, tc.lost, tc.dup, tc.reord, tc.gaps)
			}
		})
	}
}

// TestSinkRandomLoss drops, duplicates and locally swaps frames of many
// flows at random and checks the sink's counts against the truth.
func TestSinkRandomLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const flows, per = 50, 2000
	type fs struct {
		flow uint16
		seq  uint64
	}
	var stream []fs
	var lost, dups uint64
	for s := uint64(0); s < per; s++ {
		for f := uint16(0); f < flows; f++ {
			// Keep the first and last of each flow: the sink cannot see
			// loss before the first or after the last frame.
			if s > 0 && s < per-1 && r.IntN(100) < 3 {
				lost++
				continue
			}
			stream = append(stream, fs{f, s})
			if r.IntN(1000) < 5 {
				stream = append(stream, fs{f, s})
				dups++
			}
		}
	}
	// Swap neighbours of different positions now and then (within 60
	// frames, i.e. within the sink's window per flow).
	swaps := 0
	for i := 0; i+60 < len(stream); i += 97 {
		j := i + 1 + r.IntN(59)
		if stream[i].flow == stream[j].flow || stream[i] == stream[j] {
			continue
		}
		stream[i], stream[j] = stream[j], stream[i]
		swaps++
	}
	k := newSink(0)
	for _, s := range stream {
		k.add(s.flow, s.seq)
	}
	if k.c.lost() != lost || k.c.duplicates != dups {
		t.Errorf("lost %d dup %d, want %d %d", k.c.lost(), k.c.duplicates, lost, dups)
	}
	t.Logf("%d frames, %d lost, %d dups, %d swaps -> %d reordered", len(stream), lost, dups, swaps, k.c.reordered)
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64, math.MaxUint64} {
		b := bucketOf(v)
		if b >= nBuckets || b < prev {
			t.Fatalf("value %d: bucket %d (previous %d, %d buckets)", v, b, prev, nBuckets)
		}
		prev = b
		lo, hi := bucketRange(b)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, b, lo, hi)
		}
		if v >= subCount && float64(hi-lo) > float64(lo)/subCount {
			t.Errorf("bucket %d = [%d, %d] wider than 1/%d", b, lo, hi, subCount)
		}
	}
	// Every bucket is contiguous with the next.
	for b := 0; b+1 < nBuckets; b++ {
		_, hi := bucketRange(b)
		lo, _ := bucketRange(b + 1)
		if lo != hi+1 {
			t.Fatalf("gap between buckets %d and %d: %d, %d", b, b+1, hi, lo)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	within := func(got, want int64) bool {
		return math.Abs(float64(got-want)) <= float64(want)/subCount+1
	}
	var h histogram
	// 1..1,000,000 ns uniformly.
	for v := int64(1); v <= 1_000_000; v++ {
		h.record(v)
	}
	l := h.latency()
	for _, c := range []struct {
		name      string
		got, want int64
	}{{"p50", l.P50, 500_000}, {"p99", l.P99, 990_000}, {"p999", l.P999, 999_000}, {"min", l.Min, 1}, {"max", l.Max, 1_000_000}} {
		if !within(c.got, c.want) {
			t.Errorf("uniform %s = %d, want %d ±1.6%%", c.name, c.got, c.want)
		}
	}
	if math.Abs(l.Mean-500_000.5) > 1 {
		t.Errorf("mean %f", l.Mean)
	}
	// A bimodal set: 99% at ~10µs, 1% at ~5ms, one outlier at 1s.
	h.reset()
	for i := 0; i < 99_000; i++ {
		h.record(10_000 + int64(i%100))
	}
	for i := 0; i < 999; i++ {
		h.record(5_000_000)
	}
	h.record(1_000_000_000)
	l = h.latency()
	if !within(l.P50, 10_050) || !within(l.P99, 10_099) || !within(l.P999, 5_000_000) || l.Max != 1_000_000_000 {
		t.Errorf("bimodal: %+v", l)
	}
	// Merging two halves gives the whole; negative values count as 0.
	var a, b histogram
	for v := int64(-5); v < 1000; v++ {
		if v%2 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(&b)
	if a.n != 1005 || a.min != 0 || a.max != 999 || !within(a.quantile(0.5), 497) {
		t.Errorf("merged: n %d min %d max %d p50 %d", a.n, a.min, a.max, a.quantile(0.5))
	}
	var empty histogram
	if empty.latency() != nil || empty.quantile(0.5) != 0 {
		t.Error("empty histogram has latencies")
	}
}
