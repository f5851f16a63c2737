package main

import (
	"math/bits"
	"sort"
	"time"
)

// subBits sets the histogram's resolution: each power of two is split into 2^subBits
// buckets, so a recorded value is off by less than 1/2^subBits (1.6 %) of itself.
const subBits = 6

// Hist counts durations in log-linear buckets, so that latencies of millions of events, and
// of other processes, can be summed up and merged without keeping every sample. The zero
// value is ready to use. It is not safe for concurrent use.
type Hist struct {
	// Counts maps a bucket index to its count; JSON keeps it sparse between processes.
	Counts map[int]uint64 `json:"counts"`
	N      uint64         `json:"n"`
	// Max is the largest value recorded, exactly, in nanoseconds.
	Max int64 `json:"max"`
}

func bucketOf(ns int64) int {
	if ns < 1<<subBits {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - subBits - 1
	return (e+1)<<subBits | int(uint64(ns)>>e)&(1<<subBits-1)
}

// valueOf is the middle of a bucket, in nanoseconds.
func valueOf(b int) int64 {
	if b < 1<<subBits {
		return int64(b)
	}
	e := b>>subBits - 1
	lo := int64(1<<subBits|b&(1<<subBits-1)) << e
	return lo + int64(1)<<e/2
}

// Record adds one duration.
func (h *Hist) Record(d time.Duration) {
	if h.Counts == nil {
		h.Counts = map[int]uint64{}
	}
	ns := int64(d)
	h.Counts[bucketOf(ns)]++
	h.N++
	h.Max = max(h.Max, ns)
}

// Merge adds every count of o to h.
func (h *Hist) Merge(o Hist) {
	if h.Counts == nil {
		h.Counts = map[int]uint64{}
	}
	for b, c := range o.Counts {
		h.Counts[b] += c
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Quantile is the duration below which a fraction q (0-1) of the recorded ones lie.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	keys := make([]int, 0, len(h.Counts))
	for b := range h.Counts {
		keys = append(keys, b)
	}
	sort.Ints(keys)
	rank := uint64(q*float64(h.N-1)) + 1
	seen := uint64(0)
	for _, b := range keys {
		seen += h.Counts[b]
		if seen >= rank {
			return time.Duration(min(valueOf(b), h.Max))
		}
	}
	return time.Duration(h.Max)
}

// Latency is the summary of a Hist that the report shows.
type Latency struct {
	P50, P99, Max time.Duration
	N             uint64
}

// Summary sums h up.
func (h *Hist) Summary() Latency {
	return Latency{P50: h.Quantile(0.50), P99: h.Quantile(0.99), Max: time.Duration(h.Max), N: h.N}
}
