package bench

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// metric extracts one number from a successful run.
type metric func(Measurement) float64

func gbps(m Measurement) float64 { return m.BitsPerSecond / 1e9 }
func kpps(m Measurement) float64 { return m.PacketsPerSecond / 1e3 }
func retrans(m Measurement) float64 {
	return float64(m.Retransmits)
}
func ofoQueue(m Measurement) float64 {
	v, ok := m.Net["TcpExt.TCPOFOQueue"]
	if !ok {
		return math.NaN()
	}
	return float64(v)
}
func lossPct(m Measurement) float64 {
	if m.Packets == 0 {
		return math.NaN()
	}
	return 100 * float64(m.LostPackets) / float64(m.Packets)
}

// samples returns metric f of every successful run of workload w on
// configuration c, by repetition.
func (r *Results) samples(c, w string, f metric) map[int]float64 {
	out := map[int]float64{}
	for _, m := range r.Runs {
		if m.Config == c && m.Workload == w && m.OK() {
			out[m.Rep] = f(m)
		}
	}
	return out
}

// stat returns the median and interval of metric f of workload w on
// configuration c over the repetitions.
func (r *Results) stat(c, w string, f metric) Stat {
	return Summarize(slices.Collect(maps.Values(r.samples(c, w, f))))
}

// ratio returns the median and interval of the per-repetition ratio of
// metric f of configuration c to that of configuration ref: pairing runs of
// the same repetition cancels the drift that interleaving spreads over all
// configurations. Repetitions where either failed are left out.
func (r *Results) ratio(c, ref, w string, f metric) Stat {
	num, den := r.samples(c, w, f), r.samples(ref, w, f)
	var xs []float64
	for rep, x := range num {
		if y, ok := den[rep]; ok && y != 0 {
			xs = append(xs, x/y)
		}
	}
	return Summarize(xs)
}

// hasConfig reports whether the plan has a configuration named name.
func (r *Results) hasConfig(name string) bool {
	return slices.ContainsFunc(r.Plan.Configs, func(c Config) bool { return c.Name == name })
}

// singleTCP and singleUDP find the single-flow workloads of the first
// paper: TCP with 128 KB writes, UDP with 8 KB datagrams.
func (r *Results) singleTCP() (Workload, bool) {
	for _, w := range r.Plan.Workloads {
		if !w.UDP && w.Parallel == 1 && w.Length == TCPLength && w.Rate == 0 {
			return w, true
		}
	}
	return Workload{}, false
}

func (r *Results) singleUDP() (Workload, bool) {
	return r.udpOf(UDPLength)
}

// smallUDP finds the single-flow UDP workload of 64-byte datagrams.
func (r *Results) smallUDP() (Workload, bool) {
	return r.udpOf(64)
}

func (r *Results) udpOf(length int) (Workload, bool) {
	for _, w := range r.Plan.Workloads {
		if w.UDP && w.Parallel == 1 && w.Length == length && w.Rate == 0 {
			return w, true
		}
	}
	return Workload{}, false
}

// rated returns the workloads at a fixed rate, in plan order.
func (r *Results) rated() []Workload {
	var ws []Workload
	for _, w := range r.Plan.Workloads {
		if w.Rate > 0 {
			ws = append(ws, w)
		}
	}
	return ws
}

// config returns the plan's configuration named name.
func (r *Results) config(name string) (Config, bool) {
	i := slices.IndexFunc(r.Plan.Configs, func(c Config) bool { return c.Name == name })
	if i < 0 {
		return Config{}, false
	}
	return r.Plan.Configs[i], true
}

// flowSweep returns the TCP workloads with 128 KB writes by flow count, and
// sizeSweep the single-flow UDP workloads by datagram size.
func (r *Results) flowSweep() []Workload {
	var ws []Workload
	for _, w := range r.Plan.Workloads {
		if !w.UDP && w.Length == TCPLength && w.Rate == 0 {
			ws = append(ws, w)
		}
	}
	slices.SortStableFunc(ws, func(a, b Workload) int { return a.Parallel - b.Parallel })
	return ws
}

func (r *Results) sizeSweep() []Workload {
	var ws []Workload
	for _, w := range r.Plan.Workloads {
		if w.UDP && w.Parallel == 1 && w.Rate == 0 {
			ws = append(ws, w)
		}
	}
	slices.SortStableFunc(ws, func(a, b Workload) int { return a.Length - b.Length })
	return ws
}

// sweepConfigs returns the configurations between two hosts that run more
// of the sweep than its single-flow point, in plan order.
func (r *Results) sweepConfigs(ws []Workload) []Config {
	var out []Config
	for _, c := range r.Plan.Configs {
		if c.Local {
			continue
		}
		n := 0
		for _, w := range ws {
			if w.runsOn(c.Name) {
				n++
			}
		}
		if n > 1 {
			out = append(out, c)
		}
	}
	return out
}

// fmtNum prints x with three significant digits, without exponent for the
// ranges a benchmark sees.
func fmtNum(x float64) string {
	switch a := math.Abs(x); {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "—"
	case a >= 100 || x == math.Trunc(x):
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

// fmtStat prints a median with its interval: "3.21 (2.90–3.40)", the
// median alone for one sample, "—" for none.
func fmtStat(s Stat) string {
	switch {
	case s.N == 0:
		return "—"
	case s.N == 1 || s.Lo == s.Hi:
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Lo), fmtNum(s.Hi))
}

// fmtRatio prints a ratio's median: "0.82×", "—" for none.
func fmtRatio(s Stat) string {
	if s.N == 0 {
		return "—"
	}
	return fmtNum(s.Median) + "×"
}

// table writes a markdown table.
func table(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, row := range rows {
		for i := range row {
			row[i] = strings.ReplaceAll(row[i], "|", "\\|")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
}

// WriteSummary writes summary.md: the tables of the papers, each with its
// ratios to the kernel and to native from the same run.
func (r *Results) WriteSummary(w io.Writer) error {
	var b strings.Builder
	r.summaryHead(&b)
	r.summarySingle(&b)
	r.summaryDirections(&b)
	r.summaryLocal(&b)
	r.summaryEfficiency(&b)
	r.summaryFlows(&b)
	r.summarySizes(&b)
	r.summaryCPU(&b)
	r.summaryPerf(&b)
	r.summaryVXDP(&b)
	r.summaryFailures(&b)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

func (r *Results) summaryHead(b *strings.Builder) {
	m := r.Meta
	fmt.Fprintf(b, "# vxdp benchmark, %s plan, %s\n\n", r.Plan.Mode, m.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "Linux %s, %d cores, %s. %d repetition(s) of %v per configuration and workload; wall time %v.\n\n",
		m.Kernel, m.Cores, m.Iperf3, r.Plan.Reps, r.Plan.Duration, m.Finished.Sub(m.Started).Round(time.Second))
	fmt.Fprintf(b, "Wire: %s.\n\n", wireNote(m.Wire))
	if m.MTU > 0 {
		fmt.Fprintf(b, "MTU: %d on the wire, %d in the overlay.\n\n", m.MTU, m.MTU-vxlanOverhead)
	}
	if m.Interrupted {
		fmt.Fprintf(b, "**Interrupted: partial results.**\n\n")
	}
	if m.Error != "" {
		fmt.Fprintf(b, "**Stopped early: %s**\n\n", strings.ReplaceAll(m.Error, "\n", " "))
	}
	fmt.Fprintf(b, "Each cell is the median over the repetitions, with in parentheses the order-statistic "+
		"interval of the median: the narrowest pair of order statistics with at least 95 %% coverage, "+
		"or min–max when there are too few samples for that (%s). ×kernel and ×native are medians of "+
		"the ratios to the kernel and native runs of the same repetition. CPU and interrupt counts are "+
		"the whole machine's: both hosts, both containers, iperf3's client and server share its cores. "+
		"Absolute numbers move from run to run on a shared machine; ratios within one run hold.\n\n",
		coverageNote(r.Plan.Reps))
	rows := [][]string{}
	for _, c := range r.Plan.Configs {
		rows = append(rows, []string{c.Name, c.Description})
	}
	table(b, []string{"configuration", "what carries the traffic"}, rows)
}

func (r *Results) summarySingle(b *strings.Builder) {
	tcp, okT := r.singleTCP()
	udp, okU := r.singleUDP()
	if !okT && !okU {
		return
	}
	frag := "each fragmented into six inner IP fragments by the 1450-byte overlay MTU, 1500 native"
	if m := r.Meta.MTU; m > 0 {
		frag = fmt.Sprintf("the overlay MTU is %d, %d native", m-vxlanOverhead, m)
	}
	fmt.Fprintf(b, "## One flow\n\nTCP with 128 KB writes; UDP with 8 KB datagrams at an unlimited rate "+
		"(%s). Gbit/s received.\n\n", frag)
	header := []string{"configuration"}
	if okT {
		header = append(header, "TCP Gbit/s", "×kernel", "×native", "retransmits", "OFO queued")
	}
	if okU {
		header = append(header, "UDP Gbit/s", "×kernel", "×native", "kpps", "lost %")
	}
	var rows [][]string
	for _, c := range r.Plan.Configs {
		if c.Local {
			continue // their own table, against the kernel's bridge
		}
		row := []string{c.Name}
		if okT {
			row = append(row, fmtStat(r.stat(c.Name, tcp.Name, gbps)),
				r.ratioCell(c.Name, RefKernel, tcp.Name), r.ratioCell(c.Name, RefNative, tcp.Name),
				fmtStat(r.stat(c.Name, tcp.Name, retrans)), fmtStat(r.stat(c.Name, tcp.Name, ofoQueue)))
		}
		if okU {
			row = append(row, fmtStat(r.stat(c.Name, udp.Name, gbps)),
				r.ratioCell(c.Name, RefKernel, udp.Name), r.ratioCell(c.Name, RefNative, udp.Name),
				fmtStat(r.stat(c.Name, udp.Name, kpps)), fmtStat(r.stat(c.Name, udp.Name, lossPct)))
		}
		rows = append(rows, row)
	}
	table(b, header, rows)
}

// coverageNote says what interval n samples give.
func coverageNote(n int) string {
	if n < 2 {
		return "one repetition: no interval"
	}
	k := 1
	for c := n / 2; c >= 1; c-- {
		if medianCoverage(n, c) >= CILevel {
			k = c
			break
		}
	}
	if k == 1 {
		return fmt.Sprintf("%d repetitions: min–max, coverage %.1f %%", n, 100*medianCoverage(n, 1))
	}
	return fmt.Sprintf("%d repetitions: the %s smallest and largest, coverage %.1f %%", n, ordinal(k), 100*medianCoverage(n, k))
}

// ordinal returns "2nd", "3rd", "4th", ...
func ordinal(k int) string {
	switch {
	case k%100 >= 11 && k%100 <= 13:
		return fmt.Sprintf("%dth", k)
	case k%10 == 1:
		return fmt.Sprintf("%dst", k)
	case k%10 == 2:
		return fmt.Sprintf("%dnd", k)
	case k%10 == 3:
		return fmt.Sprintf("%drd", k)
	}
	return fmt.Sprintf("%dth", k)
}

// wireNote says in words what the wire was.
func wireNote(kind string) string {
	switch kind {
	case "nic":
		return "nic, a veth pair that behaves like a NIC between two hosts: MTU-sized frames with finished " +
			"checksums (segmentation and TX checksum offloads off), and each end receives in batches in its own " +
			"NAPI thread, with GRO"
	case "plain", "":
		return "plain, a veth pair without GRO or NAPI: the receiving end's whole path runs inside the sender's " +
			"transmit, one frame at a time (segmentation and TX checksum offloads off)"
	}
	return kind
}

// summaryDirections writes the headline: each configuration between two hosts against
// the kernel's overlay, for one TCP flow, 8 KB UDP and 64 B UDP.
func (r *Results) summaryDirections(b *strings.Builder) {
	if !r.hasConfig(RefKernel) {
		return
	}
	type col struct {
		w Workload
		f metric
	}
	var cols []col
	var header []string
	for _, x := range []struct {
		find func() (Workload, bool)
		f    metric
		name string
	}{{r.singleTCP, gbps, "TCP"}, {r.singleUDP, gbps, "8 KB UDP"}, {r.smallUDP, kpps, "64 B UDP (packets)"}} {
		if w, ok := x.find(); ok {
			cols = append(cols, col{w, x.f})
			header = append(header, x.name)
		}
	}
	var rows [][]string
	for _, c := range r.Plan.Configs {
		if c.Local || c.Name == RefKernel {
			continue
		}
		row := []string{c.Name, c.Description}
		for _, x := range cols {
			if !x.w.runsOn(c.Name) {
				row = append(row, "")
				continue
			}
			row = append(row, fmtRatio(r.ratio(c.Name, RefKernel, x.w.Name, x.f)))
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 || len(cols) == 0 {
		return
	}
	fmt.Fprintf(b, "## Against the kernel, every direction\n\nEach configuration between the two hosts as a multiple "+
		"of the kernel's vxlan in the same repetition (medians of the ratios): throughput for TCP and 8 KB UDP, "+
		"datagrams received per second for 64 B UDP.\n\n")
	table(b, append([]string{"configuration", "what"}, header...), rows)
}

// summaryLocal writes the local switching table: two containers of one node, against
// the kernel's bridge.
func (r *Results) summaryLocal(b *strings.Builder) {
	var cs []Config
	for _, c := range r.Plan.Configs {
		if c.Local {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return
	}
	header := []string{"configuration"}
	type col struct {
		w Workload
		f metric
	}
	var cols []col
	for _, x := range []struct {
		find func() (Workload, bool)
		f    metric
		name string
	}{{r.singleTCP, gbps, "TCP Gbit/s"}, {r.singleUDP, gbps, "8 KB UDP Gbit/s"}, {r.smallUDP, kpps, "64 B UDP kpps"}} {
		if w, ok := x.find(); ok {
			cols = append(cols, col{w, x.f})
			header = append(header, x.name, "×bridge")
		}
	}
	var rows [][]string
	for _, c := range cs {
		row := []string{c.Name}
		for _, x := range cols {
			if !x.w.runsOn(c.Name) {
				row = append(row, "", "")
				continue
			}
			ratio := ""
			if c.Name != RefBridge && r.hasConfig(RefBridge) {
				ratio = fmtRatio(r.ratio(c.Name, RefBridge, x.w.Name, x.f))
			}
			row = append(row, fmtStat(r.stat(c.Name, x.w.Name, x.f)), ratio)
		}
		rows = append(rows, row)
	}
	fmt.Fprintf(b, "## Two containers on one node\n\nBoth containers on host B, switched there: by the kernel's "+
		"bridge between two veths (%s), or by one vxdp with a port into each. Nothing crosses the wire. "+
		"×bridge is the median of the ratios to %s in the same repetition.\n\n", RefBridge, RefBridge)
	table(b, header, rows)
}

// summaryEfficiency writes what each configuration cost at the fixed rates: the
// machine's busy CPU-seconds per GB received, and their ratio to the reference's.
func (r *Results) summaryEfficiency(b *strings.Builder) {
	ws := r.rated()
	if len(ws) == 0 {
		return
	}
	fmt.Fprintf(b, "## Cost at a fixed rate\n\nAt an offered rate every configuration reaches, the whole machine's "+
		"busy CPU time (every task's run time, kernel threads included, from the root cgroup; /proc/stat's "+
		"usr, sys, irq and softirq ticks where no cgroup says) over the run per GB (10⁹ bytes) "+
		"the receiver got. Lower is cheaper. × reference is the median of the ratios to %s (%s for the "+
		"local configurations) in the same repetition; \"received\" says whether the rate was reached.\n\n",
		RefKernel, RefBridge)
	var rows [][]string
	for _, w := range ws {
		for _, c := range r.Plan.Configs {
			if !w.runsOn(c.Name) {
				continue
			}
			ref := c.Ref()
			ratio := ""
			if c.Name != ref && r.hasConfig(ref) {
				ratio = fmtRatio(r.ratio(c.Name, ref, w.Name, cpuPerGB))
			}
			received := r.stat(c.Name, w.Name, gbps)
			share := math.NaN()
			if received.N > 0 {
				share = 100 * received.Median * 1e9 / w.Rate
			}
			rows = append(rows, []string{w.Name, c.Name, offered(w), fmtStat(received), fmtNum(share),
				fmtStat(r.stat(c.Name, w.Name, busy)), fmtStat(r.stat(c.Name, w.Name, cpuPerGB)), ratio})
		}
	}
	table(b, []string{"workload", "configuration", "offered", "received Gbit/s", "received % of offered",
		"busy CPU-s", "CPU-s per GB", "× reference"}, rows)
}

// offered says a fixed-rate workload's offered rate the way it was chosen: in
// datagrams per second for small datagrams, in bit/s otherwise.
func offered(w Workload) string {
	if w.UDP && w.Length < 1000 {
		return fmtNum(w.Rate/8/float64(w.Length)/1e3) + " kpps"
	}
	return fmtNum(w.Rate/1e9) + " Gbit/s"
}

func cpuPerGB(m Measurement) float64 { return m.CPUPerGB() }
func busy(m Measurement) float64 {
	if m.BusySeconds <= 0 {
		return math.NaN()
	}
	return m.BusySeconds
}

// ratioCell is the throughput ratio of c to ref on workload w, blank when
// ref is c or not in the plan.
func (r *Results) ratioCell(c, ref, w string) string {
	if c == ref || !r.hasConfig(ref) {
		return ""
	}
	return fmtRatio(r.ratio(c, ref, w, gbps))
}

func (r *Results) summaryFlows(b *strings.Builder) {
	ws := r.flowSweep()
	cs := r.sweepConfigs(ws)
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(b, "## Throughput against flow count\n\nTCP, 128 KB writes, iperf3 -P n between the same two "+
		"containers. Gbit/s received, then the ratio to the kernel.\n\n")
	r.sweepTables(b, ws, cs, "flows", func(w Workload) string { return fmt.Sprint(w.Parallel) }, gbps)
}

func (r *Results) summarySizes(b *strings.Builder) {
	ws := r.sizeSweep()
	cs := r.sweepConfigs(ws)
	if len(cs) == 0 {
		return
	}
	mtu := 1500
	if r.Meta.MTU > 0 {
		mtu = r.Meta.MTU
	}
	fmt.Fprintf(b, "## UDP against datagram size\n\nOne flow at an unlimited rate. Datagrams above %d B "+
		"(%d B native) are fragmented. Thousands of datagrams received per second, then Gbit/s, then "+
		"the packet-rate ratio to the kernel.\n\n", mtu-vxlanOverhead-28, mtu-28)
	label := func(w Workload) string { return fmt.Sprintf("%d B", w.Length) }
	r.sweepTables(b, ws, cs, "kpps", label, kpps)
	r.sweepTables(b, ws, cs, "Gbit/s", label, gbps)
}

// sweepTables writes the median table of metric f over workloads ws for
// configurations cs, then, under the medians, the ratio to the kernel.
func (r *Results) sweepTables(b *strings.Builder, ws []Workload, cs []Config, what string, label func(Workload) string, f metric) {
	header := []string{what}
	for _, w := range ws {
		header = append(header, label(w))
	}
	var rows, ratios [][]string
	for _, c := range cs {
		row := []string{c.Name}
		rrow := []string{c.Name}
		for _, w := range ws {
			if !w.runsOn(c.Name) {
				row, rrow = append(row, ""), append(rrow, "")
				continue
			}
			row = append(row, fmtStat(r.stat(c.Name, w.Name, f)))
			if c.Name == RefKernel || !r.hasConfig(RefKernel) {
				rrow = append(rrow, "")
			} else {
				rrow = append(rrow, fmtRatio(r.ratio(c.Name, RefKernel, w.Name, f)))
			}
		}
		rows = append(rows, row)
		if c.Name != RefKernel {
			ratios = append(ratios, rrow)
		}
	}
	table(b, header, rows)
	if r.hasConfig(RefKernel) && len(ratios) > 0 {
		header[0] = "×kernel"
		table(b, header, ratios)
	}
}

// coreStats returns, for each core, the medians over the repetitions of
// its CPU shares and of its softirq and interrupt rates.
func (r *Results) coreStats(c, w string) [][]float64 {
	var perRep [][][]float64 // rep, core, field
	for _, m := range r.Runs {
		if m.Config != c || m.Workload != w || !m.OK() || len(m.CPU) == 0 || m.Seconds <= 0 {
			continue
		}
		var cores [][]float64
		for i, u := range m.CPU {
			rate := func(s []uint64) float64 {
				if i >= len(s) {
					return math.NaN()
				}
				return float64(s[i]) / m.Seconds
			}
			cores = append(cores, []float64{u.User, u.System, u.IRQ, u.Softirq, u.Steal, u.Idle,
				rate(m.NetRx), rate(m.NetTx), rate(m.IRQs), rate(m.IPIs)})
		}
		perRep = append(perRep, cores)
	}
	if len(perRep) == 0 {
		return nil
	}
	n := len(perRep[0])
	out := make([][]float64, n)
	for core := range n {
		out[core] = make([]float64, len(perRep[0][core]))
		for f := range out[core] {
			var xs []float64
			for _, rep := range perRep {
				if core < len(rep) {
					xs = append(xs, rep[core][f])
				}
			}
			out[core][f] = Median(finite(xs))
		}
	}
	return out
}

func (r *Results) summaryCPU(b *strings.Builder) {
	var ws []Workload
	if w, ok := r.singleTCP(); ok {
		ws = append(ws, w)
	}
	if w, ok := r.singleUDP(); ok {
		ws = append(ws, w)
	}
	ws = append(ws, r.rated()...)
	if len(ws) == 0 {
		return
	}
	fmt.Fprintf(b, "## CPU per core\n\nPercent of each core's time over the run (medians), and softirqs "+
		"and interrupts per second. IPI/s are function-call IPIs, which RPS and RFS raise to hand packets "+
		"to another core.\n\n")
	for _, w := range ws {
		fmt.Fprintf(b, "### %s\n\n", w.Name)
		var rows [][]string
		for _, c := range r.Plan.Configs {
			st := r.coreStats(c.Name, w.Name)
			if st == nil {
				continue
			}
			for core, f := range st {
				row := []string{c.Name, fmt.Sprint(core)}
				for i, x := range f {
					if i < 6 {
						row = append(row, fmt.Sprintf("%.1f", x))
					} else {
						row = append(row, fmtCount(x))
					}
				}
				rows = append(rows, row)
			}
		}
		table(b, []string{"configuration", "core", "usr", "sys", "irq", "softirq", "steal", "idle",
			"NET_RX/s", "NET_TX/s", "IRQ/s", "IPI/s"}, rows)
	}
}

// perfGroups are the thread groups the perf table gives a column each; the rest of the
// samples are "other" (other processes, short-lived commands, kernel threads).
var perfGroups = []string{"vxdp", "iperf3", "napi/ethA", "napi/ethB", "ksoftirqd", "idle"}

// summaryPerf writes where the machine's time went in each run with a perf profile (-perf):
// the median share of the samples of each thread group.
func (r *Results) summaryPerf(b *strings.Builder) {
	var rows [][]string
	for _, w := range r.Plan.Workloads {
		for _, c := range r.Plan.Configs {
			shares := map[string][]float64{}
			n := 0
			for _, m := range r.Runs {
				if m.Config != c.Name || m.Workload != w.Name || !m.OK() || len(m.PerfShares) == 0 {
					continue
				}
				n++
				named := 0.0
				for _, g := range perfGroups {
					shares[g] = append(shares[g], m.PerfShares[g])
					named += m.PerfShares[g]
				}
				total := 0.0
				for _, x := range m.PerfShares {
					total += x
				}
				shares["other"] = append(shares["other"], total-named)
			}
			if n == 0 {
				continue
			}
			row := []string{w.Name, c.Name}
			for _, g := range append(slices.Clone(perfGroups), "other") {
				row = append(row, fmt.Sprintf("%.1f", Median(shares[g])))
			}
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "## Where the machine's time went (perf)\n\nShares of the samples of `perf record -a -g` over each "+
		"run (-perf), by thread, medians over the repetitions, in percent: vxdp's threads, iperf3 (client and server), "+
		"the wire's NAPI threads on A and B, ksoftirqd, the idle task, and everything else (other processes on the "+
		"machine included). Work done in softirq context is counted to the thread it interrupted. vxdp and "+
		"iperf3 are the run's own processes (by process ID); others of those names count as other.\n\n")
	table(b, append([]string{"workload", "configuration"}, append(slices.Clone(perfGroups), "other")...), rows)
}

// fmtCount prints a rate as a whole number, "—" when unknown.
func fmtCount(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.0f", x)
}

func (r *Results) summaryVXDP(b *strings.Builder) {
	keys := map[string]bool{}
	n := 0
	for _, blk := range r.Blocks {
		for _, v := range blk.VXDP {
			n++
			for k := range v.Counters {
				keys[k] = true
			}
		}
	}
	if n == 0 {
		return
	}
	ks := slices.Sorted(maps.Keys(keys))
	fmt.Fprintf(b, "## vxdp counters\n\nWhat each vxdp process counted over its configuration block "+
		"(every workload of one repetition), from its exit log.\n\n")
	var rows [][]string
	for _, blk := range r.Blocks {
		for _, v := range blk.VXDP {
			row := []string{fmt.Sprint(blk.Rep), blk.Config, v.Side}
			for _, k := range ks {
				if x, ok := v.Counters[k]; ok {
					row = append(row, fmt.Sprint(x))
				} else {
					row = append(row, "")
				}
			}
			rows = append(rows, append(row, firstLine(v.Error)))
		}
	}
	table(b, append(append([]string{"rep", "configuration", "host"}, ks...), "error"), rows)
}

func (r *Results) summaryFailures(b *strings.Builder) {
	var rows [][]string
	for _, blk := range r.Blocks {
		if blk.Error != "" {
			rows = append(rows, []string{fmt.Sprint(blk.Rep), blk.Config, "(block)", firstLine(blk.Error)})
		}
	}
	for _, m := range r.Runs {
		if !m.OK() {
			e := m.Error
			if e == "" {
				e = "no data received"
			}
			rows = append(rows, []string{fmt.Sprint(m.Rep), m.Config, m.Workload, firstLine(e)})
		}
	}
	if missing := r.missing(); len(missing) > 0 {
		for _, k := range missing {
			rows = append(rows, []string{"", k[0], k[1], "no successful run"})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "## Failures\n\n")
	table(b, []string{"rep", "configuration", "workload", "error"}, rows)
}

// firstLine returns the first line of s, at most 300 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// missing returns every (configuration, workload) pair of the plan that has
// no successful run with per-core CPU figures.
func (r *Results) missing() [][2]string {
	var out [][2]string
	for _, c := range r.Plan.Configs {
		for _, w := range r.Plan.Workloads {
			if !w.runsOn(c.Name) {
				continue
			}
			ok := slices.ContainsFunc(r.Runs, func(m Measurement) bool {
				return m.Config == c.Name && m.Workload == w.Name && m.OK() && len(m.CPU) > 0 &&
					!math.IsNaN(m.BitsPerSecond) && !math.IsInf(m.BitsPerSecond, 0)
			})
			if !ok {
				out = append(out, [2]string{c.Name, w.Name})
			}
		}
	}
	return out
}

// ErrMissing reports configurations that produced no number.
var ErrMissing = errors.New("configurations without results")

// Check returns an error naming every configuration and workload of the
// plan with no successful run: the smoke test of CI. It asserts that
// numbers exist, never what they are.
func (r *Results) Check() error {
	missing := r.missing()
	if len(missing) == 0 {
		return nil
	}
	var names []string
	for _, k := range missing {
		names = append(names, k[0]+"/"+k[1])
	}
	return fmt.Errorf("%w: %s", ErrMissing, strings.Join(names, ", "))
}
