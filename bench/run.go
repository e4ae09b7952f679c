//go:build linux

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/topo"
)

// Tag is the topo.Prefix tag of the benchmark's namespaces
// (vxbench-<pid>-<n>-hA, ...), which topo.CleanupStale sweeps after a run
// that was killed.
const Tag = "bench"

// pingTimeout bounds the reachability check after a configuration is set
// up: ARP and FDB learning on a fresh overlay take a few hundred ms.
const pingTimeout = 10 * time.Second

// Options configures Run.
type Options struct {
	// Plan is what to run.
	Plan Plan
	// VXDP is the path of the vxdp binary; only configurations that use
	// vxdp need it.
	VXDP string
	// Progress receives a line per configuration block and per run; nil
	// discards them.
	Progress io.Writer
	// ProfileDir, when set, receives a CPU profile (pprof) of every vxdp
	// process over every run, fetched from its admin server: one file per
	// run and host, named in Measurement.Profiles.
	ProfileDir string
	// PerfDir, when set, receives a whole-machine profile (`perf record -a -g`) of
	// every run, named in Measurement.Perf: on a veth much of vxdp's cost runs in NAPI
	// threads and in other processes' contexts, where its own pprof does not look.
	PerfDir string
	// Wire is how the wire between the hosts behaves; empty means topo.WireNIC.
	Wire topo.WireKind
	// MTU is the wire's MTU, the overlay's 50 bytes less (the outer IPv4 headers); 0 means
	// topo's default, 1500. 9000 is the jumbo variant (issue 16).
	MTU int
}

// perfFrequency is the sampling rate of `perf record`, in Hz per CPU: 499 (a prime, so
// that it does not beat with periodic work) keeps a 5 s profile of a busy 2-core machine
// at about 5000 call chains, and perf's own cost small.
const perfFrequency = 499

// Run builds the topology, runs opts.Plan on it and removes everything it
// made, the global RFS table size included, even when ctx is cancelled.
// Repetitions are the outer loop and configurations the inner one, so that
// every configuration is measured in every stretch of the run. A
// configuration that fails to set up, or a run that fails, is recorded with
// its error and the benchmark goes on.
//
// The results are returned even with an error: a cancelled ctx (SIGINT)
// gives the runs done so far, with Meta.Interrupted set.
func Run(ctx context.Context, opts Options) (*Results, error) {
	p := opts.Plan
	if err := p.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("run benchmark: needs root to create network namespaces")
	}
	r := &Results{Plan: p, Meta: machineMeta()}
	r.Meta.Started = time.Now()
	if opts.Wire == "" {
		opts.Wire = topo.WireNIC
	}
	r.Meta.Wire = string(opts.Wire)
	r.Meta.MTU = opts.MTU
	for _, c := range p.Configs {
		if c.UsesVXDP() {
			r.Meta.VXDP = opts.VXDP
		}
	}
	defer func() { r.Meta.Finished = time.Now() }()
	// A predecessor killed before its cleanup left namespaces behind.
	if err := topo.CleanupStale(Tag); err != nil {
		return r, fmt.Errorf("run benchmark: %w", err)
	}
	b := &bencher{opts: opts, res: r, out: opts.Progress, total: p.Runs()}
	if b.out == nil {
		b.out = io.Discard
	}
	err := b.run(ctx)
	if ctx.Err() != nil {
		r.Meta.Interrupted = true
	}
	if err != nil {
		r.Meta.Error = err.Error()
	}
	return r, err
}

// machineMeta describes the machine; what it cannot find stays empty.
func machineMeta() Meta {
	var m Meta
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if cpus, err := parseStat(string(b)); err == nil {
			m.Cores = len(cpus)
		}
	}
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		m.Iperf3, _, _ = strings.Cut(string(out), "\n")
	}
	return m
}

// bencher carries one Run's state.
type bencher struct {
	opts  Options
	res   *Results
	out   io.Writer
	tp    *topo.Topology
	total int       // runs planned
	done  int       // runs finished, failed ones included
	start time.Time // of the first run's configuration block
	// sockFlowPrev is rps_sock_flow_entries as found, to put back; -1
	// while unchanged.
	sockFlowPrev int
}

func (b *bencher) run(ctx context.Context) (err error) {
	p := b.opts.Plan
	fmt.Fprintf(b.out, "vxdp-bench: %s plan: %d configurations, %d workloads, %d repetitions: %d runs of %v\n",
		p.Mode, len(p.Configs), len(p.Workloads), p.Reps, b.total, p.Duration)
	to := topo.Options{Prefix: topo.Prefix(Tag), WireKind: b.opts.Wire}
	if b.opts.MTU > 0 {
		to.WireMTU, to.OverlayMTU = b.opts.MTU, b.opts.MTU-vxlanOverhead
	}
	tp, err := topo.New(ctx, to)
	if err != nil {
		return fmt.Errorf("run benchmark: %w", err)
	}
	b.tp = tp
	b.sockFlowPrev = -1
	defer func() {
		if cerr := tp.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		fmt.Fprintf(b.out, "removed namespaces %s-{hA,hB,cA,cB}\n", tp.Prefix)
	}()
	if err := b.setFragTime(ctx); err != nil {
		return fmt.Errorf("run benchmark: %w", err)
	}
	b.start = time.Now()
	for rep := range p.Reps {
		order := p.order(rep)
		for i, c := range order {
			if ctx.Err() != nil {
				return fmt.Errorf("run benchmark: %w", context.Cause(ctx))
			}
			b.block(ctx, rep+1, c, rep == p.Reps-1 && i == len(order)-1)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run benchmark: %w", context.Cause(ctx))
	}
	fmt.Fprintf(b.out, "done: %d runs in %v\n", b.done, time.Since(b.start).Round(time.Second))
	return nil
}

// overlay is what a configuration block set up, for teardown.
type overlay struct {
	vxdp []*topo.VXDP
}

// block sets up configuration c, runs its workloads and tears it down. last says no block
// follows, so nothing is owed to the next one.
func (b *bencher) block(ctx context.Context, rep int, c Config, last bool) {
	p := b.opts.Plan
	blk := Block{Rep: rep, Config: c.Name}
	var ws []Workload
	for _, w := range p.Workloads {
		if w.runsOn(c.Name) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return
	}
	t0 := time.Now()
	ov, err := b.setup(ctx, c)
	blk.SetupSeconds = time.Since(t0).Seconds()
	if err != nil && ctx.Err() == nil {
		blk.Error = "set up: " + err.Error()
		fmt.Fprintf(b.out, "rep %d/%d %s: set up FAILED: %s\n", rep, p.Reps, c.Name, oneLine(err))
	} else if err == nil {
		fmt.Fprintf(b.out, "rep %d/%d %s: set up in %.1fs\n", rep, p.Reps, c.Name, blk.SetupSeconds)
	}
	// broken is why the remaining runs of the block cannot work.
	broken := blk.Error
	for _, w := range ws {
		if ctx.Err() != nil {
			break
		}
		var run Measurement
		if broken != "" {
			run = Measurement{Rep: rep, Config: c.Name, Workload: w.Name, Start: time.Now(), Error: broken}
		} else {
			run = b.measure(ctx, rep, c, w, ov)
			if ctx.Err() != nil {
				break // cut short by the signal: not a result
			}
			if !run.OK() {
				broken = b.stillWorks(ctx, c, ov)
			}
		}
		b.res.Runs = append(b.res.Runs, run)
		b.done++
		b.progress(rep, c, w, run)
	}
	t1 := time.Now()
	blk.VXDP, err = b.teardown(ctx, c, ov)
	// Fragments this block left must not meet the next one's (see drainFragments); after
	// the last block the topology goes, and they with it.
	if !last {
		if waited, derr := b.drainFragments(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		} else if waited > fragPoll {
			fmt.Fprintf(b.out, "rep %d/%d %s: waited %v for IP fragments left waiting for reassembly to expire\n",
				rep, p.Reps, c.Name, waited.Round(100*time.Millisecond))
		}
	}
	blk.TeardownSeconds = time.Since(t1).Seconds()
	if err != nil {
		blk.Error = strings.TrimPrefix(blk.Error+"; tear down: "+err.Error(), "; ")
		fmt.Fprintf(b.out, "rep %d/%d %s: tear down FAILED: %s\n", rep, p.Reps, c.Name, oneLine(err))
	}
	b.res.Blocks = append(b.res.Blocks, blk)
}

// progress prints one finished run with the count, the time so far and an
// estimate of the time left.
func (b *bencher) progress(rep int, c Config, w Workload, run Measurement) {
	el := time.Since(b.start)
	left := time.Duration(float64(el) / float64(b.done) * float64(b.total-b.done))
	what := fmt.Sprintf("%.3g Gbit/s", run.BitsPerSecond/1e9)
	switch {
	case !run.OK():
		what = "FAILED: " + oneLine(errors.New(run.Error))
	case w.UDP:
		what += fmt.Sprintf(", %.0f kpps, %d lost", run.PacketsPerSecond/1e3, run.LostPackets)
	default:
		what += fmt.Sprintf(", %d retransmits", run.Retransmits)
	}
	fmt.Fprintf(b.out, "[%d/%d %v, ~%v left] rep %d/%d %s %s: %s\n", b.done, b.total,
		el.Round(time.Second), left.Round(time.Second), rep, b.opts.Plan.Reps, c.Name, w.Name, what)
}

// oneLine shortens an error to its first line, at most 200 bytes, for the
// terminal; the results keep it whole.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// endpoints returns the iperf3 server and client namespaces of c and the
// server's address.
func (b *bencher) endpoints(c Config) (server, client topo.NS, addr netip.Addr) {
	if c.Native {
		return b.tp.HostB, b.tp.HostA, b.tp.UnderlayB.Addr()
	}
	return b.tp.ContainerB, b.tp.ContainerA, b.tp.OverlayB.Addr()
}

// setup builds configuration c on the bare topology and checks that the
// client reaches the server. On error the caller still tears down.
func (b *bencher) setup(ctx context.Context, c Config) (*overlay, error) {
	ov := &overlay{}
	if c.Local {
		if err := b.setupLocal(ctx, c, ov); err != nil {
			return ov, err
		}
	} else if !c.Native {
		// B first: the receiver's side is what the configuration is about.
		for _, s := range []topo.Side{topo.SideB, topo.SideA} {
			o := c.A
			if s == topo.SideB {
				o = c.B
			}
			switch o {
			case OverlayKernel:
				if err := b.tp.KernelVXLAN(ctx, s); err != nil {
					return ov, err
				}
			case OverlayVXDP:
				if _, err := os.Stat(b.opts.VXDP); err != nil {
					return ov, fmt.Errorf("find vxdp binary: %w", err)
				}
				b.tp.VethPorts = c.Veth
				v, err := b.tp.StartVXDP(ctx, s, b.opts.VXDP, c.VXDPYAML)
				if err != nil {
					return ov, err
				}
				ov.vxdp = append(ov.vxdp, v)
			}
		}
		if err := b.steer(ctx, c); err != nil {
			return ov, err
		}
	}
	server, client, addr := b.endpoints(c)
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := client.Ping(pctx, addr); err != nil {
		return ov, fmt.Errorf("check that %s reaches %s in %s: %w", client, addr, server, err)
	}
	return ov, nil
}

// setupLocal builds local configuration c on host B: the kernel's bridge between the two
// containers, or one vxdp with a port into each.
func (b *bencher) setupLocal(ctx context.Context, c Config, ov *overlay) error {
	if c.B == OverlayKernel {
		return b.tp.LocalBridge(ctx, topo.SideB)
	}
	if _, err := os.Stat(b.opts.VXDP); err != nil {
		return fmt.Errorf("find vxdp binary: %w", err)
	}
	portA, portB := "tap: "+localTapIf, "tap: "+topo.VXDPTapIf
	if c.VethServer {
		portB = "veth: " + topo.VXDPVethIf
	}
	v, err := b.tp.StartVXDPConfig(ctx, topo.SideB, b.opts.VXDP, b.tp.VXDPLocalConfig(topo.SideB, portA, portB, c.VXDPYAML))
	if err != nil {
		return err
	}
	ov.vxdp = append(ov.vxdp, v)
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := b.tp.ContainerIf(ctx, s, "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// localTapIf names container A's TAP in a local configuration run by vxdp, beside
// container B's topo.VXDPTapIf.
const localTapIf = "vxp1"

// steer applies c's RPS or RFS settings on host B: the wire end, the vxlan
// device and the host veth, and for the "+" variants container B's eth0.
func (b *bencher) steer(ctx context.Context, c Config) error {
	if c.Steering == SteerNone {
		return nil
	}
	mask := cpuMask(b.res.Meta.Cores)
	type dev struct {
		ns     topo.NS
		ifname string
	}
	devs := []dev{{b.tp.HostB, b.tp.WireB}, {b.tp.HostB, topo.VXLANIf}, {b.tp.HostB, topo.HostVethIf}}
	if c.InContainer {
		devs = append(devs, dev{b.tp.ContainerB, topo.ContainerVethIf})
	}
	if c.Steering == SteerRFS {
		prev, err := topo.SetSockFlowEntries(RFSFlows)
		if err != nil {
			return err
		}
		if b.sockFlowPrev < 0 {
			b.sockFlowPrev = prev
		}
	}
	for _, d := range devs {
		if err := topo.SetRPS(ctx, d.ns, d.ifname, mask); err != nil {
			return err
		}
		if c.Steering == SteerRFS {
			if err := topo.SetRFS(ctx, d.ns, d.ifname, RFSFlows); err != nil {
				return err
			}
		}
	}
	return nil
}

// teardown undoes setup: it stops vxdp (collecting its counters), removes
// the kernel overlays and resets steering on the wire end, leaving the bare
// topology for the next block. It runs to the end even after ctx is
// cancelled.
func (b *bencher) teardown(ctx context.Context, c Config, ov *overlay) ([]VXDPCounters, error) {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	var counters []VXDPCounters
	for _, v := range ov.vxdp {
		vc := VXDPCounters{Side: v.Side.String()}
		if err := v.Stop(); err != nil {
			vc.Error = fmt.Sprintf("vxdp exit: %v", err)
		}
		if m, ok := parseVXDPCounters(v.Log()); ok {
			vc.Counters = m
		} else if vc.Error == "" {
			vc.Error = "no counters line in the log"
		}
		counters = append(counters, vc)
	}
	if c.Native {
		return counters, nil
	}
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := b.tp.RemoveKernelVXLAN(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Steering != SteerNone {
		if err := topo.SetRPS(ctx, b.tp.HostB, b.tp.WireB, "0"); err != nil {
			errs = append(errs, err)
		}
		if err := topo.SetRFS(ctx, b.tp.HostB, b.tp.WireB, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if b.sockFlowPrev >= 0 {
		if _, err := topo.SetSockFlowEntries(b.sockFlowPrev); err != nil {
			errs = append(errs, err)
		} else {
			b.sockFlowPrev = -1
		}
	}
	return counters, errors.Join(errs...)
}

// stillWorks is called after a failed run: it returns why the rest of the
// block cannot work (a vxdp process died, the client no longer reaches the
// server), or "" to go on with the next workload.
func (b *bencher) stillWorks(ctx context.Context, c Config, ov *overlay) string {
	for _, v := range ov.vxdp {
		select {
		case <-v.Done():
			return fmt.Sprintf("vxdp on host %s exited during an earlier run:\n%s", v.Side, v.Log())
		default:
		}
	}
	server, client, addr := b.endpoints(c)
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := client.Ping(pctx, addr); err != nil {
		return fmt.Sprintf("%s no longer reaches %s in %s after an earlier failed run: %v", client, addr, server, err)
	}
	return ""
}

// measure runs workload w on configuration c once, with a snapshot of the
// machine's and the receiver's counters on each side of it.
func (b *bencher) measure(ctx context.Context, rep int, c Config, w Workload, ov *overlay) Measurement {
	server, client, addr := b.endpoints(c)
	run := Measurement{Rep: rep, Config: c.Name, Workload: w.Name, Start: time.Now()}
	before, err := takeSnapshot(server)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	perf := topo.Iperf3{Server: server, Client: client, Addr: addr.String(), Duration: b.opts.Plan.Duration,
		UDP: w.UDP, Length: w.Length, Parallel: w.Parallel}
	switch {
	case w.Rate > 0:
		perf.Bitrate = strconv.FormatFloat(w.Rate, 'f', 0, 64)
	case w.UDP:
		perf.Bitrate = "0"
	}
	profiles := b.profile(ctx, rep, c, w)
	machine := b.perfRecord(ctx, rep, c, w)
	res, ierr := perf.Run(ctx)
	run.Profiles, run.ProfileError = profiles()
	run.Perf, run.PerfError = machine()
	after, err := takeSnapshot(server)
	run.Seconds = after.at.Sub(before.at).Seconds()
	if ierr != nil {
		run.Error = ierr.Error()
	} else if err != nil {
		run.Error = err.Error()
	}
	if err == nil {
		after.delta(before, &run)
	}
	if run.Perf != "" { // after the window: perf report costs CPU of its own
		var vxdps []int
		for _, v := range ov.vxdp {
			vxdps = append(vxdps, v.PID())
		}
		run.PerfShares, run.PerfError = b.perfReport(ctx, run.Perf, map[string][]int{"vxdp": vxdps, "iperf3": res.PIDs})
	}
	if ierr == nil {
		run.BitsPerSecond, run.Bytes, run.Retransmits = res.BitsPerSecond, res.Bytes, res.Retransmits
		if w.UDP {
			run.Packets, run.LostPackets, run.OutOfOrder = res.Packets, res.LostPackets, res.OutOfOrder
			run.PacketsPerSecond = res.BitsPerSecond / 8 / float64(w.Length)
		}
	}
	return run
}

// perfRecord starts `perf record -a -g` over the whole machine for the run about to
// start, when Options.PerfDir asks for it; the function it returns waits for perf to
// write its file and returns the file's name and what went wrong. perf runs for the
// plan's run length from its start, which is about the iperf3 test's (iperf3 connects
// in a fraction of a second).
func (b *bencher) perfRecord(ctx context.Context, rep int, c Config, w Workload) func() (string, string) {
	if b.opts.PerfDir == "" {
		return func() (string, string) { return "", "" }
	}
	file := fmt.Sprintf("rep%d-%s-%s.perf.data", rep, c.Name, w.Name)
	secs := strconv.FormatFloat(b.opts.Plan.Duration.Seconds(), 'f', -1, 64)
	cmd := exec.CommandContext(ctx, "perf", "record", "-a", "-g", "-q", "-F", strconv.Itoa(perfFrequency),
		"-o", filepath.Join(b.opts.PerfDir, file), "--", "sleep", secs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return func() (string, string) { return "", fmt.Sprintf("start perf record: %v", err) }
	}
	return func() (string, string) {
		if err := cmd.Wait(); err != nil {
			return "", fmt.Sprintf("perf record: %v: %s", err, bytes.TrimSpace(out.Bytes()))
		}
		return file, ""
	}
}

// perfReport reads the shares by thread group of the perf profile in file. The groups
// named in own count only the processes listed there, the run's own vxdp and iperf3:
// samples of other processes of those names (another test on a shared machine) go to
// "other <name>".
func (b *bencher) perfReport(ctx context.Context, file string, own map[string][]int) (map[string]float64, string) {
	report := func(filter ...string) (map[string]float64, error) {
		args := append([]string{"report", "-i", filepath.Join(b.opts.PerfDir, file),
			"--stdio", "--sort", "comm", "--no-children", "-g", "none"}, filter...)
		out, err := exec.CommandContext(ctx, "perf", args...).Output()
		if err != nil {
			return nil, fmt.Errorf("perf report %s: %w", file, err)
		}
		return perfShares(string(out))
	}
	shares, err := report()
	if err != nil {
		return nil, err.Error()
	}
	for _, g := range slices.Sorted(maps.Keys(own)) {
		ownShare := 0.0
		if pids := own[g]; len(pids) > 0 {
			var list []string
			for _, pid := range pids {
				list = append(list, strconv.Itoa(pid))
			}
			// --pid keeps each entry's share of all samples (perf's default
			// --percentage absolute), so the entries add up to the processes' share.
			mine, err := report("--pid", strings.Join(list, ","))
			if err != nil && !errors.Is(err, errProcFormat) { // no samples of them: 0
				return nil, err.Error()
			}
			for _, x := range mine {
				ownShare += x
			}
		}
		attribute(shares, g, ownShare)
	}
	return shares, ""
}

// profile starts fetching a CPU profile of every vxdp of configuration c over the run
// about to start, when Options.ProfileDir asks for them; the function it returns waits
// for them and returns the files written and what went wrong.
func (b *bencher) profile(ctx context.Context, rep int, c Config, w Workload) func() ([]string, string) {
	var sides []topo.Side
	if b.opts.ProfileDir != "" && c.UsesVXDP() {
		if c.A == OverlayVXDP {
			sides = append(sides, topo.SideA)
		}
		if c.B == OverlayVXDP {
			sides = append(sides, topo.SideB)
		}
	}
	type got struct {
		file string
		err  error
	}
	results := make(chan got, len(sides))
	secs := int(math.Ceil(b.opts.Plan.Duration.Seconds()))
	for _, s := range sides {
		go func() {
			file := fmt.Sprintf("rep%d-%s-%s-%s.pprof", rep, c.Name, w.Name, s)
			pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
			defer cancel()
			status, body, err := b.tp.Host(s).HTTPGet(pctx, dataplane.DefaultAdmin, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
			switch {
			case err != nil:
			case status != http.StatusOK:
				err = fmt.Errorf("profile of vxdp on host %s: HTTP %d: %s", s, status, bytes.TrimSpace(body))
			default:
				err = os.WriteFile(filepath.Join(b.opts.ProfileDir, file), body, 0o644)
			}
			if err != nil {
				file = ""
			}
			results <- got{file, err}
		}()
	}
	return func() (files []string, errs string) {
		var all []error
		for range sides {
			r := <-results
			if r.file != "" {
				files = append(files, r.file)
			}
			if r.err != nil {
				all = append(all, r.err)
			}
		}
		if err := errors.Join(all...); err != nil {
			errs = err.Error()
		}
		return files, errs
	}
}
