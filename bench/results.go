package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Results is everything one benchmark measured: what ran, one record per
// iperf3 run and one per configuration block. It is what results.json
// holds, and what the summary, the CSV and the plots are made from.
type Results struct {
	// Meta describes the machine and the run.
	Meta Meta `json:"meta"`
	// Plan is what was asked for.
	Plan Plan `json:"plan"`
	// Runs has one record per iperf3 run, in the order they ran.
	Runs []Measurement `json:"runs"`
	// Blocks has one record per configuration block (one configuration
	// set up, its workloads run, torn down), in the order they ran.
	Blocks []Block `json:"blocks"`
}

// Meta describes the machine and the benchmark run.
type Meta struct {
	// Started and Finished are the wall-clock bounds of the run.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Kernel is the running kernel's release and version (uname -rv).
	Kernel string `json:"kernel"`
	// Cores is the number of CPUs in /proc/stat.
	Cores int `json:"cores"`
	// Iperf3 is iperf3's version line.
	Iperf3 string `json:"iperf3"`
	// VXDP is the vxdp binary used, empty when no configuration needs it.
	VXDP string `json:"vxdp,omitempty"`
	// Wire is how the wire between the hosts behaved (topo.WireKind): "nic" or
	// "plain"; empty in results from before it was recorded, which ran on the plain
	// wire.
	Wire string `json:"wire,omitempty"`
	// MTU is the wire's MTU when set with -mtu (the overlay's is 50 bytes less); 0: 1500.
	MTU int `json:"mtu,omitempty"`
	// Interrupted is set when a signal stopped the run: the results are
	// partial.
	Interrupted bool `json:"interrupted,omitempty"`
	// Error is what stopped the run early, if anything did.
	Error string `json:"error,omitempty"`
}

// Measurement is one iperf3 run and what the machine did meanwhile. Counts are
// deltas over the run; per-core slices are indexed by CPU number.
type Measurement struct {
	// Rep is the repetition, from 1.
	Rep int `json:"rep"`
	// Config and Workload name what ran.
	Config   string `json:"config"`
	Workload string `json:"workload"`
	// Start is when the run began.
	Start time.Time `json:"start"`
	// Seconds is the length of the measurement window (iperf3's own
	// start-up included), over which CPU shares and rates are taken.
	Seconds float64 `json:"seconds"`
	// Error is why the run produced no numbers; empty when it worked.
	Error string `json:"error,omitempty"`

	// BitsPerSecond is the receiver's goodput.
	BitsPerSecond float64 `json:"bits_per_second"`
	// Bytes is the number of bytes the receiver got.
	Bytes float64 `json:"bytes"`
	// Retransmits is the sender's TCP retransmissions (TCP).
	Retransmits int `json:"retransmits"`
	// Packets and LostPackets are the UDP datagrams sent and lost; OutOfOrder
	// those the server saw out of sequence (UDP).
	Packets     int `json:"packets,omitempty"`
	LostPackets int `json:"lost_packets,omitempty"`
	OutOfOrder  int `json:"out_of_order,omitempty"`
	// PacketsPerSecond is the UDP datagrams received per second of
	// iperf3's own test time (UDP).
	PacketsPerSecond float64 `json:"packets_per_second,omitempty"`

	// CPU is each core's time split, in percent of the window.
	CPU []CoreCPU `json:"cpu"`
	// BusySeconds is the CPU time the whole machine spent busy over the window, summed
	// over its cores, in seconds: the run time of every task, kernel threads included, as
	// the root cgroup accounts it in nanoseconds (BusySource "cgroup"), or where no
	// cgroup says, user, nice, system, irq and softirq ticks from /proc/stat (idle,
	// iowait and steal left out; BusySource "proc-stat"). Some VMs' /proc/stat loses and
	// gains ticks (one here counted 1,080 to 1,912 of 1,600 in 8 s), the cgroup's clock
	// does not.
	BusySeconds float64 `json:"busy_seconds"`
	// BusySource says where BusySeconds comes from: "cgroup" or "proc-stat".
	BusySource string `json:"busy_source,omitempty"`
	// NetRx and NetTx are the NET_RX and NET_TX softirqs per core.
	NetRx []uint64 `json:"net_rx"`
	NetTx []uint64 `json:"net_tx"`
	// IRQs is every interrupt per core (/proc/interrupts summed); IPIs is
	// the function-call IPIs (CAL) among them, which RPS raises to hand a
	// packet to another core.
	IRQs []uint64 `json:"irqs"`
	IPIs []uint64 `json:"ipis"`
	// Net is the change of the receiver namespace's SNMP counters listed in
	// netCounters: TcpExt.TCPOFOQueue (segments queued out of order), ...
	Net map[string]int64 `json:"net,omitempty"`
	// Profiles are the CPU profiles of the vxdp processes over the run
	// (Options.ProfileDir), file names in that directory; ProfileError says
	// why one is missing. A missing profile does not fail the run.
	Profiles     []string `json:"profiles,omitempty"`
	ProfileError string   `json:"profile_error,omitempty"`
	// Perf is the whole machine's profile over the run (Options.PerfDir), `perf record
	// -a -g`, its file name in that directory; PerfError says why it is missing. A
	// missing profile does not fail the run.
	Perf      string `json:"perf,omitempty"`
	PerfError string `json:"perf_error,omitempty"`
	// PerfShares is that profile's samples by thread group (vxdp, iperf3, napi/ethB,
	// ksoftirqd, idle, ...: see threadGroup), in percent of all samples.
	PerfShares map[string]float64 `json:"perf_shares,omitempty"`
}

// CPUPerGB is the machine's busy CPU-seconds per GB (1e9 bytes) the receiver got: the
// cost of carrying the traffic, whatever carried it. NaN when either is unknown.
func (r Measurement) CPUPerGB() float64 {
	if r.Bytes <= 0 || r.BusySeconds <= 0 {
		return math.NaN()
	}
	return r.BusySeconds / (r.Bytes / 1e9)
}

// OK reports whether the run produced numbers.
func (r Measurement) OK() bool { return r.Error == "" && r.BitsPerSecond > 0 }

// CoreCPU is one core's time over a run, in percent: User is usr + nice,
// Idle is idle + iowait, Steal the time the hypervisor gave away.
type CoreCPU struct {
	User    float64 `json:"usr"`
	System  float64 `json:"sys"`
	IRQ     float64 `json:"irq"`
	Softirq float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
	Idle    float64 `json:"idle"`
}

// Busy is the share of the core not idle, in percent.
func (c CoreCPU) Busy() float64 { return 100 - c.Idle }

// Block is one configuration's block in one repetition: set up, every
// workload run, torn down.
type Block struct {
	// Rep is the repetition, from 1, and Config the configuration.
	Rep    int    `json:"rep"`
	Config string `json:"config"`
	// SetupSeconds is how long the configuration took to set up, and
	// TeardownSeconds to tear down.
	SetupSeconds    float64 `json:"setup_seconds"`
	TeardownSeconds float64 `json:"teardown_seconds"`
	// Error is what went wrong setting up or tearing down.
	Error string `json:"error,omitempty"`
	// VXDP has the counters of each vxdp process of the block, as it
	// printed them on exit.
	VXDP []VXDPCounters `json:"vxdp,omitempty"`
}

// VXDPCounters is what one vxdp process counted over a block.
type VXDPCounters struct {
	// Side is the host it ran on, "A" or "B".
	Side string `json:"side"`
	// Counters are the integer fields of its final "counters" log line.
	Counters map[string]int64 `json:"counters,omitempty"`
	// Error is set when it did not exit cleanly or printed no counters.
	Error string `json:"error,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write results json: %w", err)
	}
	return nil
}

// ReadResults reads results.json as WriteJSON wrote it.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	return &r, nil
}

// cores returns the number of per-core columns the runs need.
func (r *Results) cores() int {
	n := r.Meta.Cores
	for _, run := range r.Runs {
		n = max(n, len(run.CPU), len(run.NetRx), len(run.NetTx), len(run.IRQs))
	}
	return n
}

// netKeys returns the SNMP counter names any run recorded, sorted.
func (r *Results) netKeys() []string {
	seen := map[string]bool{}
	for _, n := range netCounters {
		seen[n] = true
	}
	for _, run := range r.Runs {
		for k := range run.Net {
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteCSV writes one row per run: the scalars, then per-core columns
// (cpu<N>_usr ... cpu<N>_irqs) for every core, then the SNMP counters.
// Numbers a run did not produce are empty cells.
func (r *Results) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cores := r.cores()
	nets := r.netKeys()
	header := []string{"rep", "config", "workload", "protocol", "length", "parallel", "rate", "start", "seconds", "ok", "error",
		"bits_per_second", "bytes", "retransmits", "packets", "lost_packets", "out_of_order", "packets_per_second",
		"busy_seconds", "cpu_seconds_per_gb"}
	for c := range cores {
		p := "cpu" + strconv.Itoa(c) + "_"
		header = append(header, p+"usr", p+"sys", p+"irq", p+"softirq", p+"steal", p+"idle",
			p+"net_rx", p+"net_tx", p+"irqs", p+"ipis")
	}
	header = append(header, nets...)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("write results csv: %w", err)
	}
	workloads := map[string]Workload{}
	for _, wl := range r.Plan.Workloads {
		workloads[wl.Name] = wl
	}
	for _, run := range r.Runs {
		wl := workloads[run.Workload]
		proto := "tcp"
		if wl.UDP {
			proto = "udp"
		}
		row := []string{strconv.Itoa(run.Rep), run.Config, run.Workload, proto, strconv.Itoa(wl.Length),
			strconv.Itoa(wl.Parallel), fmtFloat(wl.Rate), run.Start.UTC().Format(time.RFC3339), fmtFloat(run.Seconds),
			strconv.FormatBool(run.OK()), run.Error}
		if run.OK() {
			row = append(row, fmtFloat(run.BitsPerSecond), fmtFloat(run.Bytes), strconv.Itoa(run.Retransmits),
				strconv.Itoa(run.Packets), strconv.Itoa(run.LostPackets), strconv.Itoa(run.OutOfOrder),
				fmtFloat(run.PacketsPerSecond), fmtFloat(run.BusySeconds), fmtFloat(run.CPUPerGB()))
		} else {
			row = append(row, "", "", "", "", "", "", "", "", "")
		}
		for c := range cores {
			if c < len(run.CPU) {
				u := run.CPU[c]
				row = append(row, fmtFloat(u.User), fmtFloat(u.System), fmtFloat(u.IRQ), fmtFloat(u.Softirq),
					fmtFloat(u.Steal), fmtFloat(u.Idle))
			} else {
				row = append(row, "", "", "", "", "", "")
			}
			for _, s := range [][]uint64{run.NetRx, run.NetTx, run.IRQs, run.IPIs} {
				if c < len(s) {
					row = append(row, strconv.FormatUint(s[c], 10))
				} else {
					row = append(row, "")
				}
			}
		}
		for _, k := range nets {
			if v, ok := run.Net[k]; ok {
				row = append(row, strconv.FormatInt(v, 10))
			} else {
				row = append(row, "")
			}
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write results csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write results csv: %w", err)
	}
	return nil
}

// fmtFloat formats x with the fewest digits that read back exactly; NaN and
// infinities become empty cells.
func fmtFloat(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// WriteFiles writes results.json, results.csv, summary.md and the PNG plots
// into dir, creating it, and returns the names of the files written.
func (r *Results) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write results: %w", err)
	}
	var files []string
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"results.json", r.WriteJSON},
		{"results.csv", r.WriteCSV},
		{"summary.md", r.WriteSummary},
	} {
		if err := writeFile(filepath.Join(dir, f.name), f.write); err != nil {
			return files, err
		}
		files = append(files, f.name)
	}
	plots, err := r.WritePlots(dir)
	return append(files, plots...), err
}

// writeFile creates path and fills it with write.
func writeFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write results: %w", cerr)
		}
	}()
	return write(f)
}
