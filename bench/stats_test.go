package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7, 7, 1, 9, 8}, 7},
	} {
		in := slices.Clone(tc.xs)
		if got := Median(tc.xs); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("Median changed its input: %v to %v", in, tc.xs)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestMedianCI(t *testing.T) {
	for _, tc := range []struct {
		xs       []float64
		lo, hi   float64
		coverage float64
	}{
		// 5 samples: only [min, max] exists, 1 - 2/32.
		{[]float64{5, 2, 9, 4, 7}, 2, 9, 0.9375},
		// 6 samples: [min, max], 1 - 2/64.
		{[]float64{6, 1, 5, 2, 4, 3}, 1, 6, 0.96875},
		// 10 samples: [x(2), x(9)], 1 - 2·11/1024; [x(3), x(8)] gives only 0.891.
		{[]float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}, 2, 9, 1 - 2*11.0/1024},
		// 2 samples: [min, max] at 50 %.
		{[]float64{2, 1}, 1, 2, 0.5},
		// 1 sample: a point, no coverage.
		{[]float64{4}, 4, 4, 0},
	} {
		lo, hi, cov := MedianCI(tc.xs, 0.95)
		if lo != tc.lo || hi != tc.hi || math.Abs(cov-tc.coverage) > 1e-12 {
			t.Errorf("MedianCI(%v) = [%v, %v] %.6f, want [%v, %v] %.6f", tc.xs, lo, hi, cov, tc.lo, tc.hi, tc.coverage)
		}
	}
	if lo, hi, cov := MedianCI(nil, 0.95); !math.IsNaN(lo) || !math.IsNaN(hi) || !math.IsNaN(cov) {
		t.Errorf("MedianCI(nil) = %v, %v, %v, want NaNs", lo, hi, cov)
	}
}

// TestMedianCICoverage checks the stated coverage by simulation: the
// interval of 10 samples of an exponential distribution holds its median
// ln 2 about 97.9 % of the time.
func TestMedianCICoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 20000
	hits := 0
	var cov float64
	xs := make([]float64, 10)
	for range trials {
		for i := range xs {
			xs[i] = rng.ExpFloat64()
		}
		var lo, hi float64
		lo, hi, cov = MedianCI(xs, 0.95)
		if lo <= math.Ln2 && math.Ln2 <= hi {
			hits++
		}
	}
	got := float64(hits) / trials
	// Binomial standard error at 20000 trials is 0.001; allow 4 of them.
	if math.Abs(got-cov) > 0.004 {
		t.Errorf("simulated coverage %.4f, stated %.4f", got, cov)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{3, math.NaN(), 1, 2, math.Inf(1), 5, 4})
	want := Stat{N: 5, Median: 3, Lo: 1, Hi: 5, Coverage: 0.9375}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.Median) {
		t.Errorf("Summarize(nil) = %+v, want N 0 and NaN median", s)
	}
}

func TestBinomial(t *testing.T) {
	for _, tc := range []struct{ n, k, want int }{{5, 0, 1}, {5, 2, 10}, {10, 3, 120}, {30, 15, 155117520}, {4, 5, 0}, {4, -1, 0}} {
		if got := binomial(tc.n, tc.k); got != float64(tc.want) {
			t.Errorf("binomial(%d, %d) = %v, want %d", tc.n, tc.k, got, tc.want)
		}
	}
}
