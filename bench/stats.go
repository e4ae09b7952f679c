package bench

import (
	"math"
	"slices"
)

// CILevel is the coverage the summary asks of an interval of the median.
const CILevel = 0.95

// Stat summarises the repetitions of one measurement: their median and a
// distribution-free interval of the median.
type Stat struct {
	// N is the number of samples.
	N int `json:"n"`
	// Median is the sample median (the mean of the two middle samples
	// when N is even).
	Median float64 `json:"median"`
	// Lo and Hi bound the interval of the median: two order statistics of
	// the samples, see MedianCI.
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	// Coverage is the interval's exact coverage probability.
	Coverage float64 `json:"coverage"`
}

// Summarize returns the median and the CILevel interval of xs. NaNs are
// left out; with no samples every field but N is NaN.
func Summarize(xs []float64) Stat {
	xs = finite(xs)
	if len(xs) == 0 {
		nan := math.NaN()
		return Stat{Median: nan, Lo: nan, Hi: nan, Coverage: nan}
	}
	lo, hi, cov := MedianCI(xs, CILevel)
	return Stat{N: len(xs), Median: Median(xs), Lo: lo, Hi: hi, Coverage: cov}
}

// finite returns the samples of xs that are neither NaN nor infinite.
func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// Median returns the median of xs, NaN if it is empty. It does not change xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianCI returns the order-statistic (binomial) confidence interval of
// the median of xs: the narrowest [x(k), x(n+1-k)] of the sorted samples
// whose coverage, 1 - 2·P(Binomial(n, ½) < k), is at least level. It assumes
// only independent samples of a continuous distribution. When no such k
// exists (n < 6 for 95 %), it returns [min, max] with its smaller coverage:
// 93.75 % for 5 samples. One sample gives a zero-width interval of coverage
// 0; no samples give NaNs.
func MedianCI(xs []float64, level float64) (lo, hi, coverage float64) {
	n := len(xs)
	if n == 0 {
		nan := math.NaN()
		return nan, nan, nan
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n == 1 {
		return s[0], s[0], 0
	}
	k := 1
	for c := n / 2; c >= 1; c-- {
		if medianCoverage(n, c) >= level {
			k = c
			break
		}
	}
	return s[k-1], s[n-k], medianCoverage(n, k)
}

// medianCoverage is the probability that [x(k), x(n+1-k)] holds the median
// of the distribution: 1 - 2·P(Binomial(n, ½) ≤ k-1).
func medianCoverage(n, k int) float64 {
	tail := 0.0
	for i := 0; i < k; i++ {
		tail += binomial(n, i)
	}
	return 1 - 2*tail*math.Pow(0.5, float64(n))
}

// binomial returns n choose k as a float64, exact well beyond the sample
// counts a benchmark takes.
func binomial(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return math.Round(r)
}
