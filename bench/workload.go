package bench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Write sizes of the first paper, in bytes: "the TCP packet size was set to
// 128 KB while the UDP packet size was set to 8 KB by default".
const (
	// TCPLength is the size of each TCP write (iperf3 -l).
	TCPLength = 128 << 10
	// UDPLength is the size of each UDP datagram (iperf3 -l). It is larger
	// than the overlay MTU, so the sender fragments every datagram's inner
	// IP packet into six, as in the paper.
	UDPLength = 8 << 10
)

// FlowCounts are the flow-pair counts of the flow sweep: the second paper's
// 1 to 16 "replicas" in powers of two.
var FlowCounts = []int{1, 2, 4, 8, 16}

// DatagramSizes are the UDP payload sizes of the packet-size sweep, in
// bytes: the first paper's 64 B to 8 KB, with 1400 as the largest that fits
// the 1450-byte overlay MTU unfragmented (1450 - 20 IP - 8 UDP = 1422).
var DatagramSizes = []int{64, 256, 1024, 1400, 4096, UDPLength}

// SweepConfigs names the configurations the flow and packet-size sweeps run
// on in the standard plans, so that the full suite fits its time budget:
// the two references, the best kernel tuning of the second paper, and vxdp.
var SweepConfigs = []string{"native", "kernel", "kernel-rfs+", "vxdp", "vxdp-send", "vxdp-both"}

// Offered rates of the efficiency workloads: rates that every configuration reached on
// the 2-core development machine, so that the CPU time per GB compares the same work.
const (
	// EfficiencyTCP is TCP's, in bit/s.
	EfficiencyTCP = 2e9
	// EfficiencyUDP is 8 KB UDP's, in bit/s.
	EfficiencyUDP = 0.8e9
	// EfficiencySmallPPS is 64 B UDP's, in datagrams per second.
	EfficiencySmallPPS = 40e3
)

// EfficiencyConfigs names the configurations the efficiency workloads run on in the
// standard plans: the references, vxdp in every direction, and the local switching.
var EfficiencyConfigs = []string{"native", "kernel", "vxdp", "vxdp-send", "vxdp-both", RefBridge, "local-tap", "local-tap-veth"}

// Workload is one iperf3 run shape, from container A (the client, the
// sender) to container B (the server, the receiver).
type Workload struct {
	// Name identifies the workload: tcp, udp, tcp-P4, udp-64.
	Name string `json:"name"`
	// UDP runs UDP at an unlimited rate (-u -b 0); otherwise TCP.
	UDP bool `json:"udp,omitempty"`
	// Length is the write or datagram size, iperf3 -l, in bytes.
	Length int `json:"length"`
	// Parallel is the number of parallel flows, iperf3 -P.
	Parallel int `json:"parallel"`
	// Rate is the offered rate in bit/s of UDP payload or TCP data, iperf3 -b; 0 is as
	// fast as it goes. A workload at a fixed rate measures cost, not speed: the CPU time
	// per GB delivered.
	Rate float64 `json:"rate,omitempty"`
	// Configs names the configurations it runs on; empty means every one.
	Configs []string `json:"configs,omitempty"`
}

// runsOn reports whether the workload runs on the configuration named name.
func (w Workload) runsOn(name string) bool {
	return len(w.Configs) == 0 || slices.Contains(w.Configs, name)
}

// Single-flow workloads of the first paper, the head of every plan.
func tcpFlows(p int, configs []string) Workload {
	name := "tcp"
	if p > 1 {
		name += "-P" + strconv.Itoa(p)
	}
	return Workload{Name: name, Length: TCPLength, Parallel: p, Configs: configs}
}

func udpSize(size int, configs []string) Workload {
	name := "udp"
	if size != UDPLength {
		name += "-" + strconv.Itoa(size)
	}
	return Workload{Name: name, UDP: true, Length: size, Parallel: 1, Configs: configs}
}

// efficiency returns the three workloads at a fixed rate: TCP, 8 KB UDP and 64 B UDP.
func efficiency(configs []string) []Workload {
	return []Workload{
		{Name: "tcp-2G", Length: TCPLength, Parallel: 1, Rate: EfficiencyTCP, Configs: configs},
		{Name: "udp-800M", UDP: true, Length: UDPLength, Parallel: 1, Rate: EfficiencyUDP, Configs: configs},
		{Name: "udp-64-40kpps", UDP: true, Length: 64, Parallel: 1, Rate: EfficiencySmallPPS * 64 * 8, Configs: configs},
	}
}

// Plan is what a benchmark runs: every workload on each of its
// configurations, Reps times, each run Duration long.
type Plan struct {
	// Mode names the plan in the outputs: "full", "quick", or anything.
	Mode string `json:"mode"`
	// Configs run in this order in the first repetition; each later
	// repetition starts one further along.
	Configs []Config `json:"configs"`
	// Workloads run in this order inside each configuration's block.
	Workloads []Workload `json:"workloads"`
	// Reps is the number of repetitions.
	Reps int `json:"reps"`
	// Duration is the length of each iperf3 run.
	Duration time.Duration `json:"duration_ns"`
}

// FullPlan is `make bench`: single-flow TCP and UDP on every configuration,
// the flow and packet-size sweeps on sweep (SweepConfigs if nil), 64 B UDP
// on the local configurations too, the efficiency workloads on eff
// (EfficiencyConfigs if nil), 5 repetitions of 5 s runs.
func FullPlan(configs []Config, sweep, eff []string) Plan {
	if sweep == nil {
		sweep = SweepConfigs
	}
	if eff == nil {
		eff = EfficiencyConfigs
	}
	ws := []Workload{tcpFlows(1, nil), udpSize(UDPLength, nil)}
	for _, p := range FlowCounts[1:] {
		ws = append(ws, tcpFlows(p, sweep))
	}
	for _, s := range DatagramSizes {
		switch s {
		case UDPLength:
		case 64:
			ws = append(ws, udpSize(s, append(slices.Clone(sweep), LocalConfigs...)))
		default:
			ws = append(ws, udpSize(s, sweep))
		}
	}
	ws = append(ws, efficiency(eff)...)
	return Plan{Mode: "full", Configs: configs, Workloads: ws, Reps: 5, Duration: 5 * time.Second}
}

// QuickPlan is `make bench-quick`, CI's smoke test: single-flow TCP, 8 KB
// and 64 B UDP on every configuration, and TCP at the efficiency rate on
// eff (EfficiencyConfigs if nil), once, 2 s per run.
func QuickPlan(configs []Config, eff []string) Plan {
	if eff == nil {
		eff = EfficiencyConfigs
	}
	ws := []Workload{tcpFlows(1, nil), udpSize(UDPLength, nil), udpSize(64, nil), efficiency(eff)[0]}
	return Plan{Mode: "quick", Configs: configs, Workloads: ws, Reps: 1, Duration: 2 * time.Second}
}

// validate checks names, counts and sizes before anything is built.
func (p Plan) validate() error {
	if len(p.Configs) == 0 || len(p.Workloads) == 0 {
		return fmt.Errorf("%w: no configurations or no workloads", ErrBadPlan)
	}
	if p.Reps < 1 {
		return fmt.Errorf("%w: %d repetitions", ErrBadPlan, p.Reps)
	}
	if p.Duration < time.Second {
		return fmt.Errorf("%w: runs of %v: iperf3 needs at least 1 s", ErrBadPlan, p.Duration)
	}
	names := map[string]bool{}
	for _, c := range p.Configs {
		if err := c.validate(); err != nil {
			return err
		}
		if names[c.Name] {
			return fmt.Errorf("%w: configuration %s twice", ErrBadPlan, c.Name)
		}
		names[c.Name] = true
	}
	wnames := map[string]bool{}
	for _, w := range p.Workloads {
		if w.Name == "" || wnames[w.Name] {
			return fmt.Errorf("%w: workload name %q empty or repeated", ErrBadPlan, w.Name)
		}
		wnames[w.Name] = true
		if w.Length < 1 || w.Length > 1<<20 || w.Parallel < 1 || w.Parallel > 128 {
			return fmt.Errorf("%w: workload %s: length %d, %d flows", ErrBadPlan, w.Name, w.Length, w.Parallel)
		}
		if w.Rate < 0 || math.IsNaN(w.Rate) || math.IsInf(w.Rate, 0) {
			return fmt.Errorf("%w: workload %s: rate %v", ErrBadPlan, w.Name, w.Rate)
		}
		if w.UDP && w.Length > 65507 {
			return fmt.Errorf("%w: workload %s: datagram of %d bytes", ErrBadPlan, w.Name, w.Length)
		}
	}
	return nil
}

// Runs returns the number of iperf3 runs the plan makes, for progress and
// time estimates.
func (p Plan) Runs() int {
	n := 0
	for _, c := range p.Configs {
		for _, w := range p.Workloads {
			if w.runsOn(c.Name) {
				n++
			}
		}
	}
	return n * p.Reps
}

// order returns the configurations in the order repetition rep (from 0)
// runs them: rotated by rep, so that no configuration always runs first or
// right after the same neighbour's teardown.
func (p Plan) order(rep int) []Config {
	n := len(p.Configs)
	out := make([]Config, 0, n)
	for i := range n {
		out = append(out, p.Configs[(i+rep)%n])
	}
	return out
}

// SelectWorkloads returns the workloads of ws named in names, in ws's order; a name
// that is not there is an error.
func SelectWorkloads(ws []Workload, names []string) ([]Workload, error) {
	return selectNamed(ws, names, "workload", func(w Workload) string { return w.Name })
}
