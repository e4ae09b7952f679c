package dataplane

import (
	"sync/atomic"
	"time"
)

// WaitBuckets are the upper bounds of the reorder wait-time histogram: how long a finished
// micro-flow waited in the reorder stage for an earlier one of its queue. A micro-flow that
// waited for nothing takes well under a microsecond; one behind a worker that was descheduled
// waits a scheduler tick or more, so the bounds run from 1 µs to 100 ms in 1-2-5 steps.
var WaitBuckets = [...]time.Duration{
	1 * time.Microsecond, 2 * time.Microsecond, 5 * time.Microsecond,
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	1 * time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond,
}

// waitHistogram is a histogram of durations in the fixed WaitBuckets, written by one goroutine
// (a queue's merger) with plain atomic adds, once per micro-flow, and read by a scrape.
type waitHistogram struct {
	counts [len(WaitBuckets) + 1]atomic.Uint64 // the last: above every bound
	sum    atomic.Uint64                       // nanoseconds
}

// observe counts one duration. A handful of comparisons and two uncontended adds: no lock,
// no allocation. Bounds are inclusive, as Prometheus's le.
func (h *waitHistogram) observe(d time.Duration) {
	i := 0
	for i < len(WaitBuckets) && d > WaitBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(uint64(max(d, 0)))
}

// WaitHistogram is a snapshot of a reorder wait-time histogram.
type WaitHistogram struct {
	// Counts[i] is the number of waits in (WaitBuckets[i-1], WaitBuckets[i]]; the last
	// element counts the waits longer than every bound. Not cumulative.
	Counts [len(WaitBuckets) + 1]uint64
	// Sum is the total of every wait.
	Sum time.Duration
}

// Count returns the number of waits observed.
func (w WaitHistogram) Count() uint64 {
	var n uint64
	for _, c := range w.Counts {
		n += c
	}
	return n
}

// snapshot reads h. Each element is read atomically; together they are not one instant's.
func (h *waitHistogram) snapshot() WaitHistogram {
	var w WaitHistogram
	for i := range h.counts {
		w.Counts[i] = h.counts[i].Load()
	}
	w.Sum = time.Duration(h.sum.Load())
	return w
}

// add adds o to w.
func (w *WaitHistogram) add(o WaitHistogram) {
	for i := range w.Counts {
		w.Counts[i] += o.Counts[i]
	}
	w.Sum += o.Sum
}
