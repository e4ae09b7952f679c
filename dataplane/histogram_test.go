package dataplane

import (
	"testing"
	"time"
)

// TestWaitHistogramBuckets checks that a wait lands in the first bucket whose bound it does
// not exceed (bounds inclusive, as Prometheus's le), and that the sum and count add up.
func TestWaitHistogramBuckets(t *testing.T) {
	var h waitHistogram
	cases := []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0},
		{time.Microsecond, 0},
		{time.Microsecond + 1, 1},
		{3 * time.Microsecond, 2},
		{time.Millisecond, 9},
		{100 * time.Millisecond, len(WaitBuckets) - 1},
		{100*time.Millisecond + 1, len(WaitBuckets)},
		{time.Hour, len(WaitBuckets)},
	}
	var sum time.Duration
	for _, c := range cases {
		before := h.snapshot()
		h.observe(c.d)
		after := h.snapshot()
		for i := range after.Counts {
			want := before.Counts[i]
			if i == c.bucket {
				want++
			}
			if after.Counts[i] != want {
				t.Errorf("%v: bucket %d went from %d to %d, want %d", c.d, i, before.Counts[i], after.Counts[i], want)
			}
		}
		sum += c.d
	}
	s := h.snapshot()
	if s.Sum != sum || s.Count() != uint64(len(cases)) {
		t.Errorf("sum %v count %d, want %v and %d", s.Sum, s.Count(), sum, len(cases))
	}
	var total WaitHistogram
	total.add(s)
	total.add(s)
	if total.Count() != 2*s.Count() || total.Sum != 2*s.Sum {
		t.Errorf("add: count %d sum %v, want %d and %v", total.Count(), total.Sum, 2*s.Count(), 2*s.Sum)
	}
}

// TestWaitBucketsAscend checks the bounds are strictly increasing, as Prometheus requires.
func TestWaitBucketsAscend(t *testing.T) {
	for i := 1; i < len(WaitBuckets); i++ {
		if WaitBuckets[i] <= WaitBuckets[i-1] {
			t.Fatalf("WaitBuckets[%d] = %v after %v", i, WaitBuckets[i], WaitBuckets[i-1])
		}
	}
}

// TestWaitHistogramObserveAllocs checks the merger's per-micro-flow cost allocates nothing.
func TestWaitHistogramObserveAllocs(t *testing.T) {
	var h waitHistogram
	if a := testing.AllocsPerRun(1000, func() { h.observe(7 * time.Microsecond) }); a != 0 {
		t.Errorf("observe allocates %v times", a)
	}
}
