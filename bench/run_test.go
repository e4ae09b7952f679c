//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		// Sweep what an earlier, killed run left behind.
		if err := topo.CleanupStale(Tag); err != nil {
			fmt.Fprintln(os.Stderr, "clean up stale benchmark namespaces:", err)
		}
	}
	os.Exit(m.Run())
}

// benchNamespaces returns the namespaces of this process's benchmarks.
func benchNamespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	prefix := fmt.Sprintf("vx%s-%d-", Tag, os.Getpid())
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// TestRunEndToEnd runs a tiny benchmark, native and kernel with one TCP
// and one UDP run of 1 s each, and checks that every output file exists and
// carries numbers and that no namespace is left.
func TestRunEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and interfaces")
	}
	if testing.Short() {
		t.Skip("runs iperf3 through namespaces for several seconds: not in -short mode")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 is needed as root: %v", err)
	}
	t.Cleanup(func() {
		if left := benchNamespaces(t); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
			for _, n := range left {
				_ = exec.Command("ip", "netns", "del", n).Run()
			}
		}
	})
	configs, err := SelectConfigs(Configs(), []string{"native", "kernel"})
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan{Mode: "test", Configs: configs, Reps: 1, Duration: time.Second,
		Workloads: []Workload{tcpFlows(1, nil), udpSize(UDPLength, nil)}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := Run(ctx, Options{Plan: plan, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if err := res.Check(); err != nil {
		t.Errorf("Check: %v\n%s", err, progress.String())
	}
	if len(res.Runs) != 4 || len(res.Blocks) != 2 {
		t.Errorf("%d runs and %d blocks, want 4 and 2", len(res.Runs), len(res.Blocks))
	}
	for _, m := range res.Runs {
		if !m.OK() || len(m.CPU) != res.Meta.Cores || len(m.NetRx) != res.Meta.Cores || m.Seconds < 1 {
			t.Errorf("run %s/%s: %+v", m.Config, m.Workload, m)
		}
		// The machine was not all idle, and with an overlay the receiver's softirqs ran
		// somewhere: the container's veth receives through the backlog in NET_RX. The
		// wire's ends receive in NAPI threads, which raise no softirq, so native may
		// count none.
		var rx uint64
		busy := 0.0
		for i := range m.NetRx {
			rx += m.NetRx[i]
			busy += m.CPU[i].Busy()
		}
		if (rx == 0 && m.Config != "native") || busy <= 0 || m.BusySeconds <= 0 || m.CPUPerGB() <= 0 {
			t.Errorf("run %s/%s: %d NET_RX softirqs, %.1f %% busy, %.2f busy CPU-s, %.2f CPU-s per GB",
				m.Config, m.Workload, rx, busy, m.BusySeconds, m.CPUPerGB())
		}
		if _, ok := m.Net["TcpExt.TCPOFOQueue"]; !ok {
			t.Errorf("run %s/%s: no TCPOFOQueue counter", m.Config, m.Workload)
		}
		if m.Workload == "udp" && (m.Net["Udp.InDatagrams"] <= 0 || m.Net["Ip.ReasmOKs"] <= 0) {
			t.Errorf("run %s/udp: the receiver counted %d datagrams, %d reassemblies", m.Config,
				m.Net["Udp.InDatagrams"], m.Net["Ip.ReasmOKs"])
		}
	}
	if sfe, err := topo.SockFlowEntries(); err != nil {
		t.Error(err)
	} else if sfe == RFSFlows {
		t.Logf("rps_sock_flow_entries is %d: set by someone else?", sfe)
	}

	dir := t.TempDir()
	files, err := res.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "results.csv", "summary.md", "cpu-tcp.png", "cpu-udp.png"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("output %s: %v (written: %v)", f, err, files)
		}
	}
	f, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	bps := -1
	for i, h := range rows[0] {
		if h == "bits_per_second" {
			bps = i
		}
	}
	for _, row := range rows[1:] {
		if v, err := strconv.ParseFloat(row[bps], 64); err != nil || v <= 0 {
			t.Errorf("csv row %v: bits_per_second %q", row[:4], row[bps])
		}
	}
	back, err := ReadResults(filepath.Join(dir, "results.json"))
	if err != nil || len(back.Runs) != len(res.Runs) {
		t.Errorf("results.json: %v, %d runs", err, len(back.Runs))
	}
	summary, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil || !strings.Contains(string(summary), "| kernel |") || strings.Contains(string(summary), "## Failures") {
		t.Errorf("summary.md (%v):\n%s", err, summary)
	}
}

// TestRunCancelled checks that a cancelled run still returns what it has,
// marked interrupted, and removes its namespaces.
func TestRunCancelled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and interfaces")
	}
	if testing.Short() {
		t.Skip("runs iperf3 through namespaces for several seconds: not in -short mode")
	}
	t.Cleanup(func() {
		if left := benchNamespaces(t); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
			for _, n := range left {
				_ = exec.Command("ip", "netns", "del", n).Run()
			}
		}
	})
	configs, _ := SelectConfigs(Configs(), []string{"native", "kernel-rfs"})
	plan := Plan{Mode: "test", Configs: configs, Reps: 3, Duration: 2 * time.Second,
		Workloads: []Workload{tcpFlows(1, nil)}}
	prev, err := topo.SockFlowEntries()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// A second into the run after the first one recorded, whatever the first took on a
	// loaded machine (a fixed time from the start found none recorded yet).
	var once sync.Once
	progress := writerFunc(func(p []byte) (int, error) {
		if bytes.HasPrefix(p, []byte("[1/")) {
			once.Do(func() { time.AfterFunc(time.Second, cancel) })
		}
		return len(p), nil
	})
	res, err := Run(ctx, Options{Plan: plan, Progress: progress})
	if err == nil || res == nil || !res.Meta.Interrupted {
		t.Fatalf("Run = %v, interrupted %v; want an error and partial results", err, res != nil && res.Meta.Interrupted)
	}
	if len(res.Runs) == 0 || len(res.Runs) >= plan.Runs() {
		t.Errorf("%d runs of %d: want some, not all", len(res.Runs), plan.Runs())
	}
	for _, m := range res.Runs {
		if !m.OK() {
			t.Errorf("a run cut short was recorded: %+v", m)
		}
	}
	if now, err := topo.SockFlowEntries(); err != nil || now != prev {
		t.Errorf("rps_sock_flow_entries = %d (%v), want it back at %d", now, err, prev)
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
