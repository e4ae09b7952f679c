package bench

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// perfReport is `perf report --stdio --sort comm --no-children -g none` of a run of
// vxdp-both, with a made-up idle line.
const perfReport = `# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 1K of event 'cpu-clock:ppp'
#
# Overhead  Command        
# ........  ...............
#
    31.16%  vxdp           
    22.09%  iperf3         
    12.00%  swapper        
     5.72%  napi/ethB-870  
     3.45%  ksoftirqd/0    
     0.69%  ksoftirqd/1    
     0.49%  napi/ethA-868  
     0.30%  kworker/0:0-mld
     0.30%  kworker/u8:2-ip
     0.30%  napi/weird     
`

func TestPerfShares(t *testing.T) {
	got, err := perfShares(perfReport)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"vxdp": 31.16, "iperf3": 22.09, "idle": 12, "napi/ethB": 5.72, "napi/ethA": 0.49,
		"ksoftirqd": 4.14, "kworker": 0.6, "napi/weird": 0.3}
	if len(got) != len(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("%s: %v %%, want %v", k, got[k], w)
		}
	}
	for _, bad := range []string{"", "# only comments\n#\n", "   120.5%  vxdp\n"} {
		if _, err := perfShares(bad); !errors.Is(err, errProcFormat) {
			t.Errorf("perfShares(%q) = %v, want errProcFormat", bad, err)
		}
	}
}

func TestThreadGroup(t *testing.T) {
	for comm, want := range map[string]string{
		"swapper":          "idle",
		"swapper/1":        "idle",
		"napi/ethB-870":    "napi/ethB",
		"napi/eth-x-12":    "napi/eth-x",
		"napi/ethA-":       "napi/ethA-",
		"ksoftirqd/0":      "ksoftirqd",
		"kworker/u8:2-ip":  "kworker",
		"vxdp":             "vxdp",
		"opt14-after-pac":  "opt14-after-pac",
		"ip":               "ip",
		"rcu/preempt-like": "rcu/preempt-like",
	} {
		if got := threadGroup(comm); got != want {
			t.Errorf("threadGroup(%q) = %q, want %q", comm, got, want)
		}
	}
}

func TestSummaryPerf(t *testing.T) {
	r := costResults()
	for i := range r.Runs {
		if r.Runs[i].Config == "vxdp-send" && r.Runs[i].Workload == "tcp" {
			// 100 % in all: 40 vxdp, 30 iperf3, 10 on B's wire, 5 idle, 15 others.
			r.Runs[i].PerfShares = map[string]float64{"vxdp": 40, "iperf3": 30, "napi/ethB": 10, "idle": 5,
				"cc1": 10, "kworker": 5}
			if r.Runs[i].Rep == 2 {
				r.Runs[i].PerfShares["vxdp"] = 30 // median 35; other stays 15
			}
		}
	}
	var b strings.Builder
	r.summaryPerf(&b)
	s := b.String()
	want := "| tcp | vxdp-send | 35.0 | 30.0 | 0.0 | 10.0 | 0.0 | 5.0 | 15.0 |"
	if !strings.Contains(s, want) || strings.Count(s, "| tcp") != 1 {
		t.Errorf("perf table lacks %q or has other rows:\n%s", want, s)
	}
	r = costResults()
	b.Reset()
	r.summaryPerf(&b)
	if b.Len() != 0 {
		t.Errorf("perf table without profiles:\n%s", b.String())
	}
}

func TestAttribute(t *testing.T) {
	shares := map[string]float64{"vxdp": 40, "iperf3": 10, "idle": 50}
	attribute(shares, "vxdp", 25)   // another vxdp on the machine took 15
	attribute(shares, "iperf3", 10) // all of it the run's own
	attribute(shares, "napi/ethB", 0)
	want := map[string]float64{"vxdp": 25, "other vxdp": 15, "iperf3": 10, "idle": 50, "napi/ethB": 0}
	if len(shares) != len(want) {
		t.Errorf("shares %v, want %v", shares, want)
	}
	for k, w := range want {
		if shares[k] != w {
			t.Errorf("%s: %v, want %v", k, shares[k], w)
		}
	}
}
