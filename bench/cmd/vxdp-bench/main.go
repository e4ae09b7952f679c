//go:build linux

// Command vxdp-bench runs the overlay benchmarks of bench/README.md on
// network namespaces and writes results.json, results.csv, summary.md and
// PNG plots into a directory.
//
//	vxdp-bench [-quick] [-check] [-vxdp bin/vxdp] [-out bench/out] [-wire nic|plain] [-pprof] [-perf] [flags]
//	vxdp-bench -render bench/out/results.json [-out DIR]
//
// SIGINT or SIGTERM stops the run, removes every namespace it made, stops
// vxdp and writes the partial results; a second signal exits at once (the
// next run sweeps what that leaves behind).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vxdp/vxdp/bench"
	"github.com/vxdp/vxdp/internal/topo"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the run, a configuration (with -check) or writing the results failed
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vxdp-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vxdp := fs.String("vxdp", "bin/vxdp", "the vxdp binary, for the vxdp configurations")
	out := fs.String("out", "bench/out", "directory for results.json, results.csv, summary.md and the plots")
	quick := fs.Bool("quick", false, "the quick plan (CI's smoke test): one flow of TCP, 8 KB and 64 B UDP and TCP at 2 Gbit/s on "+strings.Join(bench.QuickConfigs, ",")+" (or -configs), 1 repetition of 2 s runs")
	check := fs.Bool("check", false, "exit 1 if any configuration and workload of the plan produced no number (never a speed threshold)")
	reps := fs.Int("reps", 0, "repetitions (default 5, quick 1)")
	dur := fs.Duration("t", 0, "length of each iperf3 run (default 5s, quick 2s)")
	workloads := fs.String("workloads", "", "comma-separated workloads of the plan to run (default: all of them), e.g. tcp-2G,udp-800M,udp-64-40kpps for the cost table alone")
	configs := fs.String("configs", "", "comma-separated configurations to run (default: all of "+names(bench.Configs())+")")
	sweep := fs.String("sweep", strings.Join(bench.SweepConfigs, ","), "comma-separated configurations the flow-count and packet-size sweeps run on")
	workers := fs.String("workers", "", "comma-separated vxdp worker counts: adds configurations vxdp-w<n> (vxdp on B with \"workers: n\")")
	microflows := fs.String("microflows", "", "comma-separated micro-flow sizes: adds configurations vxdp-b<n> (vxdp on B with \"microflow: n\")")
	noOffload := fs.Bool("nooffload", false, "adds configurations vxdp-nooffload and vxdp-both-nooffload (\"offload: false\")")
	var variantFlags []string
	fs.Func("variant", "NAME=YAML: adds configurations vxdp-NAME, vxdp-send-NAME and vxdp-both-NAME, vxdp with YAML (top-level config fields, \"; \" between them) in its config; repeatable", func(v string) error {
		name, yaml, ok := strings.Cut(v, "=")
		if !ok || name == "" || strings.TrimSpace(yaml) == "" {
			return fmt.Errorf("%q is not NAME=YAML", v)
		}
		variantFlags = append(variantFlags, name, strings.ReplaceAll(yaml, "; ", "\n")+"\n")
		return nil
	})
	veth := fs.Bool("veth", false, "adds configurations vxdp-veth and vxdp-both-veth (veth ports instead of TAPs); -configs may name them without it")
	pprof := fs.Bool("pprof", false, "also write a CPU profile of every vxdp process over every run into OUT/pprof (from its admin server)")
	perf := fs.Bool("perf", false, "also write a whole-machine profile of every run (perf record -a -g) into OUT/perf")
	wire := fs.String("wire", string(topo.WireNIC), "the wire between the hosts: nic (each end receives in its own NAPI thread, with GRO) or plain (a veth without GRO or NAPI)")
	mtu := fs.Int("mtu", 0, "the wire's MTU, 1500 to 9000 (the overlay's is 50 less): 9000 is the jumbo variant; default 1500")
	render := fs.String("render", "", "re-render summary, CSV and plots from this results.json instead of running")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vxdp-bench: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if k := topo.WireKind(*wire); k != topo.WireNIC && k != topo.WirePlain {
		fmt.Fprintf(stderr, "vxdp-bench: -wire: %q is neither %s nor %s\n", *wire, topo.WireNIC, topo.WirePlain)
		return exitUsage
	}
	if *mtu != 0 && (*mtu < 1500 || *mtu > 9000) {
		fmt.Fprintf(stderr, "vxdp-bench: -mtu: %d is outside 1500-9000\n", *mtu)
		return exitUsage
	}
	if *render != "" {
		res, err := bench.ReadResults(*render)
		if err != nil {
			fmt.Fprintln(stderr, "vxdp-bench:", err)
			return exitFailure
		}
		return finish(res, *out, *check, stdout, stderr, nil)
	}

	all := bench.Configs()
	ws, err := ints(*workers)
	if err != nil {
		fmt.Fprintf(stderr, "vxdp-bench: -workers: %v\n", err)
		return exitUsage
	}
	bs, err := ints(*microflows)
	if err != nil {
		fmt.Fprintf(stderr, "vxdp-bench: -microflows: %v\n", err)
		return exitUsage
	}
	variants := append(bench.WorkerConfigs(ws), bench.MicroFlowConfigs(bs)...)
	if *noOffload {
		variants = append(variants, bench.NoOffloadConfigs()...)
	}
	for i := 0; i < len(variantFlags); i += 2 {
		variants = append(variants, bench.VariantConfigs(variantFlags[i], variantFlags[i+1])...)
	}
	if *veth {
		variants = append(variants, bench.VethConfigs()...)
	}
	all = append(all, variants...)
	sweepNames := list(*sweep)
	effNames := slices.Clone(bench.EfficiencyConfigs)
	var variantNames []string
	for _, c := range variants {
		variantNames = append(variantNames, c.Name)
	}
	sweepNames = append(sweepNames, variantNames...)
	effNames = append(effNames, variantNames...)
	switch {
	case *configs != "":
		if !*veth { // named in -configs, they run without the flag
			all = append(all, bench.VethConfigs()...)
		}
		if all, err = bench.SelectConfigs(all, list(*configs)); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench: -configs:", err)
			return exitUsage
		}
	case *quick:
		if all, err = bench.SelectConfigs(all, append(slices.Clone(bench.QuickConfigs), variantNames...)); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench:", err)
			return exitFailure
		}
	}
	plan := bench.FullPlan(all, sweepNames, effNames)
	if *quick {
		plan = bench.QuickPlan(all, effNames)
	}
	if *reps > 0 {
		plan.Reps = *reps
	}
	if *dur > 0 {
		plan.Duration = *dur
	}
	if *workloads != "" {
		if plan.Workloads, err = bench.SelectWorkloads(plan.Workloads, list(*workloads)); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench:", err)
			return exitUsage
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Back to the default action: a second signal ends the process.
		stop()
		fmt.Fprintln(stderr, "vxdp-bench: stopping: tearing down and writing partial results (signal again to exit at once)")
	}()
	opts := bench.Options{Plan: plan, VXDP: *vxdp, Progress: stdout, Wire: topo.WireKind(*wire), MTU: *mtu}
	if *perf {
		opts.PerfDir = filepath.Join(*out, "perf")
		if err := os.MkdirAll(opts.PerfDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench:", err)
			return exitFailure
		}
	}
	if *pprof {
		opts.ProfileDir = filepath.Join(*out, "pprof")
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench:", err)
			return exitFailure
		}
	}
	res, err := bench.Run(ctx, opts)
	if res == nil {
		fmt.Fprintln(stderr, "vxdp-bench:", err)
		return exitUsage
	}
	return finish(res, *out, *check, stdout, stderr, err)
}

// finish writes the outputs and applies -check; runErr is what stopped the
// run, if anything.
func finish(res *bench.Results, out string, check bool, stdout, stderr io.Writer, runErr error) int {
	code := exitOK
	if runErr != nil {
		fmt.Fprintln(stderr, "vxdp-bench:", runErr)
		code = exitFailure
	}
	files, err := res.WriteFiles(out)
	if err != nil {
		fmt.Fprintln(stderr, "vxdp-bench:", err)
		code = exitFailure
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", filepath.Join(out, f))
	}
	fmt.Fprintf(stdout, "wall time %v\n", res.Meta.Finished.Sub(res.Meta.Started).Round(time.Second))
	if check {
		if err := res.Check(); err != nil {
			fmt.Fprintln(stderr, "vxdp-bench: check:", err)
			code = exitFailure
		} else {
			fmt.Fprintln(stdout, "check: every configuration and workload produced numbers")
		}
	}
	return code
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ints parses a comma-separated list of positive integers.
func ints(s string) ([]int, error) {
	var out []int
	for _, f := range list(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, errors.Join(fmt.Errorf("%q is not a positive integer", f), err)
		}
		out = append(out, n)
	}
	return out, nil
}

func names(cs []bench.Config) string {
	var ns []string
	for _, c := range cs {
		ns = append(ns, c.Name)
	}
	return strings.Join(ns, ",")
}
